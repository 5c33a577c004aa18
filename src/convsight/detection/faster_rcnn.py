"""Faster R-CNN (Ren et al. 2015): a Region Proposal Network and a Fast R-CNN head on shared features.

``images -> backbone (one level, stride 16) -> RPN -> proposals -> RoI head -> detections``
(torchvision's ``GeneralizedRCNN(backbone, rpn, roi_heads)`` composition, without the FPN).

Training is the paper's *approximate joint training*: one backward pass through the sum of the four
losses (``rpn_obj``, ``rpn_box`` from :mod:`convsight.detection.rpn`; ``cls``, ``box`` from
:mod:`convsight.detection.roi_heads`), with the proposals treated as constants (no gradient through
the box coordinates into the RPN). The RoI head also gets the gt boxes as proposals in training, so
it learns from the first step even while the RPN still proposes noise.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor

from convsight.detection.base import (
    Detector,
    DetectorConfig,
    PostprocessConfig,
    register_detector,
)
from convsight.detection.input_sides import check_input_sides, check_sized_inputs
from convsight.detection.roi_heads import RoIHead, RoIHeadConfig
from convsight.detection.rpn import RegionProposalNetwork, RPNConfig
from convsight.structures import DetectorOutput, Target


@dataclass(frozen=True, kw_only=True)
class FasterRCNNConfig(DetectorConfig):
    """feature_level: the backbone level shared by the RPN and the RoI head (a stride or a level
    name); rpn: anchors, sampling and proposal counts (:class:`RPNConfig`); roi_head: RoI sampling,
    pooling and FC sizes (:class:`RoIHeadConfig`); input_sides: None or the ``(lo, hi)`` input sides
    it runs at (anchors are pixels already: :mod:`convsight.detection.input_sides`)."""

    postprocess: PostprocessConfig = field(
        default_factory=lambda: PostprocessConfig(score_threshold=0.05, iou_threshold=0.3, topk=100))
    feature_level: int | str = 16
    rpn: RPNConfig = field(default_factory=RPNConfig)
    roi_head: RoIHeadConfig = field(default_factory=RoIHeadConfig)
    input_sides: tuple[int, int] | None = None

    def validate(self) -> None:
        check_input_sides(self.arch, self.input_sides)
        self.check_divisible(32, "the backbone's coarsest stride")
        self.check_types(rpn=RPNConfig, roi_head=RoIHeadConfig)


@register_detector("faster_rcnn", FasterRCNNConfig)
class FasterRCNNDetector(Detector):
    """Backbone (one level) + :class:`RegionProposalNetwork` + :class:`RoIHead`; see the module doc."""

    config: FasterRCNNConfig

    def __init__(self, num_classes: int, config: FasterRCNNConfig) -> None:
        super().__init__(num_classes, config)
        info = self.backbone.feature_info[0]
        self.rpn = RegionProposalNetwork(info.channels, info.stride, config.rpn)
        self.roi_head = RoIHead(info.channels, info.stride, num_classes, config.roi_head)

    def backbone_levels(self, config: FasterRCNNConfig) -> list[int | str]:
        return [config.feature_level]

    check_inputs = check_sized_inputs  # with input_sides: any sides that 32 divides

    def forward(self, images: Tensor, targets: list[Target] | None = None,
                postprocess: PostprocessConfig | None = None) -> DetectorOutput:
        self.check_inputs(images, targets)
        size = (int(images.shape[-2]), int(images.shape[-1]))  # image_size, or another with input_sides
        feature = self.backbone(images)[0]  # (B, C_f, H / s, W / s)
        proposals, rpn_losses = self.rpn(feature, size, targets)  # B x (N_i, 4), detached
        roi_losses, detections = self.roi_head(feature, proposals, targets, size,
                                               None if self.training else postprocess or self.postprocess)
        return DetectorOutput(detections=detections, losses={**rpn_losses, **roi_losses})

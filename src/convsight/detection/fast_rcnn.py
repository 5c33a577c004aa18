"""Fast R-CNN (Girshick 2015): run the ConvNet once per image, pool each proposal from its feature map.

1. Proposals: selective search, up to ``max_proposals`` per image (:class:`ProposalCache`, so an
   image seen again costs nothing). The proposer is a constructor argument: any callable ``image (3, H,
   W) -> boxes (N, 4)`` works (tests use jittered ground truth). Proposals do not learn, so they are
   computed without gradients.
2. Backbone: one feature level (``feature_level``, stride 16 by default, as VGG16's conv5_3).
3. RoI head (:mod:`convsight.detection.roi_heads`): RoI max pooling, two FC layers, ``C + 1`` class
   logits and class-specific box offsets; multi-task loss ``cls`` + ``box``.

Differences from the paper: one image scale, no truncated SVD of the FC layers, the RoI sample is
drawn per image (128 rois, 25% foreground) rather than 2 images x 64.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from convsight.detection.base import (
    Detector,
    DetectorConfig,
    PostprocessConfig,
    register_detector,
)
from convsight.detection.proposals import ProposalCache, ProposalConfig, Proposer
from convsight.detection.roi_heads import RoIHead, RoIHeadConfig
from convsight.ops.boxes import clip_boxes, remove_small_boxes
from convsight.structures import DetectorOutput, Target


@dataclass(frozen=True, kw_only=True)
class FastRCNNConfig(DetectorConfig):
    """feature_level: the backbone level the RoIs are pooled from (a stride or a level name);
    max_proposals: proposals kept per image (selective search's first ones; the paper tests with
    2000); proposal_cache: a folder keeping them between runs (shared with R-CNN; None: memory only);
    roi_head: sampling, pooling and FC sizes (:class:`RoIHeadConfig`)."""

    postprocess: PostprocessConfig = field(
        default_factory=lambda: PostprocessConfig(score_threshold=0.05, iou_threshold=0.3, topk=100))
    feature_level: int | str = 16
    max_proposals: int = 2000
    proposal_cache: str | None = None
    roi_head: RoIHeadConfig = field(default_factory=RoIHeadConfig)

    def validate(self) -> None:
        self.check_divisible(32, "the backbone's coarsest stride")
        if self.max_proposals < 1:
            raise self.error(f"max_proposals must be >= 1, got {self.max_proposals}")
        self.check_types(roi_head=RoIHeadConfig)


@register_detector("fast_rcnn", FastRCNNConfig)
class FastRCNNDetector(Detector):
    """Proposer + backbone (one level) + :class:`RoIHead`; see the module doc."""

    config: FastRCNNConfig

    def __init__(self, num_classes: int, config: FastRCNNConfig, proposer: Proposer | None = None) -> None:
        super().__init__(num_classes, config)
        # A ProposalCache is cheap to build; selective search only runs when an image first needs it.
        self.proposer: Proposer = proposer or ProposalCache(ProposalConfig(), folder=config.proposal_cache)
        info = self.backbone.feature_info[0]
        self.roi_head = RoIHead(info.channels, info.stride, num_classes, config.roi_head)

    def backbone_levels(self, config: FastRCNNConfig) -> list[int | str]:
        return [config.feature_level]

    def proposals(self, images: Tensor) -> list[Tensor]:
        """``(B, 3, H, W)`` -> B proposal tensors ``(N_i, 4)``: clipped, non-empty, at most ``max_proposals``."""
        out = []
        with torch.no_grad():
            for image in images:
                p = clip_boxes(self.proposer(image)[: self.config.max_proposals].float().to(images.device),
                               self.image_size)
                out.append(p[remove_small_boxes(p, 1.0)])  # a zero-width box pools nothing useful
        return out

    def forward(self, images: Tensor, targets: list[Target] | None = None,
                postprocess: PostprocessConfig | None = None) -> DetectorOutput:
        self.check_inputs(images, targets)
        proposals = self.proposals(images)
        feature = self.backbone(images)[0]  # (B, C_f, H / s, W / s)
        losses, detections = self.roi_head(feature, proposals, targets, self.image_size,
                                           None if self.training else postprocess or self.postprocess)
        return DetectorOutput(detections=detections, losses=losses)

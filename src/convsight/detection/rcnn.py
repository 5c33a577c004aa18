"""R-CNN (Girshick et al. 2014): classify every region proposal, warped to a fixed size, with a ConvNet.

1. Proposals: selective search, up to ``max_proposals`` per image (:class:`ProposalCache`, so an
   image seen again costs nothing). The proposer is a constructor argument: any callable ``image (3, H,
   W) -> boxes (N, 4)`` works (tests use jittered ground truth).
2. Warp: each proposal is cut out of the *image* and resized to ``warp_size x warp_size``
   (``roi_align`` with ``aligned=True`` on the pixels, i.e. a bilinear crop-and-resize), optionally
   after growing it by ``context_pad`` (R-CNN added 16 px of context at 227 px).
3. A ConvNet (backbone, global average pool, one FC layer) gives ``C + 1`` class logits (index ``C``
   is background) and class-specific box offsets ``(C, 4)`` (the R-CNN ``(dx, dy, dw, dh)``
   parametrisation, weights ``(10, 10, 5, 5)``).

Unlike the paper (fine-tuned softmax, then per-class SVMs and a ridge box regressor on frozen pool5
features) everything here is trained end to end with one loss, ``cls`` (cross-entropy) + ``box``
(smooth L1 on foreground proposals, in the gt class's slot), as Fast R-CNN later did. Training
labels: a proposal is foreground (its best gt's class) with IoU >= ``fg_iou`` (0.5) and background
with IoU < ``bg_iou`` (0.5, Fast R-CNN's choice; the paper's SVMs took < 0.3 as negatives — set
``bg_iou=0.3`` for that, proposals in between are then unused). Per image ``rois_per_image`` (32)
proposals are sampled with up to ``positive_fraction`` (25%) foreground, and the gt boxes are added
to the proposals so every object has at least one perfect positive.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import roi_align

from convsight.detection.base import (
    Detector,
    DetectorConfig,
    PostprocessConfig,
    register_detector,
)
from convsight.detection.proposals import ProposalCache, ProposalConfig, Proposer
from convsight.ops.box_coder import BoxCoder
from convsight.ops.boxes import box_iou, clip_boxes, expand_boxes
from convsight.ops.matching import check_sampling, match_boxes, sample_fg_bg
from convsight.structures import Detections, DetectorOutput, Target


@dataclass(frozen=True, kw_only=True)
class RCNNConfig(DetectorConfig):
    """max_proposals: selective-search boxes used per image (its first ones; the paper's ~2000);
    proposal_cache: a folder keeping them between runs (shared with Fast R-CNN; None: memory only);
    warp_size: side of the warped proposal;
    context_pad: grow each proposal by this factor before warping (1.0: none); fg_iou / bg_iou,
    rois_per_image, positive_fraction: training sample (see the module doc); box_weights: box coder
    weights; hidden: FC width; batch_size: warped proposals per ConvNet call at inference."""

    image_size: tuple[int, int] = (128, 128)
    postprocess: PostprocessConfig = field(
        default_factory=lambda: PostprocessConfig(score_threshold=0.3, iou_threshold=0.3, topk=100))
    max_proposals: int = 2000
    proposal_cache: str | None = None
    warp_size: int = 64
    context_pad: float = 1.0
    fg_iou: float = 0.5
    bg_iou: float = 0.5
    rois_per_image: int = 32
    positive_fraction: float = 0.25
    box_weights: tuple[float, float, float, float] = (10.0, 10.0, 5.0, 5.0)
    hidden: int = 256
    batch_size: int = 128

    def validate(self) -> None:
        if self.max_proposals < 1:
            raise self.error(f"max_proposals must be >= 1, got {self.max_proposals}")
        if self.warp_size < 32 or self.warp_size % 32:
            raise self.error(f"warp_size must be a multiple of 32 (the backbone stride), got {self.warp_size}")
        if self.context_pad < 1.0:
            raise self.error(f"context_pad is a growth factor >= 1, got {self.context_pad}")
        check_sampling(self.arch, self.fg_iou, self.bg_iou, self.rois_per_image, self.positive_fraction)
        if self.hidden < 1 or self.batch_size < 1:
            raise self.error("hidden and batch_size must be >= 1")


# ---- pure maths ---------------------------------------------------------------------------------


def warp_regions(images: Tensor, rois: list[Tensor], size: int, context_pad: float = 1.0) -> Tensor:
    """Cut each box out of its image and resize it to ``size x size``: ``images (B, 3, H, W)``,
    ``rois`` B tensors ``(N_i, 4)`` -> ``(sum N_i, 3, size, size)`` (in the order of ``rois``)."""
    boxes = [expand_boxes(r.float(), context_pad) if context_pad != 1.0 else r.float() for r in rois]
    # sampling_ratio=2: 4 bilinear samples per output pixel, a cheap anti-aliasing for big proposals.
    return roi_align(images, boxes, output_size=size, spatial_scale=1.0, sampling_ratio=2, aligned=True)


def assign_proposals(
    proposals: Tensor, target: Target, num_classes: int, fg_iou: float, bg_iou: float
) -> tuple[Tensor, Tensor]:
    """``proposals (N, 4)`` -> ``labels (N,)`` int64 (gt class, ``num_classes`` = background, or -1 =
    unused for IoU in ``[bg_iou, fg_iou)``) and ``matched_gt (N, 4)`` (best gt box; zeros if none)."""
    gt = target.boxes.float().to(proposals.device)
    matches = match_boxes(box_iou(gt, proposals), high=fg_iou, low=bg_iou)  # (N,) gt index / -1 / -2
    labels = torch.full((len(proposals),), -1, dtype=torch.int64, device=proposals.device)
    labels[matches == -1] = num_classes
    fg = matches >= 0
    labels[fg] = target.labels.to(proposals.device)[matches[fg]]
    matched = torch.zeros_like(proposals)
    matched[fg] = gt[matches[fg]]
    return labels, matched


def sample_proposals(
    proposals: Tensor, target: Target, num_classes: int, config: RCNNConfig, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """Training sample for one image: the gt boxes are added to the proposals, then up to
    ``rois_per_image`` are drawn (``positive_fraction`` foreground). Returns ``rois (M, 4)``,
    ``labels (M,)`` and ``matched_gt (M, 4)``."""
    props = torch.cat([target.boxes.float().to(proposals.device), proposals.float()])  # (G + N, 4)
    labels, matched = assign_proposals(props, target, num_classes, config.fg_iou, config.bg_iou)
    code = torch.where(labels == num_classes, -1, torch.where(labels < 0, -2, labels))  # sample_fg_bg's codes
    pos, neg = sample_fg_bg(code, config.rois_per_image, config.positive_fraction, generator)
    idx = torch.cat([pos, neg])
    return props[idx], labels[idx], matched[idx]


def rcnn_loss(
    logits: Tensor, offsets: Tensor, labels: Tensor, rois: Tensor, matched: Tensor, coder: BoxCoder
) -> dict[str, Tensor]:
    """``logits (M, C+1)``, class-specific ``offsets (M, C, 4)``, ``labels (M,)`` (C = background),
    ``rois``/``matched (M, 4)`` -> ``{"cls", "box"}``. The box term is the smooth L1 of the gt class's
    offsets on foreground rois, summed over the 4 numbers and divided by M (Fast R-CNN's
    normalisation: background rois count in the denominator)."""
    num_classes = offsets.shape[1]
    cls = F.cross_entropy(logits, labels)
    fg = torch.nonzero(labels < num_classes).flatten()  # (F,)
    pred = offsets[fg, labels[fg]]  # (F, 4): the slot of each roi's own class
    target = coder.encode(matched[fg], rois[fg])  # (F, 4)
    box = F.smooth_l1_loss(pred, target, beta=1.0, reduction="sum") / max(len(labels), 1)
    return {"cls": cls, "box": box}


def decode_rcnn(logits: Tensor, offsets: Tensor, rois: Tensor, coder: BoxCoder) -> tuple[Tensor, Tensor]:
    """``logits (N, C+1)``, ``offsets (N, C, 4)``, ``rois (N, 4)`` -> object-class probabilities
    ``(N, C)`` (background column dropped) and class-specific boxes ``(N, C, 4)``."""
    probs = logits.softmax(dim=1)[:, :-1]  # (N, C)
    boxes = coder.decode(offsets, rois[:, None, :])  # (N, C, 4)
    return probs, boxes


class RCNNHead(nn.Module):
    """Pooled features of warped regions ``(M, C_feat)`` -> logits ``(M, C+1)`` and offsets ``(M, C, 4)``."""

    def __init__(self, in_channels: int, num_classes: int, config: RCNNConfig) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.fc = nn.Sequential(nn.Linear(in_channels, config.hidden), nn.ReLU(inplace=True))
        self.cls = nn.Linear(config.hidden, num_classes + 1)
        self.box = nn.Linear(config.hidden, 4 * num_classes)
        # Small start for the offsets: an untrained regressor should leave proposals where they are.
        nn.init.normal_(self.box.weight, std=0.001)
        nn.init.zeros_(self.box.bias)

    def forward(self, feat: Tensor) -> tuple[Tensor, Tensor]:
        x = self.fc(feat)  # (M, C_feat) -> (M, hidden)
        return self.cls(x), self.box(x).view(-1, self.num_classes, 4)  # (M, C+1), (M, C, 4)


@register_detector("rcnn", RCNNConfig)
class RCNNDetector(Detector):
    """Proposer + warp + backbone (the deepest of its default levels, pooled) + :class:`RCNNHead`;
    see the module doc."""

    config: RCNNConfig

    def __init__(self, num_classes: int, config: RCNNConfig, proposer: Proposer | None = None) -> None:
        super().__init__(num_classes, config)  # the backbone runs on the warped regions, not the image
        # A ProposalCache is cheap to build; selective search only runs when an image first needs it.
        self.proposer: Proposer = proposer or ProposalCache(ProposalConfig(), folder=config.proposal_cache)
        self.head = RCNNHead(self.backbone.out_channels, num_classes, config)
        self.coder = BoxCoder(config.box_weights)

    @classmethod
    def upgrade_state_dict(cls, state: Mapping[str, Tensor]) -> Mapping[str, Tensor]:
        """Files written before the backbone moved out of the head (``head.backbone.*``) still load."""
        old = "head.backbone."
        return {("backbone." + k[len(old):] if k.startswith(old) else k): v for k, v in state.items()}

    def score_regions(self, crops: Tensor) -> tuple[Tensor, Tensor]:
        """Warped regions ``(M, 3, S, S)`` -> logits ``(M, C+1)``, offsets ``(M, C, 4)``."""
        feat = self.backbone(crops)[-1].mean(dim=(2, 3))  # (M, C_feat, S/32, S/32) -> (M, C_feat)
        return self.head(feat)

    def proposals(self, images: Tensor) -> list[Tensor]:
        """``(B, 3, H, W)`` -> B proposal tensors ``(N_i, 4)``, clipped, at most ``max_proposals``."""
        out = []
        for image in images:
            p = self.proposer(image)[: self.config.max_proposals]
            out.append(clip_boxes(p.float().to(images.device), self.image_size))
        return out

    def classify(self, images: Tensor, rois: list[Tensor]) -> tuple[Tensor, Tensor]:
        """Warp and classify in chunks of ``batch_size``: -> logits ``(M, C+1)``, offsets ``(M, C, 4)``."""
        crops = warp_regions(images, rois, self.config.warp_size, self.config.context_pad)  # (M, 3, S, S)
        if len(crops) == 0:
            return crops.new_zeros((0, self.num_classes + 1)), crops.new_zeros((0, self.num_classes, 4))
        outs = [self.score_regions(chunk) for chunk in crops.split(self.config.batch_size)]
        return torch.cat([o[0] for o in outs]), torch.cat([o[1] for o in outs])

    def forward(self, images: Tensor, targets: list[Target] | None = None,
                postprocess: PostprocessConfig | None = None) -> DetectorOutput:
        self.check_inputs(images, targets)
        postprocess = postprocess or self.postprocess
        proposals = self.proposals(images)
        losses: dict[str, Tensor] = {}
        if targets is not None:
            samples = [sample_proposals(p, t, self.num_classes, self.config)
                       for p, t in zip(proposals, targets, strict=True)]
            rois = [s[0] for s in samples]
            logits, offsets = self.classify(images, rois)
            losses = rcnn_loss(logits, offsets, torch.cat([s[1] for s in samples]), torch.cat(rois),
                               torch.cat([s[2] for s in samples]), self.coder)
        detections: list[Detections] = []
        if not self.training:
            with torch.no_grad():
                logits, offsets = self.classify(images, proposals)
                for i, part in enumerate(zip(logits.split([len(p) for p in proposals]),
                                             offsets.split([len(p) for p in proposals]), strict=True)):
                    probs, boxes = decode_rcnn(part[0], part[1], proposals[i], self.coder)
                    detections.append(postprocess(boxes, probs, image_size=self.image_size))
        return DetectorOutput(detections=detections, losses=losses)

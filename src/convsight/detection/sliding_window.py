"""Sliding-window detection: a patch classifier run over windows, naively and convolutionally.

A small patch classifier looks at ``S x S`` crops (``S = config.input_size``, 32 by default) and says
which of the ``C`` classes, or background (index ``C``), fills it. Detection = run it over windows
of several sizes and aspect ratios and keep the confident ones after NMS. Two forms, same weights:

- **naive**: crop every window, resize it to ``S x S`` and classify the crops in batches;
- **convolutional** (OverFeat, Sermanet et al. 2014): the fully connected layers ARE convolutions
  (the first with a kernel the size of the feature map at input ``S``, the rest ``1 x 1``), so the
  net slides itself: one pass over an image gives a dense map of scores, one per window position,
  sharing all the computation that overlapping windows have in common.

Why the two agree exactly (up to float rounding): the classifier uses only *valid* convolutions (no
padding) and pools with stride = kernel, so the output at map position ``(i, j)`` depends on exactly
the input pixels ``[r*i, r*i + S) x [r*j, r*j + S)`` (``r`` = total stride, 4), computed the same way
as for that crop alone. A window shape is ``(ky*S, kx*S)`` for whole numbers ``(ky, kx)``; its scale
is the image shrunk by ``(ky, kx)`` with area averaging (``avg_pool2d``), so a window of that shape
becomes exactly ``S x S`` and the window stride in the image is ``(r*ky, r*kx)``. Window starts are
multiples of ``ky`` and ``kx``, so shrinking the whole image then cropping equals cropping then
shrinking the crop (``F.interpolate(mode="area")``). Non-integer scales or padded backbones (such as
``tiny``) would break that equality; that is why this method has its own classifier, ``"patchnet"``.

Training uses crops, as the classifier was meant to be trained: windows of the same set labelled by
IoU with the gt (``>= fg_iou``: the gt's class, ``< bg_iou``: background, in between: unused), a
balanced sample per image, plus each gt box itself as a positive crop. Hard negatives (Dalal and
Triggs 2005; R-CNN's SVMs): a share ``hard_negatives`` of the background sample is the windows the
current classifier likes most (one no-grad convolutional pass over the image scores all of them),
the rest drawn at random. Random negatives alone are mostly easy (flat background): trained on them,
the classifier scored dozens of background windows per scene above 0.5 (62 on average on 40
validation scenes, against a median 0.70 for the best window on an object) and mAP@0.5 stopped at 0.27.
"""

from __future__ import annotations

from collections.abc import Sequence
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
from convsight.ops.boxes import box_iou
from convsight.ops.matching import BACKGROUND, match_boxes, sample_fg_bg
from convsight.ops.windows import window_starts
from convsight.structures import Detections, DetectorOutput, Target

MODES = ("conv", "naive")
TOTAL_STRIDE = 4  # two 2x2 max-pools in PatchNet


@dataclass(frozen=True, kw_only=True)
class SlidingWindowConfig(DetectorConfig):
    """input_size: side S of the classifier's square input (a multiple of 4, >= 16); window_shapes:
    ``(ky, kx)`` whole-number multiples of S per window shape (``(1, 2)`` = S high, 2S wide); mode:
    inference form; fg_iou / bg_iou: window labelling for training; crops_per_image /
    positive_fraction: the balanced training sample; hard_negatives: share of its background crops
    that are the highest-scoring background windows (0: all random); batch_size: crops per
    classifier call (naive).

    backbone: only ``"patchnet"`` (valid convolutions; see the module doc) with random weights."""

    image_size: tuple[int, int] = (128, 128)
    backbone: str = "patchnet"
    postprocess: PostprocessConfig = field(
        default_factory=lambda: PostprocessConfig(score_threshold=0.5, iou_threshold=0.3, topk=50))
    mode: str = "conv"
    input_size: int = 32
    window_shapes: tuple[tuple[int, int], ...] = ((1, 1), (2, 2), (1, 2), (2, 1), (3, 3))
    fg_iou: float = 0.5
    bg_iou: float = 0.3
    crops_per_image: int = 32
    positive_fraction: float = 0.25
    hard_negatives: float = 0.0
    batch_size: int = 256

    def validate(self) -> None:
        self.check_choices(mode=MODES)
        if self.backbone != "patchnet" or self.backbone_weights not in (None, "random"):
            raise self.error("the patch classifier must be backbone='patchnet' with random weights "
                             "(padded backbones break the naive/convolutional equivalence)")
        if self.input_size < 16 or self.input_size % TOTAL_STRIDE:
            raise self.error(f"input_size must be a multiple of 4 and >= 16, got {self.input_size}")
        if not self.window_shapes or any(len(k) != 2 or int(k[0]) != k[0] or int(k[1]) != k[1] or min(k) < 1
                                         for k in self.window_shapes):
            raise self.error(f"window_shapes must be (ky, kx) whole numbers >= 1, got {self.window_shapes}")
        h, w = self.image_size
        if not any(ky * self.input_size <= h and kx * self.input_size <= w for ky, kx in self.window_shapes):
            raise self.error(f"no window shape fits a {h}x{w} image")
        if not 0.0 <= self.bg_iou <= self.fg_iou <= 1.0:
            raise self.error(f"need 0 <= bg_iou <= fg_iou <= 1, got {self.bg_iou}, {self.fg_iou}")
        if self.crops_per_image < 1 or not 0.0 <= self.positive_fraction <= 1.0 or self.batch_size < 1:
            raise self.error("crops_per_image and batch_size must be >= 1, positive_fraction in [0, 1]")
        if not 0.0 <= self.hard_negatives <= 1.0:
            raise self.error(f"hard_negatives is a share in [0, 1], got {self.hard_negatives}")


class PatchNet(nn.Module):
    """``(B, 3, S, S)`` in [0, 1] -> logits ``(B, C+1, 1, 1)``; on a larger image ``(B, 3, H, W)`` ->
    a dense map ``(B, C+1, (H-S)//4 + 1, (W-S)//4 + 1)``: one score vector per window at stride 4.

    conv5 (valid) -> BN -> ReLU -> pool2 -> conv3 (valid) -> BN -> ReLU -> pool2 -> "fc1" = conv with
    kernel the feature map's size at input S -> BN -> ReLU -> "fc2" = conv 1x1.

    BatchNorm: in eval mode it is a fixed per-channel affine map, applied at every position alike, so
    it slides with the convolution before it and the naive and convolutional forms still agree
    (``optimize_for_inference`` folds it into that convolution). In training it normalises over the
    batch of crops, which is what lets this from-scratch classifier learn at all in a few epochs:
    without it, trained on 1500 scenes, it was still near the class prior's loss after an epoch
    (0.94 against 0.96) and reached a val mAP@0.5 of 0.04 after four."""

    def __init__(self, num_outputs: int, input_size: int = 32, width: int = 32, hidden: int = 128) -> None:
        super().__init__()
        fc_kernel = ((input_size - 4) // 2 - 2) // 2  # feature side at input S: S-4, /2, -2, /2
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 5, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),  # (B, w, (S-4)/2, ...)
            nn.Conv2d(width, 2 * width, 3, bias=False), nn.BatchNorm2d(2 * width), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),  # (B, 2w, fc_kernel, ...)
        )
        self.classifier = nn.Sequential(
            nn.Conv2d(2 * width, hidden, fc_kernel, bias=False), nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),  # FC as conv -> (B, hidden, 1, 1)
            nn.Conv2d(hidden, num_outputs, 1),  # FC as 1x1 conv -> (B, C+1, 1, 1)
        )
        # Fixed (ImageNet) statistics: a per-channel affine map commutes with area resizing.
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features((x - self.mean) / self.std))


# ---- window geometry and the two scoring forms --------------------------------------------------


def conv_windows(image_size: Sequence[int], input_size: int, shape: tuple[int, int]) -> Tensor:
    """Windows ``(N, 4)`` xyxy (row-major) that the convolutional form scores for one window shape
    ``(ky, kx)``: size ``(ky*S, kx*S)``, stride ``(4*ky, 4*kx)``, inside the part of the image that
    the ``(ky, kx)`` area-shrink keeps (``floor(H/ky)*ky`` rows)."""
    ky, kx = shape
    hs, ws = int(image_size[0]) // ky, int(image_size[1]) // kx  # shrunk image size
    step = TOTAL_STRIDE
    # convsight.ops.windows adds a border-flush window when the grid stops short; the dense map has
    # none, so keep only the starts on the grid.
    ys = torch.tensor([s for s in window_starts(hs, input_size, step) if s % step == 0], dtype=torch.float32)
    xs = torch.tensor([s for s in window_starts(ws, input_size, step) if s % step == 0], dtype=torch.float32)
    yy, xx = torch.meshgrid(ys * ky, xs * kx, indexing="ij")  # (ny, nx) in image pixels
    return torch.stack((xx, yy, xx + kx * input_size, yy + ky * input_size), -1).reshape(-1, 4)


def _shapes(model: SlidingWindowDetector, image: Tensor) -> list[tuple[int, int]]:
    s = model.config.input_size
    return [(int(ky), int(kx)) for ky, kx in model.config.window_shapes
            if ky * s <= image.shape[-2] and kx * s <= image.shape[-1]]


def naive_scores(model: SlidingWindowDetector, image: Tensor, logits: bool = False) -> tuple[Tensor, Tensor]:
    """Crop each window, area-resize it to ``S x S``, classify in batches: ``image (3, H, W)`` ->
    ``windows (N, 4)`` and ``scores (N, C+1)`` (softmax; raw logits with ``logits=True``)."""
    s = model.config.input_size
    windows, out = [], []
    for ky, kx in _shapes(model, image):
        wins = conv_windows(image.shape[-2:], s, (ky, kx))  # (n, 4)
        crops = torch.stack([image[:, int(y1):int(y2), int(x1):int(x2)] for x1, y1, x2, y2 in wins.tolist()])
        crops = F.interpolate(crops, size=(s, s), mode="area")  # (n, 3, S, S)
        for chunk in crops.split(model.config.batch_size):
            out.append(model.net(chunk).flatten(1))  # (b, C+1, 1, 1) -> (b, C+1)
        windows.append(wins)
    z = torch.cat(out)
    return torch.cat(windows).to(image.device), z if logits else z.softmax(1)


def dense_logits(model: SlidingWindowDetector, images: Tensor) -> list[Tensor]:
    """The convolutional form: one dense pass per window shape over the batch shrunk by ``(ky, kx)``.
    ``images (B, 3, H, W)`` -> per shape ``(B, ny*nx, C+1)`` logits, row-major like
    :func:`conv_windows` (one score vector per window)."""
    out = []
    for ky, kx in _shapes(model, images[0]):
        dense = model.net(F.avg_pool2d(images, kernel_size=(ky, kx)))  # (B, C+1, ny, nx)
        out.append(dense.flatten(2).transpose(1, 2))  # (B, ny*nx, C+1)
    return out


def conv_scores(model: SlidingWindowDetector, image: Tensor, logits: bool = False) -> tuple[Tensor, Tensor]:
    """One dense pass per window shape over the image shrunk by ``(ky, kx)``: ``image (3, H, W)`` ->
    the same ``windows (N, 4)`` in the same order as :func:`naive_scores` and ``scores (N, C+1)``."""
    s = model.config.input_size
    windows, out = [], []
    for shape, dense in zip(_shapes(model, image), dense_logits(model, image[None]), strict=True):
        out.append(dense[0])  # (ny*nx, C+1)
        windows.append(conv_windows(image.shape[-2:], s, shape))
        assert out[-1].shape[0] == windows[-1].shape[0], "dense map and window grid disagree"
    z = torch.cat(out)
    return torch.cat(windows).to(image.device), z if logits else z.softmax(1)


# ---- training targets ---------------------------------------------------------------------------


def label_windows(windows: Tensor, target: Target, num_classes: int, fg_iou: float, bg_iou: float) -> Tensor:
    """``windows (N, 4)`` -> labels ``(N,)`` int64: the best-overlapping gt's class if IoU >= fg_iou,
    ``num_classes`` (background) if IoU < bg_iou, and -1 (not used for training) in between."""
    iou = box_iou(target.boxes.float().to(windows.device), windows)  # (G, N)
    matches = match_boxes(iou, high=fg_iou, low=bg_iou)  # (N,) gt index / BACKGROUND / IGNORE
    labels = torch.full_like(matches, -1)
    labels[matches == BACKGROUND] = num_classes
    fg = matches >= 0
    labels[fg] = target.labels.to(windows.device)[matches[fg]]
    return labels


def sample_training_crops(
    windows: Tensor, target: Target, num_classes: int, config: SlidingWindowConfig,
    objectness: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """A balanced sample for one image: ``boxes (M, 4)`` (gt boxes first, then sampled windows) and
    ``labels (M,)``. Windows labelled -1 are never drawn. ``objectness (N,)``: the current classifier's
    ``1 - p(background)`` per window; with it, ``config.hard_negatives`` of the background crops are
    the highest-scoring background windows instead of random ones."""
    labels = label_windows(windows, target, num_classes, config.fg_iou, config.bg_iou)
    # sample_fg_bg's convention: >= 0 foreground, -1 background, -2 ignored.
    code = torch.where(labels == num_classes, -1, torch.where(labels < 0, -2, labels))
    pos, neg = sample_fg_bg(code, config.crops_per_image, config.positive_fraction)
    n_hard = round(len(neg) * config.hard_negatives) if objectness is not None else 0
    if n_hard:
        background = torch.nonzero(code == -1).flatten()
        hard = background[objectness[background].topk(n_hard).indices]
        rest = neg[~torch.isin(neg, hard)][: len(neg) - n_hard]  # still random, never a hard one twice
        neg = torch.cat([hard, rest])
    idx = torch.cat([pos, neg])
    gt = target.boxes.float().to(windows.device)
    return torch.cat([gt, windows[idx]]), torch.cat([target.labels.to(windows.device), labels[idx]])


@register_detector("sliding_window", SlidingWindowConfig)
class SlidingWindowDetector(Detector):
    """A :class:`PatchNet` and the window geometry; ``config.mode`` picks the inference form."""

    config: SlidingWindowConfig
    has_backbone = False  # the PatchNet is its own feature extractor (valid convolutions, see the module doc)

    def __init__(self, num_classes: int, config: SlidingWindowConfig) -> None:
        super().__init__(num_classes, config)
        self.net = PatchNet(num_classes + 1, config.input_size)
        if config.freeze_backbone:  # "backbone" = the convolutional features; the FC-as-conv layers train
            for p in self.net.features.parameters():
                p.requires_grad_(False)

    def scores(self, image: Tensor) -> tuple[Tensor, Tensor]:
        """``(3, H, W)`` -> windows ``(N, 4)``, softmax scores ``(N, C+1)`` in the configured form."""
        return (conv_scores if self.config.mode == "conv" else naive_scores)(self, image)

    @torch.no_grad()
    def _objectness(self, images: Tensor) -> Tensor:
        """``images (B, 3, H, W)`` -> ``(B, N)``: ``1 - p(background)`` of every window (the order of
        :func:`conv_windows` over the shapes, as :func:`conv_scores` gives them), as the classifier
        stands now: the convolutional form on the whole batch at once, one pass per window shape,
        BatchNorm in eval mode (the statistics inference uses)."""
        was_training = self.net.training
        self.net.eval()
        try:
            z = torch.cat(dense_logits(self, images), 1)  # (B, N, C+1)
        finally:
            self.net.train(was_training)
        return 1.0 - z.float().softmax(-1)[..., self.num_classes]

    def forward(self, images: Tensor, targets: list[Target] | None = None,
                postprocess: PostprocessConfig | None = None) -> DetectorOutput:
        self.check_inputs(images, targets)
        postprocess = postprocess or self.postprocess
        losses: dict[str, Tensor] = {}
        if targets is not None:
            s = self.config.input_size
            windows = torch.cat([conv_windows(self.image_size, s, k) for k in _shapes(self, images[0])])
            windows = windows.to(images.device)  # (N, 4): the inference window set, sampled per image
            rois, labels = [], []
            objectness = self._objectness(images) if self.config.hard_negatives > 0 else None  # (B, N)
            for i, t in enumerate(targets):
                boxes, lab = sample_training_crops(windows, t, self.num_classes, self.config,
                                                   None if objectness is None else objectness[i])
                rois.append(torch.cat([boxes.new_full((len(boxes), 1), i), boxes], 1))  # (M, 5) batch index + box
                labels.append(lab)
            # Crop + resize of arbitrary boxes (gt boxes are off the window grid): roi_align with
            # adaptive sampling averages over each output cell, close to the area resize of inference.
            crops = roi_align(images, torch.cat(rois), output_size=s, spatial_scale=1.0, sampling_ratio=-1,
                              aligned=True)  # (M_total, 3, S, S)
            logits = self.net(crops).flatten(1)  # (M_total, C+1)
            losses["cls"] = F.cross_entropy(logits, torch.cat(labels))
        detections: list[Detections] = []
        if not self.training:
            with torch.no_grad():
                for image in images:
                    windows, probs = self.scores(image)
                    probs = probs[:, : self.num_classes]  # (N, C): background column dropped
                    detections.append(postprocess(windows, probs, image_size=self.image_size))
        return DetectorOutput(detections=detections, losses=losses)

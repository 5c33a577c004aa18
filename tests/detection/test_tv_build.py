"""torchvision's detectors as convsight builds them (``convsight.detection.tv_build``): the same structure,
defaults, label space, ImageNet start and frozen stages as torchvision's own builders.

Structural checks build on the ``meta`` device (no memory, no initialisation cost); torchvision's own
*pretrained* build is obtained by handing its builder a state dict instead of a download
(``WeightsEnum.get_state_dict`` patched), so nothing here needs the network or the weight files.
"""

from __future__ import annotations

from unittest import mock

import pytest
import torch
import torchvision
import torchvision.models.detection as tvd
from torchvision.models._api import WeightsEnum

from convsight.detection import tv_build
from convsight.detection.tv_build import (
    MODELS,
    build_tv_model,
    coco_categories,
    coco_enum,
    coco_label_maps,
    coco_names,
    freeze_early_layers,
    imagenet_backbone_state,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # small nets on a busy 2-core machine
SPECS = list(MODELS.values())
CLASSIFIERS = {"ResNet50_Weights": "resnet50", "MobileNet_V3_Large_Weights": "mobilenet_v3_large", "VGG16_Weights": "vgg16"}

# COCO 2017's 80 object categories, (id, name) as in instances_val2017.json; copied from detectron2's
# detectron2/data/datasets/builtin_meta.py COCO_CATEGORIES (entries with "isthing": 1), which takes
# them from cocodataset/panopticapi panoptic_coco_categories.json.
COCO_2017 = [
    (1, "person"), (2, "bicycle"), (3, "car"), (4, "motorcycle"), (5, "airplane"), (6, "bus"), (7, "train"),
    (8, "truck"), (9, "boat"), (10, "traffic light"), (11, "fire hydrant"), (13, "stop sign"), (14, "parking meter"),
    (15, "bench"), (16, "bird"), (17, "cat"), (18, "dog"), (19, "horse"), (20, "sheep"), (21, "cow"), (22, "elephant"),
    (23, "bear"), (24, "zebra"), (25, "giraffe"), (27, "backpack"), (28, "umbrella"), (31, "handbag"), (32, "tie"),
    (33, "suitcase"), (34, "frisbee"), (35, "skis"), (36, "snowboard"), (37, "sports ball"), (38, "kite"),
    (39, "baseball bat"), (40, "baseball glove"), (41, "skateboard"), (42, "surfboard"), (43, "tennis racket"),
    (44, "bottle"), (46, "wine glass"), (47, "cup"), (48, "fork"), (49, "knife"), (50, "spoon"), (51, "bowl"),
    (52, "banana"), (53, "apple"), (54, "sandwich"), (55, "orange"), (56, "broccoli"), (57, "carrot"), (58, "hot dog"),
    (59, "pizza"), (60, "donut"), (61, "cake"), (62, "chair"), (63, "couch"), (64, "potted plant"), (65, "bed"),
    (67, "dining table"), (70, "toilet"), (72, "tv"), (73, "laptop"), (74, "mouse"), (75, "remote"), (76, "keyboard"),
    (77, "cell phone"), (78, "microwave"), (79, "oven"), (80, "toaster"), (81, "sink"), (82, "refrigerator"),
    (84, "book"), (85, "clock"), (86, "vase"), (87, "scissors"), (88, "teddy bear"), (89, "hair drier"), (90, "toothbrush"),
]


def test_the_91_ids_map_to_cocos_80_names_and_back():
    names = coco_names()
    label_of_tv, tv_of_label = coco_label_maps()
    assert len(coco_categories()) == 91 and len(names) == 80
    assert [(int(i), n) for i, n in zip(tv_of_label, names, strict=True)] == COCO_2017  # torchvision index = COCO id
    assert torch.equal(label_of_tv[tv_of_label], torch.arange(80))
    unused = [i for i in range(91) if i not in {c for c, _ in COCO_2017}]  # 0 = background, 10 ids COCO skips
    assert len(unused) == 11 and (label_of_tv[unused] == -1).all()


def _torchvision_pretrained(spec, ours_state=None, trainable=None):  # type: ignore[no-untyped-def]
    """torchvision's own pretrained build of ``spec`` on the meta device: with COCO weights (handed
    ``ours_state`` instead of a download), or, with ``trainable``, from its ImageNet backbone (handed a
    fresh classifier's state) with that many trainable backbone stages."""
    def state(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        kind = CLASSIFIERS.get(type(self).__name__)
        return getattr(torchvision.models, kind)().state_dict() if kind else ours_state

    with torch.device("meta"), mock.patch.object(WeightsEnum, "get_state_dict", state):
        if trainable is None:
            return getattr(tvd, spec.name)(weights=coco_enum(spec))
        enum_class, _, member = spec.imagenet.partition(".")
        return getattr(tvd, spec.name)(weights_backbone=getattr(torchvision.models, enum_class)[member],
                                       num_classes=91, trainable_backbone_layers=trainable)


def _layout(model: torch.nn.Module) -> list[tuple[str, str, float | None]]:
    return [(n, type(m).__name__, getattr(m, "eps", None)) for n, m in model.named_modules() if n != "transform"]


def _frozen(model: torch.nn.Module) -> list[str]:
    return sorted(n for n, p in model.named_parameters() if not p.requires_grad)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_structure_defaults_and_frozen_stages_are_torchvisions(spec):
    with torch.device("meta"):
        ours = build_tv_model(spec, 91)
    coco = _torchvision_pretrained(spec, ours.state_dict())  # a strict load: same keys and shapes
    assert _layout(ours) == _layout(coco)  # FrozenBatchNorm2d where torchvision's pretrained build has it, same eps
    theirs = coco.roi_heads if spec.family == "rcnn" else coco
    pp = spec.postprocess
    assert (pp.score_threshold, pp.iou_threshold, pp.topk) == (theirs.score_thresh, theirs.nms_thresh,
                                                               theirs.detections_per_img)
    if spec.family != "rcnn":
        assert pp.pre_nms_topk == theirs.topk_candidates
    t = coco.transform
    assert spec.image_size == (t.fixed_size or (t.min_size[0], t.min_size[0]))  # torchvision's own input scale
    assert isinstance(ours.transform, tv_build.KeepSize) and ours.transform.image_mean == t.image_mean
    if spec.imagenet is not None:  # torchvision's trainable_backbone_layers: its default, and one stage
        for k in (spec.trainable_layers[0], 1):
            with torch.device("meta"):
                mine = build_tv_model(spec, 91)
            freeze_early_layers(mine, spec, k)
            assert _frozen(mine) == _frozen(_torchvision_pretrained(spec, trainable=k)) and _frozen(mine)


@pytest.mark.parametrize("backbone", ["resnet50", "mobilenet_v3_large", "vgg16"])
def test_imagenet_weights_land_where_torchvisions_extractor_puts_them(backbone, monkeypatch):
    from torchvision.models.detection.backbone_utils import (
        _mobilenet_extractor,
        _resnet_fpn_extractor,
    )
    from torchvision.models.detection.ssd import SSDFeatureExtractorVGG
    from torchvision.models.vgg import cfgs, make_layers

    torch.manual_seed(0)
    if backbone == "vgg16":  # VGG16's features only (what IMAGENET1K_FEATURES is for); no 400 MB classifier
        features = make_layers(cfgs["D"])
        state = {f"features.{k}": v for k, v in features.state_dict().items()}
        reference = {f"backbone.{k}": v for k, v in SSDFeatureExtractorVGG(features, highres=False).state_dict().items()}
    else:
        classifier = getattr(torchvision.models, backbone)()
        state = classifier.state_dict()
        extractor = (_resnet_fpn_extractor(classifier, 5) if backbone == "resnet50"
                     else _mobilenet_extractor(classifier, True, 6))
        reference = {f"backbone.body.{k}": v for k, v in extractor.body.state_dict().items()}
    monkeypatch.setattr(tv_build, "torchvision_state_dict", lambda enum: (state, "test"))
    spec = next(s for s in SPECS if s.backbone == backbone and s.imagenet is not None)
    mapped = imagenet_backbone_state(spec)
    # The classifier's own tensors (shared storage): SSD's extra layers, fc6 / fc7 and L2 scale are new.
    ours = {v.data_ptr() for v in state.values()}
    wanted = {k for k, v in reference.items() if v.data_ptr() in ours}
    assert set(mapped) == wanted and len(wanted) >= 26  # VGG16: 13 convs; ResNet50 / MobileNetV3: more
    assert all(torch.equal(mapped[k], reference[k]) for k in mapped)


def test_ssdlite_has_no_imagenet_start():
    from convsight.errors import WeightsError

    with pytest.raises(WeightsError, match="no ImageNet start"):
        imagenet_backbone_state(MODELS["ssdlite320_mobilenet_v3_large"])

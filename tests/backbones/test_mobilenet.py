"""MobileNetV2: stage cuts, and real ImageNet weights that load offline and recognise a cat."""

from __future__ import annotations

import pytest
import skimage.data
import torch
import torchvision
from torchvision.models import MobileNet_V2_Weights

from convsight.backbones import build_backbone
from convsight.weights import read_weights, shipped_file

CATS = set(range(281, 286))  # ImageNet: tabby, tiger cat, Persian, Siamese, Egyptian cat
CUPS = {504, 967, 968}  # coffee mug, espresso, cup
# torchvision's ImageNet statistics, written out here rather than taken from the code under test
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def test_mobilenet_stage_shapes() -> None:
    bb = build_backbone("mobilenet_v2")
    expected = [(16, 2), (24, 4), (32, 8), (96, 16), (1280, 32)]
    assert [(f.channels, f.stride) for f in bb.feature_info] == expected
    for f, info in zip(bb(torch.rand(1, 3, 64, 96)), bb.feature_info, strict=True):
        assert f.shape == (1, info.channels, 64 // info.stride, 96 // info.stride)


@pytest.fixture(scope="module")
def imagenet_pair() -> tuple[torch.nn.Module, torch.nn.Module]:
    """Our backbone with 'imagenet' weights, and torchvision's full model loaded from the same file."""
    bb = build_backbone("mobilenet_v2", weights="imagenet").eval()
    path = shipped_file("mobilenet_v2-b0353104.pth")
    assert path is not None
    ref = torchvision.models.mobilenet_v2(weights=None).eval()
    ref.load_state_dict(read_weights(path)[0])
    return bb, ref


def test_imagenet_weights_load_offline_from_package(imagenet_pair) -> None:
    bb, _ = imagenet_pair
    assert bb.loaded_weights.pretrained
    assert bb.loaded_weights.source.startswith("package:")
    assert bb.loaded_weights.source.endswith("mobilenet_v2-b0353104.pth")


def test_features_equal_torchvision(imagenet_pair) -> None:
    bb, ref = imagenet_pair
    x = torch.rand(2, 3, 96, 96)
    with torch.no_grad():
        ours = bb(x)[-1]
        theirs = ref.features((x - MEAN) / STD)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


def _top5(logits: torch.Tensor) -> set[int]:
    return set(logits.topk(5, dim=-1).indices[0].tolist())


@pytest.mark.parametrize(("image", "classes"), [("chelsea", CATS), ("coffee", CUPS)])
def test_real_photos_are_recognised(imagenet_pair, image: str, classes: set[int]) -> None:
    bb, ref = imagenet_pair
    photo = torch.from_numpy(getattr(skimage.data, image)()).permute(2, 0, 1)
    x = MobileNet_V2_Weights.IMAGENET1K_V1.transforms()(photo)[None]  # torchvision's own preprocessing
    with torch.no_grad():
        assert _top5(ref(x)) & classes
        assert ref(x).argmax().item() in classes
        # Our backbone takes [0, 1] pixels and normalises itself: same crop, un-normalised.
        x01 = x * STD + MEAN
        pooled = bb(x01)[-1].mean(dim=(2, 3))
        assert ref.classifier(pooled).argmax().item() in classes

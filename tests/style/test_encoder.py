import pytest
import torch
from torch import nn

from convsight.errors import ConfigError, ConvsightWarning, WeightsError
from convsight.style.encoder import ENCODERS, build_encoder
from convsight.weights import save_state_dict

TAPS = ("relu1_1", "relu2_1")


def test_vgg19_taps_named_as_in_the_paper_and_truncated() -> None:
    enc = build_encoder("vgg19", "random", taps=("relu1_1", "relu2_1", "relu3_1", "conv4_2", "relu4_2"))
    names = ENCODERS["vgg19"].layer_names
    assert names[:5] == ("conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1")
    assert len(enc.features) == names.index("relu4_2") + 1  # nothing after the last tap
    out = enc(torch.rand(1, 3, 32, 32))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "relu1_1": (1, 64, 32, 32), "relu2_1": (1, 128, 16, 16), "relu3_1": (1, 256, 8, 8),
        "conv4_2": (1, 512, 4, 4), "relu4_2": (1, 512, 4, 4)}
    # conv4_2 is the pre-activation of relu4_2 (an inplace ReLU would have overwritten it)
    assert (out["conv4_2"] < 0).any()
    torch.testing.assert_close(out["conv4_2"].clamp_min(0), out["relu4_2"])


def test_pooling_is_selectable() -> None:
    avg = build_encoder("vgg19", "random", pooling="avg", taps=TAPS)
    mx = build_encoder("vgg19", "random", pooling="max", taps=TAPS)
    assert isinstance(avg.features[4], nn.AvgPool2d) and isinstance(mx.features[4], nn.MaxPool2d)
    with pytest.raises(ConfigError):
        build_encoder("vgg19", "random", pooling="median", taps=TAPS)


def test_random_init_is_deterministic_and_leaves_global_rng_alone() -> None:
    torch.manual_seed(5)
    before = torch.rand(1)
    torch.manual_seed(5)
    a = build_encoder("vgg19", "random", taps=TAPS)
    after = torch.rand(1)
    b = build_encoder("vgg19", "random", taps=TAPS)
    assert torch.equal(before, after)
    torch.testing.assert_close(a.features[2].weight, b.features[2].weight)
    assert "random" in a.describe() and not a.is_reference


def test_caffe_normalisation() -> None:
    enc = build_encoder("vgg19", "random", taps=TAPS, normalization="caffe")
    x = torch.rand(1, 3, 4, 4)
    expected = x[:, [2, 1, 0]] * 255 - torch.tensor([103.939, 116.779, 123.68]).view(1, 3, 1, 1)
    torch.testing.assert_close(enc.normalize(x), expected)


def test_weights_file_round_trip_with_caffe_metadata(tmp_path) -> None:
    src = build_encoder("vgg19", "random", taps=("relu2_1",))
    state = {f"features.{k}": v + 0.01 for k, v in src.features.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(2, 2)  # a whole torchvision model: classifier ignored
    path = save_state_dict(state, tmp_path / "vgg.safetensors", {"normalization": "caffe"})
    enc = build_encoder("vgg19", path, taps=TAPS)
    assert enc.normalization == "caffe" and enc.pretrained and "file" in enc.describe()
    torch.testing.assert_close(enc.features[0].weight, src.features[0].weight + 0.01)


def test_bad_weights_and_taps_are_user_errors(tmp_path) -> None:
    with pytest.raises(WeightsError):
        build_encoder("vgg19", tmp_path / "missing.safetensors", taps=TAPS)
    short = save_state_dict({"features.0.weight": torch.zeros(64, 3, 3, 3)}, tmp_path / "short.safetensors")
    with pytest.raises(WeightsError):
        build_encoder("vgg19", short, taps=TAPS)
    with pytest.raises(ConfigError):
        build_encoder("vgg19", "random", taps=("relu9_9",))
    with pytest.raises(ConfigError):
        build_encoder("resnet", "random")


def test_mobilenet_default_loads_shipped_imagenet_weights() -> None:
    enc = build_encoder("mobilenet_v2", "imagenet")
    assert enc.pretrained and "IMAGENET1K_V1" in enc.describe()
    out = enc(torch.rand(1, 3, 64, 64))
    assert set(out) == {"features1", "features3", "features6", "features10", "features13"}
    assert len(enc.features) == 14
    enc.train()
    assert not enc.training  # batch norm stays in eval mode


def test_imagenet_unavailable_offline_warns_and_keeps_the_seeded_init(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))  # an empty hub cache; no package ships VGG19
    with pytest.warns(ConvsightWarning, match="vgg19.*not on this machine.*random init") as record:
        enc = build_encoder("vgg19", "imagenet", taps=TAPS, allow_download=False)
    assert record[0].filename == __file__  # the warning points at the caller's line
    assert not enc.pretrained and "ImageNet weights unavailable" in enc.describe()
    ref = build_encoder("vgg19", "random", taps=TAPS)
    torch.testing.assert_close(enc.features[2].weight, ref.features[2].weight)


def test_file_metadata_is_checked(tmp_path) -> None:
    src = build_encoder("vgg19", "random", taps=TAPS)
    state = dict(src.features.state_dict())
    wrong_arch = save_state_dict(state, tmp_path / "a.safetensors", {"arch": "mobilenet_v2"})
    with pytest.raises(WeightsError, match="mobilenet_v2"):
        build_encoder("vgg19", wrong_arch, taps=TAPS)
    bad_norm = save_state_dict(state, tmp_path / "n.safetensors", {"normalization": "bgr"})
    with pytest.raises(WeightsError, match="normalization"):
        build_encoder("vgg19", bad_norm, taps=TAPS)
    plain = build_encoder("vgg19", save_state_dict(state, tmp_path / "p.safetensors"), taps=TAPS)
    assert plain.normalization == "torchvision" and plain.pretrained  # "N.*" keys load too
    with pytest.raises(WeightsError, match="unexpected key"):
        build_encoder("vgg19", save_state_dict({"head.w": torch.zeros(1)}, tmp_path / "h.safetensors"), taps=TAPS)

"""The feed-forward stylizer: any input size, [0, 1] output, exact save/load, determinism."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from convsight.errors import ConfigError, ImageError, WeightsError
from convsight.style.base import Stylizer
from convsight.style.fast import (
    FastStylizer,
    FastStylizerInfo,
    TransformerConfig,
    TransformerNet,
    pad_to_multiple,
    resolve_model,
)

SMALL = TransformerConfig(channels=8, n_residual=1)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _stylizer(seed: int = 0) -> FastStylizer:
    torch.manual_seed(seed)
    return FastStylizer(TransformerNet(SMALL), FastStylizerInfo(style="stripes.png", encoder="x", alpha=0.3, size=64))


def test_is_a_stylizer() -> None:
    assert isinstance(_stylizer(), Stylizer)


@pytest.mark.parametrize("hw", [(1, 1), (17, 33), (50, 31), (64, 64)])
def test_shape_preserved_for_any_size(hw: tuple[int, int]) -> None:
    out = _stylizer().stylize(torch.rand(3, *hw))
    assert out.shape == (3, *hw)


def test_output_in_unit_range_even_for_out_of_range_input() -> None:
    out = _stylizer().stylize(torch.randn(3, 40, 24) * 5)
    assert out.dtype == torch.float32 and out.min() >= 0 and out.max() <= 1
    assert out.std() > 0  # not a constant image


def test_rejects_non_rgb_tensor() -> None:
    with pytest.raises(ImageError, match="3, H, W"):
        _stylizer().stylize(torch.rand(1, 3, 16, 16))


def test_pad_to_multiple() -> None:
    img = torch.rand(1, 3, 17, 5)
    x, h, w = pad_to_multiple(img)
    assert (h, w) == (17, 5) and x.shape[-2:] == (20, 16)  # multiple of 4, and at least 16
    assert torch.equal(x[..., :17, :5], img)
    assert torch.equal(x[..., 19, 15], img[..., 16, 4])  # replicated edge


def test_save_load_round_trip_is_exact(tmp_path: Path) -> None:
    s = _stylizer()
    path = s.save(tmp_path / "m.safetensors")
    loaded = FastStylizer.load(path)
    assert loaded.info == s.info and loaded.net.config == SMALL
    x = torch.rand(3, 37, 29)
    assert torch.equal(loaded.stylize(x), s.stylize(x))


def test_deterministic() -> None:
    x = torch.rand(3, 32, 48)
    a, b = _stylizer(seed=1), _stylizer(seed=1)
    assert torch.equal(a.stylize(x), b.stylize(x))
    assert torch.equal(a.stylize(x), a.stylize(x))
    assert not torch.equal(a.stylize(x), _stylizer(seed=2).stylize(x))


def test_load_refuses_other_files(tmp_path: Path) -> None:
    from convsight.weights import save_state_dict

    other = save_state_dict({"w": torch.zeros(2)}, tmp_path / "other.safetensors")
    with pytest.raises(WeightsError, match="not a convsight fast-stylizer"):
        FastStylizer.load(other)
    s = _stylizer()
    meta = s.metadata() | {"config": '{"channels": 16, "n_residual": 1}'}  # lies about the shapes
    bad = save_state_dict(s.net.state_dict(), tmp_path / "bad.safetensors", meta)
    with pytest.raises(WeightsError, match="do not fit"):
        FastStylizer.load(bad)
    with pytest.raises(WeightsError, match="not found"):
        FastStylizer.load(tmp_path / "missing.safetensors")


def test_resolve_model(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    assert resolve_model(path) == path
    with pytest.raises(WeightsError, match="not a shipped fast stylizer"):
        resolve_model("no_such_style")


def test_config_validated() -> None:
    with pytest.raises(ConfigError, match="channels"):
        TransformerConfig(channels=2)
    with pytest.raises(ConfigError, match="n_residual"):
        TransformerConfig(n_residual=-1)


def test_shipped_models_load_and_stylise() -> None:
    from convsight.style.fast import shipped_fast_stylizers

    names = shipped_fast_stylizers()
    if not names:
        pytest.skip("no fast stylizer ships in src/convsight/assets/style")
    x = torch.rand(3, 41, 30)
    for name in names:
        s = FastStylizer.load(resolve_model(name))
        assert s.info.style and s.info.encoder and s.info.steps > 0
        out = s.stylize(x)
        assert out.shape == x.shape and 0 <= out.min() and out.max() <= 1
        assert (out - x).abs().mean() > 0.02  # it does something

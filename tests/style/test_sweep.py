import warnings

import numpy as np
import pytest
import torch

from convsight.errors import ConfigError, ConvsightWarning
from convsight.style.gatys import GatysConfig, GatysStylizer
from convsight.style.sweep import alpha_sweep, labelled_grid, parse_alphas


def test_parse_alphas() -> None:
    assert parse_alphas("0.001, 0.01,0.5") == [0.001, 0.01, 0.5]
    for bad in ("", "a,b", "0.1,2"):
        with pytest.raises(ConfigError):
            parse_alphas(bad)


def test_labelled_grid_layout() -> None:
    grid = labelled_grid([torch.zeros(3, 10, 20), torch.ones(3, 20, 10)], ["a", "b"], cell=40, pad=2)
    assert grid.dtype == np.uint8 and grid.shape[1] == 2 * (40 + 2) + 2
    assert grid.shape[0] > 40  # room for the label above the cell


def test_alpha_sweep_one_result_per_alpha() -> None:
    content, style = torch.rand(3, 24, 24), torch.rand(3, 24, 24)
    cfg = GatysConfig(size=24, steps=2, encoder="vgg19", weights="random",
                      style_layers=(("relu1_1", 1.0),), content_layer="relu1_1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvsightWarning)
        stylizer = GatysStylizer(style, cfg)
    grid, results = alpha_sweep(stylizer, content, style, [0.0, 1.0], cell=32)
    assert len(results) == 2 and grid.shape[1] == 4 * (32 + 6) + 6
    assert results[0].history[-1]["content"] == 0.0  # alpha 0: content never computed
    assert results[1].history[0]["total"] == pytest.approx(0.0, abs=1e-9)  # alpha 1 from content: optimum

"""The options that make Gatys reach a loss in less time (issue 19): target_loss, line_search, bounds,
coarse_steps. Each is off by default, and off it changes nothing."""

import warnings

import pytest
import torch

from convsight.errors import ConfigError, ConvsightWarning
from convsight.style.encoder import build_encoder
from convsight.style.gatys import GatysConfig, GatysStylizer
from convsight.style.losses import StyleContentLoss

LAYERS = dict(encoder="vgg19", weights="random", style_layers=(("relu1_1", 1.0), ("relu2_1", 1.0)),
              content_layer="relu2_1")


@pytest.fixture(scope="module")
def encoder():
    return build_encoder("vgg19", "random", taps=("relu1_1", "relu2_1"))


@pytest.fixture(scope="module")
def images():
    g = torch.Generator().manual_seed(1)
    content = torch.rand(3, 32, 32, generator=g).mul(0.8).add(0.1)
    style = torch.zeros(3, 32, 32)
    style[0, :, ::4] = 1.0  # red stripes on blue: pushes pixels past [0, 1]
    style[2] = 0.9
    return content, style


def _stylizer(encoder, style, **kw) -> GatysStylizer:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvsightWarning)
        return GatysStylizer(style, GatysConfig(size=32, **{**LAYERS, **kw}), encoder=encoder)


def test_defaults_are_the_strong_wolfe_lbfgs_loop_bit_for_bit(encoder, images) -> None:
    """The loop as it was before these options, written out: the defaults must give the same pixels."""
    content, style = images
    st = _stylizer(encoder, style, steps=12)
    enc = encoder.to(memory_format=torch.channels_last)
    loss_fn = StyleContentLoss(enc, st.loss_config, content, [style], None)
    x = content.clone()[None].contiguous().requires_grad_(True)
    opt = torch.optim.LBFGS([x], lr=1.0, max_iter=12, max_eval=12, tolerance_grad=0.0, tolerance_change=0.0,
                            history_size=50, line_search_fn="strong_wolfe")
    evals = []

    def closure():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(x.contiguous(memory_format=torch.channels_last)).total.sum()
        loss.backward()
        evals.append(float(loss.detach()))
        return loss

    while len(evals) < 12:
        opt.step(closure)
    r = st.run(content)
    assert [h["total"] for h in r.history] == evals
    assert torch.equal(r.image, x.detach()[0].clamp(0, 1))
    assert r.evals_per_level == [len(evals)] and r.sizes == [(32, 32)]


def test_target_loss_stops_at_the_first_evaluation_under_it(encoder, images) -> None:
    content, style = images
    full = _stylizer(encoder, style, steps=15, frames_every=1).run(content)
    totals = [h["total"] for h in full.history]
    k = next(i for i, t in enumerate(totals) if t < 0.5 * totals[0])  # the first evaluation under half the start
    stopped = _stylizer(encoder, style, steps=15, target_loss=totals[k]).run(content)
    assert len(stopped.history) == k + 1 and stopped.evals_per_level == [k + 1]
    assert torch.equal(stopped.image, full.frames[k][1])  # the pixels of that evaluation, not the line search's start


def test_target_loss_applies_to_the_last_level_only(encoder, images) -> None:
    content, style = images
    r = _stylizer(encoder, style, steps=6, levels=2, coarse_steps=4, line_search="none", target_loss=1e9).run(content)
    assert r.evals_per_level == [4, 1]  # any loss is under 1e9: the coarse level still runs its budget


def test_no_line_search_is_one_evaluation_per_step_and_differs(encoder, images) -> None:
    content, style = images
    plain = _stylizer(encoder, style, steps=10, line_search="none").run(content)
    wolfe = _stylizer(encoder, style, steps=10).run(content)
    assert len(plain.history) == 10  # strong-Wolfe may overrun its budget finishing a line search; this cannot
    # It falls, but slowly here: the relative loss's gradients are small, so the fixed first steps are tiny
    # (the strong-Wolfe search scales them up), which is why the line search stays the default.
    assert plain.history[-1]["total"] < plain.history[0]["total"] and wolfe.history[-1]["total"] < plain.history[-1]["total"]
    assert not torch.equal(plain.image, wolfe.image)


def test_bounds_in_the_loss_scores_the_pixels_that_are_written(encoder, images) -> None:
    """bounds="loss": each evaluation's loss is that of the clipped image; "clip" scores unclipped pixels."""
    content, style = images
    loss_fn = StyleContentLoss(encoder, _stylizer(encoder, style).loss_config, content, [style], None)

    def gaps(bounds: str) -> list[float]:
        r = _stylizer(encoder, style, steps=12, frames_every=1, bounds=bounds).run(content)
        with torch.no_grad():
            return [abs(float(loss_fn(f[None]).total) - h["total"]) / h["total"] for (_, f), h in zip(r.frames, r.history)]

    assert max(gaps("loss")) < 1e-4  # float32, channels-last vs contiguous: rounding only
    assert max(gaps("clip")) > 1e-3  # the stripes push pixels out of [0, 1], and clipping changes the loss


def test_coarse_steps_budget_the_coarser_levels(encoder, images) -> None:
    content, style = images
    calls = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvsightWarning)
        st = GatysStylizer(style, GatysConfig(size=32, steps=5, levels=2, coarse_steps=3, line_search="none", **LAYERS),
                           encoder=encoder, callback=lambda step, total, _: calls.append((step, total)))
    r = st.run(content)
    assert r.sizes == [(16, 16), (32, 32)] and r.evals_per_level == [3, 5]
    assert calls == [(i, 8) for i in range(1, 9)]  # the total counts the coarse budget, not steps * levels
    same = _stylizer(encoder, style, steps=5, levels=2, line_search="none").run(content)
    assert same.evals_per_level == [5, 5]  # coarse_steps 0: each level gets `steps`, as before


@pytest.mark.parametrize("bad", [dict(line_search="armijo"), dict(bounds="wrap"), dict(coarse_steps=-1), dict(first_step=-1.0),
                                 dict(target_loss=-0.1)])
def test_options_are_validated(bad) -> None:
    with pytest.raises(ConfigError):
        GatysConfig(**bad)


def test_first_step_moves_the_largest_pixel_by_its_size_and_costs_no_extra_evaluation(encoder, images) -> None:
    content, style = images
    r = _stylizer(encoder, style, steps=6, first_step=0.01, line_search="none", frames_every=1).run(content)
    assert len(r.history) == 6  # its own evaluation is one of the budget, and L-BFGS does not redo it
    first_move = (r.frames[1][1] - r.frames[0][1]).abs().max()  # content in [0.1, 0.9]: nothing clipped yet
    assert float(first_move) == pytest.approx(0.01, rel=1e-4)
    assert r.history[1]["total"] < r.history[0]["total"]


def test_first_step_hands_lbfgs_a_scaled_start(encoder, images) -> None:
    """torch's first step is tiny (L1 norm 1) and its line search spends evaluations growing it; with
    the first step taken at a few grey levels and handed over, the loss falls further in the same budget."""
    content, style = images
    default = _stylizer(encoder, style, steps=6).run(content)
    scaled = _stylizer(encoder, style, steps=6, first_step=0.05).run(content)
    assert scaled.history[5]["total"] < 0.9 * default.history[5]["total"]

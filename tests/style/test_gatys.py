import warnings

import pytest
import torch

from convsight.errors import ConfigError, ConvsightWarning
from convsight.style import colour
from convsight.style.base import Stylizer
from convsight.style.encoder import build_encoder
from convsight.style.gatys import GatysConfig, GatysStylizer, max_side_for_memory

TAPS = ("relu1_1", "relu2_1")
LAYERS = dict(encoder="vgg19", weights="random", style_layers=(("relu1_1", 1.0), ("relu2_1", 1.0)),
              content_layer="relu2_1")


@pytest.fixture(scope="module")
def encoder():
    return build_encoder("vgg19", "random", taps=TAPS)


@pytest.fixture(scope="module")
def images():
    g = torch.Generator().manual_seed(1)
    content = torch.rand(3, 32, 32, generator=g).mul(0.5).add(0.25)
    style = torch.zeros(3, 32, 32)
    style[0, :, ::4] = 1.0  # red stripes on blue
    style[2] = 0.6
    return content, style


def _stylizer(encoder, style, **kw) -> GatysStylizer:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvsightWarning)
        return GatysStylizer(style, GatysConfig(size=32, **{**LAYERS, **kw}), encoder=encoder)


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_loss_falls_over_20_steps(encoder, images, optimizer) -> None:
    content, style = images
    r = _stylizer(encoder, style, alpha=0.1, steps=20, optimizer=optimizer, lr=0.05).run(content)
    assert 20 <= len(r.history) <= 45  # L-BFGS may finish its last line search
    assert r.history[-1]["total"] < 0.7 * r.history[0]["total"]
    assert r.image.shape == (3, 32, 32) and 0 <= float(r.image.min()) and float(r.image.max()) <= 1


def test_alpha_one_from_noise_approaches_the_content_features(encoder, images) -> None:
    content, style = images
    r = _stylizer(encoder, style, alpha=1.0, steps=30, init="noise").run(content)
    assert r.history[-1]["content"] < 0.05 * r.history[0]["content"]


def test_same_seed_same_image_other_seed_other_image(encoder, images) -> None:
    content, style = images
    a = _stylizer(encoder, style, steps=5, init="noise", seed=3).stylize(content)
    b = _stylizer(encoder, style, steps=5, init="noise", seed=3).stylize(content)
    c = _stylizer(encoder, style, steps=5, init="noise", seed=4).stylize(content)
    assert isinstance(_stylizer(encoder, style), Stylizer)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_luminance_colour_preservation_keeps_content_chroma(encoder, images) -> None:
    content, style = images
    plain = _stylizer(encoder, style, steps=10).stylize(content)
    kept = _stylizer(encoder, style, steps=10, colour="luminance").stylize(content)
    uv = colour.rgb_to_yuv(content)[1:]
    err_kept = float((colour.rgb_to_yuv(kept)[1:] - uv).abs().mean())
    err_plain = float((colour.rgb_to_yuv(plain)[1:] - uv).abs().mean())
    assert err_kept < 0.01 < err_plain


def test_histogram_colour_preservation_runs(encoder, images) -> None:
    content, style = images
    out = _stylizer(encoder, style, steps=3, colour="histogram").stylize(content)
    assert out.shape == content.shape


def test_multiscale_frames_and_blend(encoder, images) -> None:
    content, style = images
    r = _stylizer(encoder, [style, style.flip(0)], steps=4, levels=2, frames_every=2,
                  style_blend=(0.5, 0.5)).run(content)
    assert r.sizes == [(16, 16), (32, 32)]
    assert [s for s, _ in r.frames][:2] == [2, 4] and len(r.frames) == len(r.history) // 2
    with pytest.raises(ConfigError):
        _stylizer(encoder, [style, style], style_blend=(1.0,))


def test_memory_aware_size_limit(encoder, images) -> None:
    content, style = images
    assert max_side_for_memory(encoder, memory=1 << 20) < max_side_for_memory(encoder, memory=1 << 30)
    st = _stylizer(encoder, style, steps=1, max_size=20)
    with pytest.warns(ConvsightWarning, match="memory"):
        out = st.stylize(content)
    assert max(out.shape[-2:]) == 20


def test_warns_which_encoder_ran_and_validates(encoder, images) -> None:
    with pytest.warns(ConvsightWarning, match="vgg19 \\(random init"):
        GatysStylizer(images[1], GatysConfig(size=32, **LAYERS), encoder=encoder)
    for bad in (dict(alpha=2.0), dict(optimizer="sgd"), dict(init="zeros"), dict(colour="sepia"), dict(levels=9)):
        with pytest.raises(ConfigError):
            GatysConfig(**bad)


def test_bf16_precision_runs_and_reports_float_losses(encoder, images) -> None:
    content, style = images
    r = _stylizer(encoder, style, steps=5, precision="bf16").run(content)
    assert r.image.dtype == torch.float32 and r.history[-1]["total"] < r.history[0]["total"]


# The loss layers are worked out once (GatysConfig.loss_config), before the encoder is built, and the
# encoder is built with exactly those taps. The first loss evaluation is checked against Gatys et
# al.'s terms written out here by hand (not through convsight.style.losses / gram).
HAND = dict(encoder="vgg19", weights="random", style_layers=(("relu1_1", 1.0), ("relu3_1", 3.0)),
            content_layer="relu2_1")


def _hand_terms(x, content, style, normalization: str) -> dict[str, float]:
    ref = build_encoder("vgg19", "random", taps=("relu1_1", "relu2_1", "relu3_1", "relu4_1"))  # deeper: same maps
    fx, fc, fs = (ref(t[None]) for t in (x, content, style))

    def gram(f):  # (1, C, h, w) -> (C, C), F F^T / (C h w)
        c, n = f.shape[1], f[0].numel()
        m = f[0].reshape(c, -1)
        return m @ m.T / n

    es = {}
    for tap in ("relu1_1", "relu3_1"):
        d = (gram(fx[tap]) - gram(fs[tap])).pow(2).sum()
        es[tap] = d / gram(fs[tap]).pow(2).sum() if normalization == "relative" else d / 4
    style_term = 0.25 * es["relu1_1"] + 0.75 * es["relu3_1"]  # weights 1 : 3, normalised to sum 1
    d = (fx["relu2_1"] - fc["relu2_1"]).pow(2).sum()
    content_term = d / fc["relu2_1"].pow(2).sum() if normalization == "relative" else d / 2
    tv = (x[:, 1:] - x[:, :-1]).pow(2).mean() + (x[:, :, 1:] - x[:, :, :-1]).pow(2).mean()
    return {"style": float(style_term), "content": float(content_term), "tv": float(tv),
            "total": float(0.7 * style_term + 0.3 * content_term + 0.5 * tv)}


@pytest.mark.parametrize("normalization", ["relative", "paper"])
@pytest.mark.parametrize("init", ["content", "style"])  # content: Jcontent = 0 at start; style: Jstyle = 0
def test_first_loss_is_the_papers_terms_by_hand(images, monkeypatch, normalization, init) -> None:
    from convsight.style import gatys

    content, style = images
    built = []

    def spy(*args, **kw):
        built.append(args)
        return build_encoder(*args, **kw)

    monkeypatch.setattr(gatys, "build_encoder", spy)
    cfg = GatysConfig(size=32, steps=1, optimizer="adam", init=init, alpha=0.3, tv_weight=0.5,
                      loss_normalization=normalization, **HAND)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvsightWarning)
        st = GatysStylizer(style, cfg)
    assert len(built) == 1 and built[0][3] == ("relu1_1", "relu3_1", "relu2_1") == st.loss_config.taps
    assert st.encoder.taps == st.loss_config.taps and len(st.encoder.features) == 12  # ends at relu3_1
    first = st.run(content).history[0]
    expected = _hand_terms(content if init == "content" else style, content, style, normalization)
    assert first == pytest.approx(expected, rel=1e-4, abs=1e-7)
    assert (expected["content"] == 0) == (init == "content") and (expected["style"] == 0) == (init == "style")


def test_default_layers_are_the_encoders_taps_and_the_offline_default_is_pretrained(images) -> None:
    cfg = GatysConfig(size=32, steps=1)
    with pytest.warns(ConvsightWarning, match="mobilenet_v2 \\(torchvision IMAGENET1K_V1"):
        st = GatysStylizer(images[1], cfg)  # the default: MobileNetV2 with its shipped ImageNet weights
    assert st.encoder.name == "mobilenet_v2" and st.encoder.pretrained
    assert st.loss_config.layer_weights == dict.fromkeys(("features1", "features3", "features6", "features10",
                                                          "features13"), 0.2)
    assert st.loss_config.content_tap == "features10" and st.encoder.taps == st.loss_config.taps
    vgg = GatysConfig(encoder="vgg19").loss_config()
    assert list(vgg.layer_weights) == ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
    assert vgg.content_tap == "relu4_2"


def test_loss_layers_follow_the_config_and_must_be_encoder_taps(encoder, images) -> None:
    st = _stylizer(encoder, images[1], alpha=0.1)
    st2 = st.with_config(alpha=0.4, style_layers=(("relu1_1", 1.0),))
    assert st2.loss_config.alpha == 0.4 and st2.loss_config.layer_weights == {"relu1_1": 1.0}
    assert st.loss_config.layer_weights == {"relu1_1": 0.5, "relu2_1": 0.5}  # the original is untouched
    with pytest.raises(ConfigError, match="relu3_1"):
        st.with_config(content_layer="relu3_1")  # the shared encoder stops at relu2_1
    with pytest.raises(ConfigError, match="relu3_1"):
        _stylizer(encoder, images[1], content_layer="relu3_1")
    with pytest.raises(ConfigError, match="unknown style encoder"):
        GatysConfig(encoder="resnet", style_layers=(("relu1_1", 1.0),))

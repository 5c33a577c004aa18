import pytest
import torch

from convsight.errors import ConfigError
from convsight.style.encoder import build_encoder
from convsight.style.gram import gram_matrix
from convsight.style.losses import (
    StyleContentLoss, StyleLossConfig, alpha_from_paper_ratio, content_loss, paper_ratio, style_loss,
    total_variation,
)

TAPS = ("relu1_1", "relu2_1")


@pytest.fixture(scope="module")
def encoder():
    return build_encoder("vgg19", "random", taps=TAPS)


def _cfg(alpha: float, **kw) -> StyleLossConfig:
    return StyleLossConfig.equal(TAPS, "relu2_1", alpha=alpha, **kw)


def test_config_validation() -> None:
    for bad in (dict(alpha=-0.1), dict(alpha=1.5), dict(alpha=0.5, tv_weight=-1), dict(alpha=0.5, normalization="x")):
        with pytest.raises(ConfigError):
            _cfg(**bad)
    with pytest.raises(ConfigError):
        StyleLossConfig({"relu1_1": 0.0}, "relu2_1")
    assert _cfg(0.5).layer_weights == {"relu1_1": 0.5, "relu2_1": 0.5}


def test_alpha_one_at_the_content_image_is_the_optimum(encoder) -> None:
    content, style = torch.rand(3, 32, 32), torch.rand(3, 32, 32)
    loss = StyleContentLoss(encoder, _cfg(1.0), content, [style])
    x = content[None].clone().requires_grad_(True)
    terms = loss(x)
    terms.total.sum().backward()
    assert float(terms.total.detach()) < 1e-10
    assert float(x.grad.abs().max()) < 1e-8


def test_alpha_zero_ignores_content(encoder) -> None:
    style, x0 = torch.rand(3, 32, 32), torch.rand(1, 3, 32, 32)
    grads = []
    for content in (torch.rand(3, 32, 32), torch.zeros(3, 32, 32)):
        x = x0.clone().requires_grad_(True)
        terms = StyleContentLoss(encoder, _cfg(0.0), content, [style])(x)
        terms.total.sum().backward()
        assert float(terms.content) == 0.0
        grads.append(x.grad)
    assert grads[0].abs().sum() > 0
    assert torch.equal(grads[0], grads[1])  # the content image has no influence at all


def test_relative_terms_are_one_at_zero_features_and_zero_at_target() -> None:
    f = {"a": torch.rand(1, 4, 5, 5)}
    targets = {"a": gram_matrix(f["a"])}
    assert float(style_loss(f, targets, {"a": 1.0})) == 0.0
    zero = {"a": torch.zeros(1, 4, 5, 5)}
    torch.testing.assert_close(style_loss(zero, targets, {"a": 1.0}), torch.ones(1), atol=1e-6, rtol=0)
    torch.testing.assert_close(content_loss(torch.zeros(1, 4, 5, 5), f["a"]), torch.ones(1))


def test_paper_normalisation_and_ratio_mapping() -> None:
    f, p = torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 4)
    torch.testing.assert_close(content_loss(f, p, "paper"), 0.5 * (f - p).pow(2).sum().view(1))
    g, a = gram_matrix(f), gram_matrix(p)
    # E_l = 1 / (4 N^2 M^2) sum (F F^T - A)^2 with unnormalised Grams
    ff, pp = f.reshape(3, 16), p.reshape(3, 16)
    e_paper = ((ff @ ff.T - pp @ pp.T) ** 2).sum() / (4 * 3**2 * 16**2)
    torch.testing.assert_close(style_loss({"a": f}, {"a": a}, {"a": 1.0}, "paper"), e_paper.view(1))
    assert alpha_from_paper_ratio(1e-3) == pytest.approx(1e-3 / 1.001)
    assert alpha_from_paper_ratio(1.0) == 0.5
    r = paper_ratio(0.5, {"a": a}, p)["a"]
    assert r == pytest.approx(float(a.pow(2).sum()) / (2 * float(p.pow(2).sum())))
    assert g.shape == (1, 3, 3)


def test_total_variation() -> None:
    assert float(total_variation(torch.full((1, 3, 8, 8), 0.3))) == 0.0
    x = torch.zeros(1, 3, 4, 4)
    x[..., ::2] = 1.0  # vertical stripes: every horizontal neighbour differs by 1
    torch.testing.assert_close(total_variation(x), torch.ones(1))


def test_blended_styles_average_their_grams(encoder) -> None:
    s1, s2 = torch.rand(3, 32, 32), torch.rand(3, 32, 32) * 0.5
    blended = StyleContentLoss(encoder, _cfg(0.5), None, [s1, s2], blend=[3.0, 1.0]).style_targets
    g1 = StyleContentLoss(encoder, _cfg(0.5), None, [s1]).style_targets
    g2 = StyleContentLoss(encoder, _cfg(0.5), None, [s2]).style_targets
    for t in TAPS:
        torch.testing.assert_close(blended[t], 0.75 * g1[t] + 0.25 * g2[t])
    with pytest.raises(ConfigError):
        StyleContentLoss(encoder, _cfg(0.5), None, [s1, s2], blend=[1.0])

import torch

from convsight.style import colour


def test_yuv_round_trip() -> None:
    x = torch.rand(3, 8, 9)
    torch.testing.assert_close(colour.yuv_to_rgb(colour.rgb_to_yuv(x)), x, atol=1e-5, rtol=0)


def test_combine_luminance_keeps_content_chroma() -> None:
    content = torch.rand(3, 16, 16) * 0.5 + 0.25  # away from the clamp
    stylised = torch.rand(3, 16, 16) * 0.3 + 0.35
    out = colour.combine_luminance(stylised, content)
    torch.testing.assert_close(colour.rgb_to_yuv(out)[1:], colour.rgb_to_yuv(content)[1:], atol=1e-4, rtol=0)
    torch.testing.assert_close(colour.rgb_to_yuv(out)[0], colour.rgb_to_yuv(stylised)[0], atol=1e-4, rtol=0)


def test_match_luminance_moments() -> None:
    style, content = torch.rand(3, 20, 20) * 0.2, torch.rand(3, 10, 10) * 0.5 + 0.25
    y = colour.match_luminance(style, content)
    yc = colour.rgb_to_yuv(content)[0]
    assert torch.allclose(y[0], y[1]) and torch.allclose(y[0], y[2])
    assert abs(float(y[0].mean() - yc.mean())) < 1e-3 and abs(float(y[0].std() - yc.std())) < 1e-3


def test_match_colour_matches_mean_and_covariance() -> None:
    source = torch.rand(3, 32, 32) * 0.3 + torch.tensor([0.1, 0.4, 0.2]).view(3, 1, 1)
    target = torch.rand(3, 24, 24) * 0.4 + torch.tensor([0.3, 0.2, 0.4]).view(3, 1, 1)
    out = colour.match_colour(source, target).reshape(3, -1).double()
    t = target.reshape(3, -1).double()
    torch.testing.assert_close(out.mean(1), t.mean(1), atol=1e-3, rtol=0)
    torch.testing.assert_close(torch.cov(out), torch.cov(t), atol=1e-3, rtol=0)


def test_histogram_match_takes_target_values() -> None:
    source, target = torch.rand(3, 8, 8), torch.rand(3, 8, 8)
    out = colour.histogram_match(source, target)
    torch.testing.assert_close(out.flatten(1).sort(1).values, target.flatten(1).sort(1).values)

"""Training the feed-forward stylizer: the loss falls, checkpoints are written, runs are seeded."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from convsight.errors import ConfigError, ConvsightWarning, ImageError
from convsight.style.fast import FastStylizer, TransformerConfig, TransformerNet
from convsight.style.fast_train import ContentSampler, FastTrainConfig, PerceptualLoss, train_fast

TINY = dict(size=32, batch_size=2, style_size=64, channels=8, n_residual=1)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def content_dir(tmp_path: Path) -> Path:
    """Three tiny content images: colour gradients plus texture (distinct, deterministic)."""
    folder = tmp_path / "content"
    folder.mkdir()
    yy, xx = np.mgrid[0:48, 0:56] / 48.0
    for i in range(3):
        img = np.stack([np.sin(3 * xx + i), np.cos(2 * yy - i), np.sin(xx * yy * 4 + i)], -1) * 0.6
        img += np.random.RandomState(i).uniform(-0.4, 0.4, img.shape)
        Image.fromarray(((img + 1) * 127.5).astype(np.uint8)).save(folder / f"c{i}.png")
    return folder


@pytest.fixture
def style_path(tmp_path: Path) -> Path:
    """Red/blue diagonal stripes: a style far from the content's smooth blobs."""
    yy, xx = np.mgrid[0:64, 0:64]
    stripes = ((xx + yy) // 4) % 2 == 0
    img = np.zeros((64, 64, 3), np.uint8)
    img[stripes] = (220, 30, 30)
    img[~stripes] = (20, 40, 200)
    path = tmp_path / "stripes.png"
    Image.fromarray(img).save(path)
    return path


def test_loss_falls_and_checkpoints(content_dir: Path, style_path: Path, tmp_path: Path) -> None:
    cfg = FastTrainConfig(steps=30, checkpoint_every=10, alpha=0.5, **TINY)
    out = tmp_path / "model.safetensors"
    result = train_fast(style_path, content_dir, cfg, out=out)
    assert len(result.history) == 30 and result.checkpoints == 3  # steps 10, 20, then the final one
    loaded = FastStylizer.load(out)
    assert loaded.info.steps == 30 and loaded.info.style == "stripes.png" and loaded.info.size == 32
    assert loaded.info.encoder == "mobilenet_v2:imagenet" and loaded.info.alpha == 0.5

    # the perceptual loss on one fixed batch, before (same seeded init) and after training
    torch.manual_seed(cfg.seed)
    untrained = TransformerNet(TransformerConfig(cfg.channels, cfg.n_residual)).eval()
    from convsight.io.images import load_image_tensor, resize_long

    loss = PerceptualLoss(resize_long(load_image_tensor(style_path), cfg.style_size), alpha=cfg.alpha)
    x = ContentSampler(sorted(content_dir.iterdir()), 32, torch.Generator().manual_seed(5)).sample(4)
    with torch.no_grad():
        before, after = loss(untrained(x), x), loss(loaded.net(x), x)
    assert after.total < 0.8 * before.total
    assert after.style < before.style and after.content < before.content


def test_seeded_runs_are_identical(content_dir: Path, style_path: Path) -> None:
    cfg = FastTrainConfig(steps=2, **TINY)
    a = train_fast(style_path, content_dir, cfg).stylizer.net.state_dict()
    b = train_fast(style_path, content_dir, cfg).stylizer.net.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_unreadable_images_are_skipped(content_dir: Path, style_path: Path) -> None:
    (content_dir / "broken.png").write_bytes(b"not a png")
    with pytest.warns(ConvsightWarning, match="broken.png"):
        train_fast(style_path, content_dir, FastTrainConfig(steps=1, **TINY))
    for p in content_dir.glob("c*.png"):
        p.unlink()
    with warnings.catch_warnings(), pytest.raises(ImageError, match="none of the 1 content images"):
        warnings.simplefilter("ignore")
        train_fast(style_path, content_dir, FastTrainConfig(steps=1, **TINY))


def test_bad_inputs(content_dir: Path, style_path: Path, tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="folder not found"):
        train_fast(style_path, tmp_path / "nope", FastTrainConfig(steps=1, **TINY))
    with pytest.raises(ConfigError, match="safetensors"):
        train_fast(style_path, content_dir, FastTrainConfig(steps=1, **TINY), out=tmp_path / "m.pt")
    with pytest.raises(ConfigError, match="size"):
        FastTrainConfig(size=30)
    with pytest.raises(ConfigError, match="alpha"):
        FastTrainConfig(alpha=1.5)
    with pytest.raises(ConfigError, match="encoder"):
        FastTrainConfig(encoder="resnet")

"""A toy detector registered as ``toy`` so the shared detection plumbing (build, engine, serialize,
CLI) is tested without depending on any one method's speed."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from convsight.detection.base import DETECTORS, Detector, DetectorConfig, PostprocessConfig, register_detector
from convsight.structures import DetectorOutput, Target


@dataclass(frozen=True, kw_only=True)
class ToyConfig(DetectorConfig):
    image_size: tuple[int, int] = (64, 64)
    sizes: tuple[float, ...] = (1.0, 2.0)
    postprocess: PostprocessConfig = field(default_factory=lambda: PostprocessConfig(score_threshold=0.0))


class ToyDetector(Detector):
    """One learnable box per class (normalised), scored by a learnable presence logit per class."""

    has_backbone = False  # nothing to learn from the pixels: the plumbing is what is tested

    def __init__(self, num_classes: int, config: ToyConfig) -> None:
        super().__init__(num_classes, config)
        self.box = nn.Parameter(torch.zeros(num_classes, 4))
        self.logit = nn.Parameter(torch.zeros(num_classes))

    def forward(self, images: Tensor, targets: list[Target] | None = None,
                postprocess: PostprocessConfig | None = None) -> DetectorOutput:
        self.check_inputs(images, targets)
        postprocess = postprocess or self.postprocess
        h, w = self.image_size
        scale = images.new_tensor([w, h, w, h])
        cxcy, wh = self.box.sigmoid()[:, :2], self.box.sigmoid()[:, 2:]
        boxes = torch.cat([cxcy - wh / 2, cxcy + wh / 2], 1) * scale  # (C, 4)
        losses = {}
        if targets is not None:
            box_terms, presence = [], []
            for t in targets:
                present = torch.zeros(self.num_classes)
                present[t.labels] = 1.0
                presence.append(present)
                for b, lab in zip(t.boxes, t.labels, strict=True):
                    box_terms.append(F.l1_loss(boxes[lab] / scale, b / scale))
            losses["cls"] = F.binary_cross_entropy_with_logits(self.logit.expand(len(targets), -1), torch.stack(presence))
            losses["box"] = torch.stack(box_terms).mean() if box_terms else self.box.sum() * 0
        dets = []
        if not self.training:
            for _ in range(len(images)):
                dets.append(postprocess(boxes.detach(), self.logit.sigmoid().detach(),
                                             torch.arange(self.num_classes), image_size=(h, w)))
        return DetectorOutput(dets, losses)


if "toy" not in DETECTORS:
    register_detector("toy", ToyConfig)(ToyDetector)


@pytest.fixture(scope="session")
def scenes(tmp_path_factory):
    """A 12-image synthetic COCO dataset (64 px scenes)."""
    from convsight.io.synth_writer import write_synthetic
    from convsight.io.synthetic import SynthConfig

    root = tmp_path_factory.mktemp("det") / "scenes"
    write_synthetic(root, 12, SynthConfig(image_size=(64, 64), max_objects=2, min_size=10), seed=0, fmt="coco")
    return root


def make_target(boxes: list[list[float]], labels: list[int]) -> Target:
    return Target(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), torch.tensor(labels, dtype=torch.int64))


def scene_batch(size: tuple[int, int], n: int, seed: int, **synth: object) -> tuple[Tensor, list[Target]]:
    """``n`` synthetic scenes of three shape classes as a batch ``(n, 3, H, W)`` plus their targets."""
    from convsight.io.images import to_tensor
    from convsight.io.synthetic import SynthConfig, render_scene

    cfg = SynthConfig(image_size=size, classes=("ellipse", "rectangle", "triangle"), **synth)  # type: ignore[arg-type]
    scenes = [render_scene(cfg, seed=seed, index=i) for i in range(n)]
    images = torch.stack([to_tensor(s.image) for s in scenes])
    targets = [Target(torch.as_tensor(s.boxes), torch.as_tensor(s.labels, dtype=torch.int64), i) for i, s in enumerate(scenes)]
    return images, targets


class JitteredGt:
    """Cheap proposer for tests: the image's gt boxes (looked up by pixel content), four jittered
    copies each (std ``jitter`` px), plus ``n`` random boxes of side 8..8+``max_extra`` px.
    Deterministic: its own generator, reset per image."""

    def __init__(self, images: Tensor, targets: list[Target], n: int = 24, jitter: float = 4.0, max_extra: float = 32.0) -> None:
        self.table = list(zip(images, targets, strict=True))
        self.n, self.jitter, self.max_extra = n, jitter, max_extra

    def __call__(self, image: Tensor) -> Tensor:
        g = torch.Generator().manual_seed(0)
        gt = next((t.boxes for im, t in self.table if torch.equal(im, image)), torch.zeros(0, 4))
        h, w = image.shape[-2:]
        xy = torch.rand(self.n, 2, generator=g) * torch.tensor([w * 0.7, h * 0.7])
        rand = torch.cat([xy, xy + 8 + torch.rand(self.n, 2, generator=g) * self.max_extra], 1)
        jit = gt.repeat(4, 1) + torch.randn(4 * len(gt), 4, generator=g) * self.jitter
        return torch.cat([jit, rand])


def adam_steps(model: nn.Module, images: Tensor, targets: list[Target], steps: int, lr: float) -> list[dict[str, float]]:
    """Train ``model`` (put in train mode) for ``steps`` Adam steps on one fixed batch; returns each
    step's loss terms, measured before that step, plus their sum under ``"loss"``."""
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    history = []
    for _ in range(steps):
        out = model(images, targets)
        history.append({"loss": out.loss.item(), **{k: v.item() for k, v in out.losses.items()}})
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    return history

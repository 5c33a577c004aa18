"""Pretrain a backbone as a classifier (YOLO's two-stage recipe, stage one).

The backbone gets a temporary head (global average pooling + dropout + one linear layer), is trained
through the shared :class:`~convsight.training.Trainer` on class-folder crops (offline: the synthetic
crops of ``convsight data synth --mode crops``), and only the backbone's weights are kept, as
safetensors, ready for ``--weights FILE`` in a detector.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Subset

from convsight.backbones.base import Backbone
from convsight.backbones.build import build_backbone
from convsight.backbones.weights import save_backbone_weights
from convsight.errors import ConfigError
from convsight.io.torch_data import CropsDataset
from convsight.training import TrainConfig, Trainer, classification_loss, load_checkpoint


@dataclass(frozen=True)
class PretrainConfig:
    """What to pretrain and how; the training schedule itself is a :class:`TrainConfig`."""

    backbone: str = "tiny"
    weights: str | None = None  # initial weights spec (e.g. "imagenet" to fine-tune)
    image_size: int = 64
    epochs: int = 5
    batch_size: int = 64
    lr: float = 3e-3
    label_smoothing: float = 0.1
    val_fraction: float = 0.2
    dropout: float = 0.2
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if self.image_size < 16:
            raise ConfigError(f"image_size must be >= 16, got {self.image_size}")


@dataclass(frozen=True, eq=False)
class ClassifierOutput:
    """logits: ``(B, K)``; losses: ``{"cls": ...}`` when labels were given."""

    logits: Tensor
    losses: dict[str, Tensor]


class BackboneClassifier(nn.Module):
    """Backbone + temporary head: last feature map -> global average pool -> dropout -> linear."""

    def __init__(self, backbone: Backbone, num_classes: int, dropout: float = 0.2, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(backbone.out_channels, num_classes))
        self.label_smoothing = label_smoothing

    def forward(self, images: Tensor, labels: Tensor | None = None) -> ClassifierOutput:
        """images ``(B, 3, H, W)`` in [0, 1]; labels ``(B,)`` int64 or None."""
        feat = self.backbone(images)[-1]  # (B, C, h, w)
        logits = self.head(F.adaptive_avg_pool2d(feat, 1).flatten(1))  # (B, K)
        losses = {} if labels is None else {"cls": classification_loss(logits, labels, self.label_smoothing)}
        return ClassifierOutput(logits, losses)


class FlipRotate(torch.utils.data.Dataset):
    """Random flips and quarter turns of ``(image, label)`` items (shape classes do not change under
    them); drawn from torch's global RNG, which the Trainer seeds and restores on resume."""

    def __init__(self, data: Any) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        image, label = self.data[i]
        k, flip = torch.randint(0, 4, ()).item(), torch.rand(()).item() < 0.5
        image = torch.rot90(image, int(k), dims=(1, 2))
        return (image.flip(-1) if flip else image), label


@torch.no_grad()
def accuracy(model: nn.Module, data: Any, batch_size: int = 256) -> float:
    """Top-1 accuracy of a classifier on a dataset of ``(image, label)``."""
    model.eval()
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size)
    device = next(model.parameters()).device
    correct = total = 0
    for images, labels in loader:
        pred = model(images.to(device)).logits.argmax(1).cpu()
        correct += int((pred == labels).sum())
        total += len(labels)
    return correct / max(total, 1)


@dataclass(frozen=True)
class PretrainResult:
    weights: Path  # the backbone alone, safetensors
    val_accuracy: float  # of the best epoch
    epochs: int
    class_names: tuple[str, ...]
    loss_curve: Path
    history: list[dict[str, Any]]


def pretrain_backbone(crops_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str], cfg: PretrainConfig = PretrainConfig(),
                      resume: bool = False) -> PretrainResult:
    """Train ``cfg.backbone`` as a crop classifier; keep the best epoch's backbone (by val accuracy)."""
    out_dir = Path(out_dir)
    data = CropsDataset(crops_dir, size=cfg.image_size)
    n_val = max(1, int(round(len(data) * cfg.val_fraction)))
    if len(data) - n_val < 1:
        raise ConfigError(f"{crops_dir}: {len(data)} crops are too few to split off a validation set")
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(cfg.seed)).tolist()
    train, val = FlipRotate(Subset(data, order[n_val:])), Subset(data, order[:n_val])
    backbone = build_backbone(cfg.backbone, weights=cfg.weights)
    model = BackboneClassifier(backbone, len(data.class_names), cfg.dropout, cfg.label_smoothing)
    train_cfg = TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, optimizer="adamw", lr=cfg.lr, weight_decay=1e-4,
                            schedule="cosine", warmup_epochs=min(1, cfg.epochs - 1), seed=cfg.seed,
                            label_smoothing=cfg.label_smoothing, monitor="accuracy", monitor_mode="max", progress=cfg.progress)
    result = Trainer(model, train, val, train_cfg, out_dir, evaluate_fn=lambda m: {"accuracy": accuracy(m, val)}).fit(resume=resume)
    if result.best_path is not None:  # keep the best epoch, not merely the last
        model.load_state_dict(load_checkpoint(result.best_path).model)
    weights = save_backbone_weights(model.backbone, out_dir / "backbone.safetensors")
    best = max(float(r["accuracy"]) for r in result.history)
    return PretrainResult(weights, best, len(result.history), data.class_names, result.loss_curve, result.history)

"""Training a face embedder on identity folders (one folder per person) with the shared Trainer.

Batches are P x K (P people, K images each, FaceNet's layout, so every batch holds positives and
negatives to mine): one dataset item *is* one batch (``batch_size=1`` and an unwrapping collate),
which lets :class:`~convsight.training.trainer.Trainer` keep its progress bar, checkpoints and
validation unchanged. A tenth of the identities (at least two) is held out: the validation loss
and the per-epoch verification accuracy are measured on people never trained on, and the final
:class:`~convsight.faces.verification.Threshold` is calibrated on pairs of them and saved in the
safetensors metadata next to the weights.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from convsight.errors import ConfigError, DatasetError, WeightsError
from convsight.faces.losses import PairwiseHead, batch_pairwise_loss, triplet_loss
from convsight.faces.small_net import SmallFaceNet, SmallNetConfig
from convsight.faces.verification import Threshold, calibrate, evaluate

LOSSES = ("triplet", "pairwise")
FORMAT = "convsight_face_embedder"


@dataclass(frozen=True)
class FaceTrainConfig:
    """loss: ``"triplet"`` or ``"pairwise"``; margin: the triplet alpha; p, k: people and images per
    batch; steps: batches per epoch; val_fraction: share of identities held out; target_far: the
    calibrated threshold's FAR (None: best accuracy); width, chip_size: the network's."""

    loss: str = "triplet"
    margin: float = 0.2
    p: int = 16
    k: int = 4
    epochs: int = 10
    steps: int = 100
    lr: float = 2e-3
    weight_decay: float = 1e-4
    val_fraction: float = 0.1
    val_pairs: int = 1000
    target_far: float | None = None
    width: int = 16
    chip_size: int = 48
    seed: int = 0
    device: str = "auto"
    progress: bool = True

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ConfigError(f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if self.p < 2 or self.k < 2:
            raise ConfigError(f"P x K batches need P >= 2 people and K >= 2 images each, got {self.p} x {self.k}")
        if not 0 < self.val_fraction < 1:
            raise ConfigError(f"val_fraction must be in (0, 1), got {self.val_fraction!r}")
        if not self.margin > 0:
            raise ConfigError(f"margin must be > 0, got {self.margin!r}")
        SmallNetConfig(self.width, 128, self.chip_size)  # validates those two


@dataclass(frozen=True)
class IdentityImages:
    """images (N, 3, S, S) uint8; labels (N,) int64 in [0, len(names)); names: folder names."""

    images: Tensor
    labels: Tensor
    names: list[str]

    def subset(self, keep: list[int]) -> IdentityImages:
        """Only identities ``keep`` (indices into names), relabelled 0..len(keep)-1."""
        remap = torch.full((len(self.names),), -1, dtype=torch.long)
        remap[torch.tensor(keep)] = torch.arange(len(keep))
        mask = remap[self.labels] >= 0
        return IdentityImages(self.images[mask], remap[self.labels[mask]], [self.names[i] for i in keep])


def load_identity_folders(root: str | os.PathLike[str], size: int) -> IdentityImages:
    """Every image of ``root/<person>/...`` resized to (size, size); people with < 2 images skipped."""
    import cv2

    from convsight.io.images import list_images, load_image

    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder (expected one sub-folder of images per person)")
    images, labels, names = [], [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        files = list_images(folder)
        if len(files) < 2:
            continue
        for f in files:
            images.append(cv2.resize(load_image(f), (size, size), interpolation=cv2.INTER_AREA))
            labels.append(len(names))
        names.append(folder.name)
    if len(names) < 4:
        raise DatasetError(f"{root}: {len(names)} people with >= 2 images; training needs at least 4")
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()  # (N, 3, S, S) uint8
    return IdentityImages(x, torch.tensor(labels, dtype=torch.long), names)


class PKBatches(Dataset[tuple[Tensor, Tensor]]):
    """``steps`` P x K batches per epoch: item i is ``(images (P*K, 3, S, S) float, labels (P*K,))``,
    a pure function of (seed, epoch, i); random horizontal flips when ``augment``."""

    def __init__(self, data: IdentityImages, p: int, k: int, steps: int, seed: int = 0, augment: bool = True) -> None:
        self.data, self.p, self.k, self.steps, self.seed, self.augment = data, p, k, steps, seed, augment
        self.epoch = 0
        self.members = [torch.nonzero(data.labels == c).flatten() for c in range(len(data.names))]
        if len(self.members) < 2:
            raise DatasetError("P x K batches need at least 2 identities")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        g = torch.Generator().manual_seed(hash((self.seed, self.epoch, int(i))) & 0x7FFFFFFF)
        people = torch.randperm(len(self.members), generator=g)[: self.p]
        idx = []
        for c in people.tolist():
            m = self.members[c]
            if len(m) >= self.k:
                pick = torch.randperm(len(m), generator=g)[: self.k]
            else:  # too few images: repeat some (flips still vary them)
                pick = torch.randint(len(m), (self.k,), generator=g)
            idx.append(m[pick])
        index = torch.cat(idx)
        x = self.data.images[index].float() / 255  # (P*K, 3, S, S)
        if self.augment:
            flip = torch.rand(len(x), generator=g) < 0.5
            x[flip] = x[flip].flip(-1)
        return x, self.data.labels[index]


def _unwrap(items: list[Any]) -> Any:
    return items[0]


@dataclass
class TrainOutput:
    losses: dict[str, Tensor] = field(default_factory=dict)


class EmbedderTraining(nn.Module):
    """The trainer's model: the embedder plus what its loss learns (the pairwise head)."""

    def __init__(self, embedder: SmallFaceNet, loss: str, margin: float) -> None:
        super().__init__()
        self.embedder, self.loss, self.margin = embedder, loss, margin
        self.head = PairwiseHead(embedder.dim) if loss == "pairwise" else None

    def forward(self, images: Tensor, labels: Tensor) -> TrainOutput:
        emb = self.embedder(images)
        if self.head is None:
            return TrainOutput({"triplet": triplet_loss(emb, labels, self.margin)})
        return TrainOutput({"pairwise": batch_pairwise_loss(emb, labels, self.head.weight, self.head.bias)})


@torch.no_grad()
def embed_images(embedder: nn.Module, images: Tensor, batch: int = 256) -> np.ndarray:
    """(N, 3, S, S) uint8 or float in [0, 1] -> (N, D) float32 embeddings (eval mode)."""
    embedder.eval()
    device = next(embedder.parameters()).device
    out = []
    for i in range(0, len(images), batch):
        x = images[i : i + batch]
        x = x.float() / 255 if x.dtype == torch.uint8 else x.float()
        out.append(embedder(x.to(device)).cpu())
    return torch.cat(out).numpy().astype(np.float32)


def sample_pairs(labels: np.ndarray, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """About n/2 same-person and n/2 different-person index pairs (i, j, same) over ``labels``."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    by_label = [np.nonzero(labels == c)[0] for c in np.unique(labels)]
    by_label = [m for m in by_label if len(m) >= 2]
    if not by_label or len(np.unique(labels)) < 2:
        raise DatasetError("pairs need >= 2 people and one with >= 2 images")
    same = [tuple(rng.choice(by_label[rng.integers(len(by_label))], 2, replace=False)) for _ in range(n // 2)]
    diff = []
    while len(diff) < n - n // 2:
        i, j = rng.integers(len(labels), size=2)
        if labels[i] != labels[j]:
            diff.append((i, j))
    ij = np.array(same + diff)
    return ij[:, 0], ij[:, 1], np.r_[np.ones(len(same), bool), np.zeros(len(diff), bool)]


def pair_distances(emb: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    return np.linalg.norm(emb[i] - emb[j], axis=1)


@dataclass(frozen=True)
class TrainedEmbedder:
    path: Path
    embedder: SmallFaceNet
    threshold: Threshold
    val_metrics: dict[str, float]
    history: list[dict[str, Any]]


def train_embedder(
    root: str | os.PathLike[str], out: str | os.PathLike[str], config: FaceTrainConfig | None = None,
    work_dir: str | os.PathLike[str] | None = None, resume: bool = False,
) -> TrainedEmbedder:  # fmt: skip
    """Train on ``root``'s identity folders; write weights + calibrated threshold to ``out`` (.safetensors)."""
    from convsight.training.config import TrainConfig
    from convsight.training.trainer import Trainer

    cfg = config or FaceTrainConfig()
    out = Path(out)
    if out.suffix.lower() != ".safetensors":
        raise ConfigError(f"{out}: the trained embedder is written as .safetensors; use that suffix")
    data = load_identity_folders(root, cfg.chip_size)
    n_val = max(2, round(cfg.val_fraction * len(data.names)))
    order = np.random.default_rng(cfg.seed).permutation(len(data.names)).tolist()
    val, train = data.subset(sorted(order[:n_val])), data.subset(sorted(order[n_val:]))
    torch.manual_seed(cfg.seed)
    embedder = SmallFaceNet(SmallNetConfig(cfg.width, 128, cfg.chip_size))
    model = EmbedderTraining(embedder, cfg.loss, cfg.margin)
    vi, vj, vsame = sample_pairs(val.labels.numpy(), cfg.val_pairs, cfg.seed)

    def val_metrics(m: nn.Module) -> dict[str, float]:
        emb = embed_images(m.embedder, val.images)
        d = pair_distances(emb, vi, vj)
        r = evaluate(d, vsame, calibrate(d, vsame))
        return {"val_accuracy": r["accuracy"], "val_tar_at_far_1e-2": r["tar_at_far_1e-2"], "val_auc": r["auc"]}

    tcfg = TrainConfig(
        epochs=cfg.epochs, batch_size=1, optimizer="adamw", lr=cfg.lr, weight_decay=cfg.weight_decay,
        schedule="cosine", warmup_steps=min(50, cfg.steps), seed=cfg.seed, device=cfg.device,
        monitor="val_accuracy", monitor_mode="max", progress=cfg.progress,
    )  # fmt: skip
    p_val = min(cfg.p, len(val.names))
    trainer = Trainer(
        model, PKBatches(train, cfg.p, cfg.k, cfg.steps, cfg.seed),
        PKBatches(val, p_val, cfg.k, max(1, cfg.steps // 10), cfg.seed + 1, augment=False),
        tcfg, work_dir or out.with_name(out.stem + "_run"), collate_fn=_unwrap, evaluate_fn=val_metrics,
    )  # fmt: skip
    result = trainer.fit(resume=resume)
    model.cpu().eval()
    emb = embed_images(embedder, val.images)
    d = pair_distances(emb, vi, vj)
    where = f"{int(vsame.sum())} same / {int((~vsame).sum())} different pairs of {len(val.names)} held-out people"
    threshold = calibrate(d, vsame, cfg.target_far, source=where)
    metrics = evaluate(d, vsame, threshold)
    save_embedder(embedder, out, threshold, {"train": asdict(cfg), "val": metrics})
    loaded = load_trained_embedder(out)
    return TrainedEmbedder(out, loaded, threshold, metrics, result.history)


def save_embedder(
    embedder: SmallFaceNet, path: str | os.PathLike[str], threshold: Threshold | None, info: dict[str, Any]
) -> Path:
    """Weights as safetensors; metadata: format, net config, the embedder id (a hash of the weights,
    so galleries never mix two trainings) and the calibrated threshold."""
    from convsight.weights import save_state_dict

    state = {k: v.detach().cpu().contiguous() for k, v in embedder.state_dict().items()}
    h = hashlib.sha256()
    for k in sorted(state):
        h.update(k.encode())
        h.update(state[k].numpy().tobytes())
    meta = {
        "format": FORMAT, "arch": "small_facenet", "config": json.dumps(asdict(embedder.config)),
        "embedder_id": f"convsight_small:{h.hexdigest()[:16]}",
        "threshold": json.dumps(threshold.to_dict() if threshold else None), "info": json.dumps(info),
    }  # fmt: skip
    return save_state_dict(state, path, meta)


def load_trained_embedder(path: str | os.PathLike[str]) -> SmallFaceNet:
    """The embedder :func:`train_embedder` wrote, in eval mode, with ``embedder_id`` and ``threshold`` set."""
    from convsight.weights import load_state_dict_checked, read_weights

    state, meta = read_weights(path)
    if meta.get("format") != FORMAT:
        raise WeightsError(f"{path}: not a convsight face embedder (train one with convsight faces train)")
    try:
        net = SmallFaceNet(SmallNetConfig(**json.loads(meta["config"])))
        th = json.loads(meta.get("threshold", "null"))
        net.threshold = Threshold.from_dict(th) if th else None
        net.embedder_id = meta["embedder_id"]
    except (KeyError, TypeError, ValueError, ConfigError) as e:
        raise WeightsError(f"{path}: face embedder metadata is malformed ({e})") from e
    load_state_dict_checked(net, state, str(path))
    return net.eval()

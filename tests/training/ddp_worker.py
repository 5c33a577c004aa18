"""Run under torchrun by test_distributed.py: trains a tiny model with DDP (gloo, CPU) and records,
per rank, its initial and final parameters and the sample indices it was fed.

Usage: ``python -m torch.distributed.run --standalone --nproc_per_node 2 ddp_worker.py OUT_DIR``
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from convsight.training import TrainConfig, Trainer, export_weights
from convsight.training.distributed import cleanup, init_distributed


@dataclass(frozen=True)
class Out:
    losses: dict[str, Tensor]


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3, padding=1)
        self.fc = nn.Linear(3, 2)

    def forward(self, x: Tensor, y: Tensor) -> Out:
        logits = self.fc(F.relu(self.conv(x)).mean((2, 3)))
        return Out({"cls": F.cross_entropy(logits, y)})


class Indexed(Dataset[tuple[Tensor, Tensor]]):
    """Random 8x8 images; remembers which indices this process loaded in each epoch."""

    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 1, 8, 8, generator=g)
        self.y = torch.randint(0, 2, (n,), generator=g)
        self.seen: list[list[int]] = [[]]

    def set_epoch(self, epoch: int) -> None:  # the trainer calls this at the start of every epoch
        self.seen[epoch:] = [[]]

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        self.seen[-1].append(int(i))
        return self.x[i], self.y[i]


def main(out: Path) -> None:
    torch.set_num_threads(1)
    info = init_distributed("gloo")
    torch.manual_seed(100 + info.rank)  # different inits per rank: DDP must broadcast rank 0's
    model = Net()
    export_weights(model, out / f"init{info.rank}.safetensors")
    train = Indexed(16, seed=0)
    cfg = TrainConfig(epochs=2, batch_size=4, lr=0.2, schedule="constant", device="cpu", progress=False)
    result = Trainer(model, train, Indexed(5, seed=1), cfg, out / "run").fit()
    export_weights(model, out / f"rank{info.rank}.safetensors")
    (out / f"seen{info.rank}.json").write_text(json.dumps({"train": train.seen, "history": result.history}))
    cleanup()


if __name__ == "__main__":
    main(Path(sys.argv[1]))

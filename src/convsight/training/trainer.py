"""One trainer for every model in convsight: detectors, classifiers, face embedders, style networks.

Model contract
--------------
- A batch from the loader is ``(inputs, targets)`` (whatever ``collate_fn`` makes of the dataset's
  items; e.g. ``(images (B, 3, H, W), list[Target])`` for detectors).
- The default step calls ``out = model(inputs, targets)`` and reads ``out.losses: dict[str, Tensor]``
  of scalar terms; the loss minimised is their sum (as in
  :class:`~convsight.structures.DetectorOutput`, whose ``.loss`` is that sum).
- Losses must be computable in eval mode too: validation loss is the same call under
  ``model.eval()`` and ``torch.no_grad()``.
- ``step_fn(model, batch) -> dict[str, Tensor]`` may replace the default step (it gets the DDP
  wrapper when distributed and must call ``model(...)`` itself, so gradients are averaged).
- ``evaluate_fn(model) -> dict[str, float]`` computes metrics (mAP, accuracy, ...) once per epoch
  after validation, on rank 0, with the plain model in eval mode under ``torch.no_grad()``.
- ``TrainConfig.monitor`` names the record key (``val_loss``, or a metric) that decides ``best.pt``.

Each epoch record holds ``epoch``, ``train_loss`` and ``train/<term>`` (sample-weighted means over
the epoch and over processes), ``val_loss`` and ``val/<term>``, the metrics, ``lr`` (of the epoch's
last step) and ``time_s``. Rank 0 writes ``last.pt``, ``best.pt``, ``metrics.csv``, ``metrics.json``
and ``loss_curve.png`` in ``out_dir`` after every epoch. A resumed run (``fit(resume=True)``)
restores model, optimizer, scheduler and every RNG, so it continues bit for bit as if never stopped
(on CPU; CUDA kernels may not be deterministic).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, Subset
from torch.utils.data.distributed import DistributedSampler

from convsight.errors import ConfigError, ConvsightError, ConvsightWarning, WeightsError
from convsight.precision import resolve_precision
from convsight.training import distributed as D
from convsight.training.batches import batch_size, check_losses, default_step, move_to
from convsight.training.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from convsight.training.config import TrainConfig, build_optimizer, build_scheduler
from convsight.training.records import plot_loss_curve, write_metrics
from convsight.training.rng import get_rng_state, seed_everything, set_rng_state

StepFn = Callable[[nn.Module, Any], Mapping[str, Tensor]]
EvaluateFn = Callable[[nn.Module], Mapping[str, float]]
# Options that may change on resume without changing what is being trained.
_RESUME_FREE = ("epochs", "progress", "num_workers", "device", "monitor", "monitor_mode")


class NonFiniteLossError(ConvsightError):
    """A loss term became NaN or Inf: training diverged (or the data holds a broken sample)."""


@dataclass(frozen=True)
class TrainResult:
    """What :meth:`Trainer.fit` leaves: the per-epoch records, the best monitored value and the files."""

    history: list[dict[str, Any]]
    monitor: str
    best: float | None
    best_epoch: int | None
    out_dir: Path
    last_path: Path
    best_path: Path | None
    metrics_csv: Path
    metrics_json: Path
    loss_curve: Path


@dataclass
class _RunState:
    epoch: int = 0  # epochs completed
    global_step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best: float | None = None
    best_epoch: int | None = None
    step_losses: list[float] = field(default_factory=list)


def _improves(value: float, best: float | None, mode: str) -> bool:
    if not math.isfinite(value):
        return False
    return best is None or (value < best if mode == "min" else value > best)


class Trainer:
    """Fits ``model`` on ``train_data`` (see the module docstring for the model contract).

    val_data: None skips validation loss. collate_fn: for the DataLoaders (e.g.
    :func:`convsight.io.torch_data.collate_detection`). out_dir: where checkpoints and metrics go.
    Under ``torchrun`` with more than one process the model is wrapped in DistributedDataParallel,
    each process sees its own shard of the data, and only rank 0 writes files.
    """

    def __init__(
        self,
        model: nn.Module,
        train_data: Dataset[Any],
        val_data: Dataset[Any] | None,
        config: TrainConfig,
        out_dir: str | Path,
        collate_fn: Callable[[list[Any]], Any] | None = None,
        step_fn: StepFn | None = None,
        evaluate_fn: EvaluateFn | None = None,
    ) -> None:
        if not isinstance(config, TrainConfig):
            raise ConfigError(f"config must be a TrainConfig, got {type(config).__name__}")
        self.model = model
        self.train_data = train_data
        self.val_data = val_data
        self.config = config
        self.out_dir = Path(out_dir)
        self.collate_fn = collate_fn
        self.step_fn: StepFn = step_fn or default_step
        self.evaluate_fn = evaluate_fn
        self.monitor = config.monitor or ("val_loss" if val_data is not None else "train_loss")
        self.precision = config.precision  # "auto" becomes fp32 or bf16 when fit() knows the device

    # ------------------------------------------------------------------------------------ fit

    def fit(self, resume: str | Path | bool = False) -> TrainResult:
        """Train ``config.epochs`` epochs; ``resume=True`` continues from ``out_dir/last.pt``, a path
        continues from that checkpoint (at the epoch after the one it holds). The model is trained in
        place and left in eval mode."""
        env = D.env_info()
        device = D.resolve_device(self.config.device, env.local_rank)
        if device.type == "cuda":
            torch.cuda.set_device(device)
        owns_group = env.world_size > 1 and not D.is_distributed()
        info = D.init_distributed("nccl" if device.type == "cuda" else "gloo")
        try:
            return self._fit(info, device, resume)
        finally:
            if owns_group:
                D.cleanup()

    def _fit(self, info: D.DistInfo, device: torch.device, resume: str | Path | bool) -> TrainResult:
        cfg = self.config
        last, best_path = self.out_dir / "last.pt", self.out_dir / "best.pt"
        if not resume and last.exists():
            raise ConfigError(f"{last} exists: pass resume=True (--resume) to continue that run, or use another folder")
        if _length(self.train_data) == 0:
            raise ConfigError("train_data is empty: nothing to train on")
        seed_everything(cfg.seed + info.rank)  # dropout etc. differ across ranks; DDP syncs the weights
        model = self.model.to(device)
        self.precision = resolve_precision(cfg.precision, device)  # "auto" -> what this device runs natively
        if self.precision == "bf16":  # the layout oneDNN's bf16 convolutions run fastest in
            model = model.to(memory_format=torch.channels_last)
        train_loader = self._loader(self.train_data, info, device, train=True)
        val_loader = self._loader(self.val_data, info, device, train=False) if self.val_data is not None else None
        steps_per_epoch = len(train_loader)
        if steps_per_epoch == 0:
            raise ConfigError("train_data is empty: nothing to train on")
        params = [p for p in model.parameters() if p.requires_grad]  # frozen layers stay out
        if not params:
            raise ConfigError(f"{type(model).__name__} has no trainable parameters (all frozen?)")
        optimizer = build_optimizer(params, cfg)
        scheduler = build_scheduler(optimizer, cfg, steps_per_epoch)
        state = _RunState()
        if resume:
            state = self._restore(Path(resume) if not isinstance(resume, bool) else last, model, optimizer, scheduler, info)
        wrapped: nn.Module = model
        if info.world_size > 1:
            wrapped = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

        from convsight.training.progress import (
            TrainProgress,  # rich; only when training runs
        )

        with TrainProgress(cfg.epochs, enabled=cfg.progress and info.is_main) as bar:
            for epoch in range(first := state.epoch, cfg.epochs):
                start = time.perf_counter()
                sampler = train_loader.sampler
                if isinstance(sampler, DistributedSampler):
                    sampler.set_epoch(epoch)
                train_loader.generator.manual_seed(_epoch_seed(cfg.seed, epoch))  # type: ignore[union-attr]
                if hasattr(self.train_data, "set_epoch"):
                    self.train_data.set_epoch(epoch)
                record: dict[str, Any] = {"epoch": epoch + 1}
                bar.start_epoch(epoch, steps_per_epoch)
                record.update(
                    self._train_epoch(wrapped, params, train_loader, optimizer, scheduler, device, epoch, state, bar)
                )
                images_per_s = record.pop("_images") / (time.perf_counter() - start)  # all ranks, loading included
                if val_loader is not None:
                    record.update(self._validate(model, val_loader, device))
                record.update(self._evaluate(model, record, info))
                record["lr"] = record.pop("_lr")  # after the metrics in the column order
                record["time_s"] = time.perf_counter() - start
                state.history.append(record)
                state.epoch = epoch + 1
                improved = self._track_best(record, state)
                rng = D.gather_objects(get_rng_state())
                if info.is_main:
                    ckpt = Checkpoint(
                        model=model.state_dict(), optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
                        epoch=state.epoch, global_step=state.global_step, config=cfg.to_dict(),
                        history=state.history, rng=rng, best=state.best, best_epoch=state.best_epoch,
                        step_losses=state.step_losses,
                    )  # fmt: skip
                    save_checkpoint(ckpt, last)
                    if improved:
                        save_checkpoint(ckpt, best_path)
                    self._write_records(state, steps_per_epoch)
                shown = {**record, "precision": self.precision, "images_per_s": images_per_s} if epoch == first else record
                bar.end_epoch(shown, self.monitor, improved)  # the first line says how fast, and in what precision
        model.eval()  # trained: ready for inference
        D.barrier()  # when fit returns on any rank, rank 0's files are complete
        return TrainResult(
            history=state.history, monitor=self.monitor, best=state.best, best_epoch=state.best_epoch,
            out_dir=self.out_dir, last_path=last, best_path=best_path if best_path.exists() else None,
            metrics_csv=self.out_dir / "metrics.csv", metrics_json=self.out_dir / "metrics.json",
            loss_curve=self.out_dir / "loss_curve.png",
        )  # fmt: skip

    # ------------------------------------------------------------------------------- pieces

    def _loader(self, data: Dataset[Any], info: D.DistInfo, device: torch.device, train: bool) -> DataLoader[Any]:
        cfg = self.config
        sampler = None
        if info.world_size > 1:
            if train:  # pads so every rank takes the same number of steps (DDP needs that)
                sampler = DistributedSampler(data, info.world_size, info.rank, shuffle=True, seed=cfg.seed)
            else:  # a plain shard, no padding: the validation loss counts every sample once
                data = Subset(data, range(info.rank, len(data), info.world_size))  # type: ignore[arg-type]
        # A last training batch of one sample breaks BatchNorm (one value per channel on small maps): drop it.
        n = len(sampler) if sampler is not None else len(data)  # type: ignore[arg-type]
        return DataLoader(
            data, batch_size=cfg.batch_size, shuffle=train and sampler is None, sampler=sampler,
            num_workers=cfg.num_workers, collate_fn=self.collate_fn, pin_memory=device.type == "cuda",
            generator=torch.Generator().manual_seed(cfg.seed), drop_last=train and n % cfg.batch_size == 1,
        )  # fmt: skip

    def _losses(self, model: nn.Module, batch: Any) -> dict[str, Tensor]:
        if self.precision == "bf16":
            device = next(model.parameters()).device
            with torch.autocast(device.type, dtype=torch.bfloat16):
                losses = {k: v.float() for k, v in self.step_fn(model, _channels_last(batch)).items()}
        else:
            losses = dict(self.step_fn(model, batch))
        check_losses(losses)
        return losses

    def _train_epoch(
        self, model: nn.Module, params: list[nn.Parameter], loader: DataLoader[Any], optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler, device: torch.device, epoch: int, state: _RunState, bar: Any,
    ) -> dict[str, Any]:  # fmt: skip
        model.train()
        sums: Tensor | None = None
        names: list[str] = []
        lr = optimizer.param_groups[0]["lr"]
        for step, batch in enumerate(loader, start=1):
            batch = move_to(batch, device)
            losses = self._losses(model, batch)
            names = list(losses)
            n = batch_size(batch)
            # One small all-reduce per step: logs average over ranks, and every rank sees a NaN on any rank.
            packed = torch.stack([v.detach().float() * n for v in losses.values()] + [torch.tensor(float(n), device=device)])
            packed = D.all_reduce_sum(packed).cpu()
            step_means = packed[:-1] / packed[-1]
            bad = [(k, v) for k, v in zip(names, step_means.tolist(), strict=True) if not math.isfinite(v)]
            if bad:
                name, value = bad[0]
                raise NonFiniteLossError(
                    f"loss term {name!r} is {value} at epoch {epoch + 1}, step {step}/{len(loader)} "
                    f"(global step {state.global_step + 1}); lower lr, set grad_clip, or check the data"
                )
            sums = packed if sums is None else sums + packed
            total = torch.stack(list(losses.values())).sum()
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            if self.config.grad_clip is not None:
                nn.utils.clip_grad_norm_(params, self.config.grad_clip)
            lr = optimizer.param_groups[0]["lr"]
            optimizer.step()
            scheduler.step()
            state.global_step += 1
            state.step_losses.append(float(step_means.sum()))
            bar.step(float(sums[:-1].sum() / sums[-1]))
        assert sums is not None  # the loader is non-empty (checked in _fit)
        means = (sums[:-1] / sums[-1]).tolist()
        return {"train_loss": sum(means), **{f"train/{k}": v for k, v in zip(names, means, strict=True)},
                "_lr": lr, "_images": float(sums[-1])}

    def _validate(self, model: nn.Module, loader: DataLoader[Any], device: torch.device) -> dict[str, float]:
        # The plain module, not the DDP wrapper: ranks may hold different numbers of batches here,
        # and DDP's forward would wait for the others.
        model.eval()
        sums: dict[str, Tensor] = {}
        count = 0
        with torch.no_grad():
            for batch in loader:
                batch = move_to(batch, device)
                n = batch_size(batch)
                for k, v in self._losses(model, batch).items():
                    sums[k] = sums.get(k, torch.zeros((), dtype=torch.float64, device=device)) + v.double() * n
                count += n
        # A rank whose shard is empty has no terms: agree on the names before reducing one vector.
        names = list(dict.fromkeys(k for rank_names in D.gather_objects(list(sums)) for k in rank_names))
        zero = torch.zeros((), dtype=torch.float64, device=device)
        count_t = torch.tensor(float(count), dtype=torch.float64, device=device)
        packed = torch.stack([sums.get(k, zero) for k in names] + [count_t])
        packed = D.all_reduce_sum(packed).cpu()
        if packed[-1] == 0:
            return {}
        means = (packed[:-1] / packed[-1]).tolist()
        return {"val_loss": sum(means), **{f"val/{k}": v for k, v in zip(names, means, strict=True)}}

    def _evaluate(self, model: nn.Module, record: dict[str, Any], info: D.DistInfo) -> dict[str, float]:
        if self.evaluate_fn is None:
            return {}
        payload: tuple[str, Any] = ("ok", {})
        if info.is_main:
            model.eval()
            try:
                with torch.no_grad():
                    payload = ("ok", {str(k): float(v) for k, v in self.evaluate_fn(model).items()})
            except Exception as e:
                if info.world_size == 1:
                    raise
                D.broadcast_object(("error", f"{type(e).__name__}: {e}"))  # let the other ranks stop too
                raise
        status, metrics = D.broadcast_object(payload)
        if status == "error":
            raise RuntimeError(f"evaluate_fn failed on rank 0: {metrics}")
        clash = sorted(set(metrics) & (set(record) | {"lr", "time_s"}))
        if clash:
            raise ConfigError(f"evaluate_fn returned metric name(s) {', '.join(clash)} that the trainer uses itself")
        return metrics

    def _track_best(self, record: dict[str, Any], state: _RunState) -> bool:
        if self.monitor not in record:
            keys = ", ".join(k for k in record if k not in ("epoch", "time_s"))
            raise ConfigError(f"monitor {self.monitor!r} is not among this run's records: {keys}")
        value = float(record[self.monitor])
        if not _improves(value, state.best, self.config.monitor_mode):
            return False
        state.best, state.best_epoch = value, int(record["epoch"])
        return True

    def _restore(
        self, path: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler, info: D.DistInfo,
    ) -> _RunState:  # fmt: skip
        ckpt = load_checkpoint(path)
        try:
            model.load_state_dict(ckpt.model)
        except RuntimeError as e:
            raise WeightsError(f"{path}: checkpoint does not fit this model ({str(e).splitlines()[0]})") from e
        try:
            optimizer.load_state_dict(ckpt.optimizer)
            scheduler.load_state_dict(ckpt.scheduler)
        except (ValueError, KeyError, RuntimeError) as e:
            raise WeightsError(f"{path}: optimizer/scheduler state does not fit this run ({e})") from e
        now = self.config.to_dict()
        changed = [
            f"{k} {ckpt.config.get(k)!r} -> {now[k]!r}"
            for k in now
            if k not in _RESUME_FREE and ckpt.config.get(k) != now[k]
        ]
        if changed and info.is_main:
            warnings.warn(f"{path}: resuming with changed options: {', '.join(changed)}", ConvsightWarning, stacklevel=3)
        if info.rank < len(ckpt.rng):
            set_rng_state(ckpt.rng[info.rank])
        else:  # resumed on more processes than saved: new ranks get fresh, still seeded, streams
            seed_everything(_epoch_seed(self.config.seed + info.rank, ckpt.epoch))
        return _RunState(
            ckpt.epoch, ckpt.global_step, list(ckpt.history), ckpt.best, ckpt.best_epoch, list(ckpt.step_losses)
        )

    def _write_records(self, state: _RunState, steps_per_epoch: int) -> None:
        write_metrics(self.out_dir, state.history, self.monitor, self.config.monitor_mode, state.best, state.best_epoch)
        plot_loss_curve(self.out_dir / "loss_curve.png", state.history, state.step_losses, steps_per_epoch)


def _channels_last(batch: Any) -> Any:
    """4-D image tensors of a batch ``(inputs, targets)`` in channels-last layout (values unchanged)."""
    if isinstance(batch, (list, tuple)) and batch and isinstance(batch[0], Tensor) and batch[0].ndim == 4:
        return type(batch)([batch[0].contiguous(memory_format=torch.channels_last), *batch[1:]])
    return batch


def _length(data: Dataset[Any]) -> int | None:
    try:
        return len(data)  # type: ignore[arg-type]
    except TypeError:  # iterable datasets need not know their length
        return None


def _epoch_seed(seed: int, epoch: int) -> int:
    """A distinct, reproducible data-order seed per (run seed, epoch): resuming needs no loader state."""
    return (seed * 1_000_003 + epoch) % 2**63

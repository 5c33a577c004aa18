"""The training recipes of the four methods that convsight does not ship pretrained elsewhere
(localization, sliding window, R-CNN, Fast R-CNN), as the commands a user runs, and the --train mode
of ``benchmarks/detection.py`` that runs them.

Every recipe is ``convsight data synth ...`` + ``convsight detect train ...``, on the data family of
the shipped YOLO / SSD / Faster R-CNN (256 x 256 synthetic scenes, the training generator's seed 11,
validation seed 2, the tiny backbone pretrained on synthetic crops). ``{root}`` is the work folder
(``runs`` in the README). Run them by hand in this order, or let ``detection.py --train`` do it: it
runs two tasks at a time, one core each (:data:`TASKS`).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

# Data and the pretrained backbone, shared by the four recipes. The scene sets are the first 1500
# images of the shipped three's training set (``--n 6000 --seed 11``: an image is a pure function of
# (seed, index)) and the same validation scenes; localization learns from single-object scenes, one
# object per image, so it gets 6000 of them (as many images as the shipped three, far fewer objects).
# Keyed by the --train task that makes them (see TASKS).
DATA: dict[str, tuple[str, ...]] = {
    "data_scenes": ("convsight data synth {root}/data/train1500 --n 1500 --size 256 --seed 11",
                    "convsight data synth {root}/data/val --n 200 --size 256 --seed 2"),
    "data_other": ("convsight data synth {root}/data/single6k --mode single --n 6000 --size 256 --seed 11",
                   "convsight data synth {root}/data/single_val --mode single --n 200 --size 256 --seed 2",
                   "convsight data synth {root}/data/crops --mode crops --n 600 --size 256 --crop-size 48 --seed 21"),
    "pretrain": ("convsight detect pretrain {root}/data/crops --out {root}/pretrain_tiny --epochs 8 --image-size 48",),
}
_BACKBONE = "--backbone-weights {root}/pretrain_tiny/backbone.safetensors"
_SCENES = "--data {root}/data/train1500 --val {root}/data/val --precision auto --batch-size 16 --image-size 256"
# R-CNN and Fast R-CNN read the same selective-search boxes from one folder, filled before either
# trains (fill_proposals; a recipe run by hand fills it as it goes).
_PROPOSALS = "--set proposal_cache={root}/proposals"
_WINDOWS = "[[1,1],[2,2],[3,3],[4,4],[6,6],[8,8],[1,2],[2,1],[2,3],[3,2],[3,4],[4,3],[4,6],[6,4]]"

RECIPES: dict[str, str] = {
    "localization": "convsight detect train --arch localize --data {root}/data/single6k --val {root}/data/single_val "
                    f"--precision auto --batch-size 32 --image-size 192 {_BACKBONE} --set pool=split --lr 2e-3 "
                    "--epochs 10 --out {root}/train/localization",
    "sliding_window": f"convsight detect train --arch sliding {_SCENES} --lr 2e-3 --epochs 10 --set input_size=16 "
                      f"--set 'window_shapes={_WINDOWS}' --set crops_per_image=128 --set bg_iou=0.5 "
                      "--set hard_negatives=0.5 --out {root}/train/sliding_window",
    "rcnn": f"convsight detect train --arch rcnn {_SCENES} {_BACKBONE} {_PROPOSALS} --lr 2e-3 --epochs 6 "
            "--out {root}/train/rcnn",
    "fast_rcnn": f"convsight detect train --arch fast-rcnn {_SCENES} {_BACKBONE} {_PROPOSALS} --lr 2e-3 --epochs 10 "
                 "--set feature_level=8 --out {root}/train/fast_rcnn",
}


def commands(root: str | Path = "runs") -> list[str]:
    """Every command of the four recipes, data first, as a user would type them."""
    return [c.format(root=root) for c in (*(c for cs in DATA.values() for c in cs), *RECIPES.values())]


def _run(command: str, log: Path, threads: int | None = None) -> float:
    """Run one ``convsight ...`` command (this interpreter's package), its output appended to ``log``
    (one file per --train task, so two tasks never interleave), with ``threads`` torch threads when
    given; returns its wall time in seconds. A failure stops the benchmark with the log's tail."""
    argv = [sys.executable, "-m", "convsight", *shlex.split(command)[1:]]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)} if threads else None
    t0 = time.perf_counter()
    with log.open("a") as f:
        f.write(f"\n$ {command}\n")
        f.flush()
        done = subprocess.run(argv, stdout=f, stderr=subprocess.STDOUT, check=False, env=env)
    if done.returncode:
        tail = log.read_text()[-2000:]
        raise SystemExit(f"`{command}` failed (exit {done.returncode}); end of {log}:\n{tail}")
    return time.perf_counter() - t0


def _init_worker(data: str, size: int, folder: str) -> None:
    global _DATA, _CACHE
    import torch

    from convsight.detection.proposals import ProposalCache
    from convsight.io.formats import read_dataset
    from convsight.io.torch_data import DetectionDataset

    torch.set_num_threads(1)  # one selective search per core
    _DATA = DetectionDataset(read_dataset(data), size=(size, size))  # the pixels training will hash
    _CACHE = ProposalCache(folder=folder)


def _propose(index: int) -> int:
    return len(_CACHE(_DATA[index][0]))


def fill_proposals(data: Path, folder: Path, size: int = 256, workers: int = 2) -> float:
    """Selective search over every image of ``data`` (as the detectors see it: resized to ``size``)
    into the cache ``folder``, ``workers`` processes at once (OpenCV's selective search uses one core);
    images already there cost a hash. Returns the wall time in seconds."""
    from convsight.io.formats import read_dataset

    n = len(read_dataset(data))
    t0 = time.perf_counter()
    with mp.get_context("spawn").Pool(workers, _init_worker, (str(data), size, str(folder))) as pool:
        pool.map(_propose, range(n), chunksize=4)
    return time.perf_counter() - t0


# --train's tasks, by name: what each needs done first. Two workers (one core each) take the first task
# whose needs are met, in this order: the slow selective search starts at once, then the two longest
# trainings (sliding window, R-CNN: 19.7 and 13.1 min in the README run) before the shorter ones.
TASKS: dict[str, tuple[str, ...]] = {
    "data_scenes": (), "data_other": (), "proposals": ("data_scenes",), "pretrain": ("data_other",),
    "sliding_window": ("data_scenes",), "rcnn": ("proposals", "pretrain"),
    "localization": ("pretrain", "data_other"), "fast_rcnn": ("proposals", "pretrain"),
}


class _Scheduler:
    """Two workers over :data:`TASKS`; records each task's wall minutes, stops at the first failure."""

    def __init__(self, root: Path, log: Callable[[str], None]) -> None:
        self.root, self._log = root, log
        self.todo, self.done, self.minutes = list(TASKS), set(), {}
        self.failure: BaseException | None = None
        self.cv = threading.Condition()

    def log(self, message: str) -> None:
        with self.cv:  # one line at a time from the two workers
            self._log(message)

    def _next(self) -> str | None:
        with self.cv:
            while True:
                if self.failure is not None or not self.todo:
                    return None
                ready = [t for t in self.todo if set(TASKS[t]) <= self.done]
                if ready:
                    self.todo.remove(ready[0])
                    return ready[0]
                self.cv.wait()

    def _run_task(self, task: str) -> float:
        root = self.root
        if task == "proposals":
            self.log("selective search on the R-CNN / Fast R-CNN scenes")
            return sum(fill_proposals(root / "data" / d, root / "proposals", workers=1) for d in ("train1500", "val"))
        if task in RECIPES:
            shutil.rmtree(root / "train" / task, ignore_errors=True)  # the benchmark's own folder: a fresh run
            command = RECIPES[task].format(root=root)
            self.log(f"training {task}: {command}")
            return _run(command, root / f"train.{task}.log", threads=1)
        seconds = 0.0
        for command in (c.format(root=root) for c in DATA[task]):  # kept when a previous run made them
            target = Path(shlex.split(command)[3])
            done = (target / "backbone.safetensors").is_file() if task == "pretrain" else target.is_dir()
            if not done:
                self.log(f"running: {command}")
                seconds += _run(command, root / f"train.{task}.log", threads=1)
        return seconds

    def worker(self) -> None:
        while (task := self._next()) is not None:
            try:
                minutes = self._run_task(task) / 60
            except BaseException as e:  # noqa: BLE001 - handed to the main thread, which raises it
                with self.cv:
                    self.failure = e
                    self.cv.notify_all()
                return
            self.log(f"{task}: {minutes:.1f} min")
            with self.cv:
                self.minutes[task] = minutes
                self.done.add(task)
                self.cv.notify_all()


def train_lineage(root: Path, log: Callable[[str], None]) -> tuple[dict[str, Path], dict[str, float], dict[str, float]]:
    """Run the four recipes from scratch under ``root`` (data and pretraining are kept when a previous
    run made them): :data:`TASKS` on two workers, one core each. Returns the weights files, each
    method's training minutes (wall time on its one core, the other core busy with another task), and
    the shared preparation minutes (``data``, ``pretrain``, ``proposals``)."""
    root.mkdir(parents=True, exist_ok=True)
    sched = _Scheduler(root, log)
    workers = [threading.Thread(target=sched.worker) for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    if sched.failure is not None:
        raise sched.failure
    m = sched.minutes
    prep = {"data": m["data_scenes"] + m["data_other"], "pretrain": m["pretrain"], "proposals": m["proposals"]}
    return {a: root / "train" / a / "detector.safetensors" for a in RECIPES}, {a: m[a] for a in RECIPES}, prep

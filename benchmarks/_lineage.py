"""The training recipes of the four methods that do not ship pretrained-by-default elsewhere
(localization, sliding window, R-CNN, Fast R-CNN), as the commands a user runs, and the --train mode
of ``benchmarks/detection.py`` that runs them.

Every recipe is ``convsight data synth ...`` + ``convsight detect train ...``, on the data family of
the shipped YOLO / SSD / Faster R-CNN (256 x 256 synthetic scenes, the training generator's seed 11,
validation seed 2, the tiny backbone pretrained on synthetic crops). ``{root}`` is the work folder
(``runs`` in the README). Run them by hand in this order, or let ``detection.py --train`` do it.
"""

from __future__ import annotations

import multiprocessing as mp
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

# Data and the pretrained backbone, shared by the four recipes. The scene sets are the first 1500
# images of the shipped three's training set (``--n 6000 --seed 11``: an image is a pure function of
# (seed, index)) and the same validation scenes; localization has its single-object twins.
DATA = (
    "convsight data synth {root}/data/train1500 --n 1500 --size 256 --seed 11",
    "convsight data synth {root}/data/val --n 200 --size 256 --seed 2",
    "convsight data synth {root}/data/single_train --mode single --n 1500 --size 256 --seed 11",
    "convsight data synth {root}/data/single_val --mode single --n 200 --size 256 --seed 2",
    "convsight data synth {root}/data/crops --mode crops --n 600 --size 256 --crop-size 48 --seed 21",
    "convsight detect pretrain {root}/data/crops --out {root}/pretrain_tiny --epochs 8 --image-size 48",
)
_COMMON = "--precision auto --batch-size 16 --image-size 256"
_BACKBONE = "--backbone-weights {root}/pretrain_tiny/backbone.safetensors"
_SCENES = "--data {root}/data/train1500 --val {root}/data/val"
# R-CNN and Fast R-CNN read the same selective-search boxes from one folder: whichever trains first
# computes them (once per image, flips included), the other reuses them.
_PROPOSALS = "--set proposal_cache={root}/proposals"

RECIPES: dict[str, str] = {
    "localization": "convsight detect train --arch localize --data {root}/data/single_train "
                    f"--val {{root}}/data/single_val {_COMMON} {_BACKBONE} --lr 2e-3 --epochs 6 "
                    "--out {root}/train/localization",
    "sliding_window": f"convsight detect train --arch sliding {_SCENES} {_COMMON} --lr 2e-3 --epochs 8 "
                      "--set input_size=16 "
                      "--set 'window_shapes=[[1,1],[2,2],[3,3],[4,4],[6,6],[8,8],[1,2],[2,1],[2,3],[3,2],[3,4],[4,3],[4,6],[6,4]]' "
                      "--out {root}/train/sliding_window",
    "rcnn": f"convsight detect train --arch rcnn {_SCENES} {_COMMON} {_BACKBONE} {_PROPOSALS} --lr 2e-3 "
            "--epochs 6 --out {root}/train/rcnn",
    "fast_rcnn": f"convsight detect train --arch fast-rcnn {_SCENES} {_COMMON} {_BACKBONE} {_PROPOSALS} "
                 "--lr 2e-3 --epochs 6 --set feature_level=8 --out {root}/train/fast_rcnn",
}
TRAINED = tuple(RECIPES)


def commands(root: str | Path = "runs") -> list[str]:
    """Every command of the four recipes, data first, as a user would type them."""
    return [c.format(root=root) for c in (*DATA, *RECIPES.values())]


def _run(command: str, log: Path) -> float:
    """Run one ``convsight ...`` command (this interpreter's package), its output appended to ``log``;
    returns its wall time in seconds. A failure stops the benchmark with the log's tail."""
    argv = [sys.executable, "-m", "convsight", *shlex.split(command)[1:]]
    t0 = time.perf_counter()
    with log.open("a") as f:
        f.write(f"\n$ {command}\n")
        f.flush()
        done = subprocess.run(argv, stdout=f, stderr=subprocess.STDOUT, check=False)
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


def train_lineage(root: Path, log) -> tuple[dict[str, Path], dict[str, float], dict[str, float]]:  # type: ignore[no-untyped-def]
    """Run the four recipes from scratch under ``root``: data (kept when already there), the shared
    pretraining, selective search on the R-CNN training and validation scenes (two processes), then
    each ``detect train``. Returns the weights files, each method's training minutes, and the shared
    preparation minutes (``data``, ``pretrain``, ``proposals``)."""
    root.mkdir(parents=True, exist_ok=True)
    out_log = root / "train.log"
    prep: dict[str, float] = {"data": 0.0, "pretrain": 0.0}
    for command in DATA:
        target = Path(shlex.split(command.format(root=root))[3])
        done = (target / "backbone.safetensors").is_file() if "pretrain" in command else target.is_dir()
        if not done:
            log(f"running: {command.format(root=root)}")
            prep["pretrain" if "pretrain" in command else "data"] += _run(command.format(root=root), out_log) / 60
    log("selective search on the R-CNN / Fast R-CNN scenes (two processes)")
    prep["proposals"] = sum(fill_proposals(root / "data" / d, root / "proposals") for d in ("train1500", "val")) / 60
    weights, minutes = {}, {}
    for arch, recipe in RECIPES.items():
        command = recipe.format(root=root)
        run_dir = root / "train" / arch
        shutil.rmtree(run_dir, ignore_errors=True)  # this folder is the benchmark's own: a fresh run
        log(f"training {arch}: {command}")
        minutes[arch] = _run(command, out_log) / 60
        weights[arch] = run_dir / "detector.safetensors"
        log(f"{arch}: {minutes[arch]:.1f} min")
    return weights, minutes, prep

"""COCO bbox scoring at val2017 scale, measured side by side in one run: pycocotools, faster-coco-eval
and convsight (``evaluate_detections`` on the in-memory model, and ``convsight detect score`` from the
two JSON files). Prints time, peak memory (each engine in its own subprocess, ``ru_maxrss``) and the
ratio to faster-coco-eval, and checks that all twelve COCO stats agree to 1e-6.

    .venv/bin/python benchmarks/coco_eval.py            # 5,000 images, ~36k boxes, ~500k detections
    .venv/bin/python benchmarks/coco_eval.py --quick    # 500 images, ~50k detections

The problem is generated in-process from a seed, shaped like val2017: 80 categories with COCO's own
non-contiguous ids (12, 26, 29, ... skipped), ~7 boxes per image of which ~1% are crowd regions,
``area`` smaller than the box (a mask inside it), images without ground truth, and detections
(jittered hits, wrong classes, false positives, some inside crowd regions) on every image.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from _machine import machine_line  # benchmarks/_machine.py, beside this script

# COCO 2017's 80 category ids: 1..90 without the ten ids the paper's 91-class list dropped.
COCO_CATEGORY_IDS = tuple(i for i in range(1, 91) if i not in (12, 26, 29, 30, 45, 66, 68, 69, 71, 83))
STAT_NAMES = ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large",
              "AR@1", "AR@10", "AR@100", "AR_small", "AR_medium", "AR_large")
ENGINES = ("pycocotools", "faster-coco-eval", "convsight (in memory)", "convsight detect score")


def make_problem(n_images: int, dets_per_image: int, seed: int = 0) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A COCO instances document and a results list, val2017-shaped (see the module docstring)."""
    rng = np.random.default_rng(seed)
    cats = list(COCO_CATEGORY_IDS)
    images, anns, results = [], [], []
    for i in range(n_images):
        iid = 100_000 + 7 * i  # ids as in val2017: neither 0-based nor contiguous
        w, h = int(rng.choice([640, 500, 480, 427, 612])), int(rng.choice([480, 427, 640, 375, 612]))
        images.append({"id": iid, "file_name": f"{iid:012d}.jpg", "width": w, "height": h, "license": 1})
        k = 0 if rng.random() < 0.05 else int(rng.poisson(7.4))
        side = np.exp(rng.uniform(np.log(6), np.log(min(w, h) * 0.9), k))
        ar = np.exp(rng.uniform(-0.6, 0.6, k))
        bw, bh = np.minimum(side * ar, w - 1), np.minimum(side / ar, h - 1)
        x, y = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
        labels = rng.choice(cats, k)
        crowd = rng.random(k) < 0.01
        fill = rng.uniform(0.35, 0.95, k)  # mask area / box area
        for j in range(k):
            anns.append({"id": len(anns) + 1, "image_id": iid, "category_id": int(labels[j]),
                         "bbox": [round(float(v), 2) for v in (x[j], y[j], bw[j], bh[j])],
                         "area": float(bw[j] * bh[j] * fill[j]), "iscrowd": int(crowd[j]), "segmentation": []})
        # Detections: 0-3 jittered copies of each object (right class 90% of the time; several
        # inside each crowd region), then false positives up to ~dets_per_image.
        rows = []
        for j in range(k):
            for _ in range(int(rng.integers(0, 4)) + (3 if crowd[j] else 0)):
                jit = rng.normal(0, 0.12, 4) * [bw[j], bh[j], bw[j], bh[j]]
                sx, sy = (x[j], y[j]) if not crowd[j] else (x[j] + rng.uniform(0, bw[j] / 2), y[j] + rng.uniform(0, bh[j] / 2))
                sw, sh = (bw[j], bh[j]) if not crowd[j] else (bw[j] / 3, bh[j] / 3)
                cat = int(labels[j]) if rng.random() < 0.9 else int(rng.choice(cats))
                rows.append((sx + jit[0], sy + jit[1], max(sw + jit[2], 1.0), max(sh + jit[3], 1.0), rng.beta(4, 2), cat))
        n_fp = max(int(rng.normal(dets_per_image, 10)) - len(rows), 0)
        fw, fh = np.exp(rng.uniform(np.log(4), np.log(300), (2, n_fp)))
        fx, fy = rng.uniform(0, w - 4, n_fp), rng.uniform(0, h - 4, n_fp)
        # A detector's spare boxes go mostly to the classes it sees in the image (so that AR@10 and
        # AR@100 differ, as on real val2017 results).
        own = rng.choice(labels, n_fp) if k else rng.choice(cats, n_fp)
        fc = np.where(rng.random(n_fp) < 0.7, own, rng.choice(cats, n_fp))
        rows += list(zip(fx, fy, fw, fh, rng.beta(2, 4, n_fp), fc, strict=True))
        for bx, by, bw_, bh_, s, c in rows:
            results.append({"image_id": iid, "category_id": int(c),
                            "bbox": [round(float(v), 2) for v in (bx, by, bw_, bh_)], "score": round(float(s), 5)})
    categories = [{"id": c, "name": f"category_{c}", "supercategory": "thing"} for c in cats]
    doc = {"info": {"description": "synthetic val2017-sized problem", "year": 2017}, "licenses": [{"id": 1, "name": "x", "url": ""}],
           "images": images, "annotations": anns, "categories": categories}
    return doc, results


# ---- one engine, in its own process (so that ru_maxrss is its own peak) ---------------------------


def _run_engine(engine: str, folder: Path) -> dict[str, Any]:
    gt_path, res_path = folder / "gt.json", folder / "results.json"
    quiet = contextlib.redirect_stdout(io.StringIO())
    if engine in ("pycocotools", "faster-coco-eval"):
        if engine == "pycocotools":
            from pycocotools.coco import COCO
            from pycocotools.cocoeval import COCOeval
        else:
            from faster_coco_eval import COCO
            from faster_coco_eval import COCOeval_faster as COCOeval
        base = _rss_mb()
        t0 = time.perf_counter()
        with quiet:  # as a user runs it: from the two files, loadRes, evaluate, accumulate, summarize
            gt = COCO(str(gt_path))
            ev = COCOeval(gt, gt.loadRes(str(res_path)), "bbox")
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        seconds = time.perf_counter() - t0
        stats = [float(v) for v in ev.stats[:12]]
    else:
        from convsight.detection.coco_eval import _engine
        from convsight.detection.metrics import COCO_STAT_NAMES, evaluate_detections
        from convsight.detection.scoring import score_results
        from convsight.io.coco import read_coco, read_coco_results

        _engine()  # imports faster-coco-eval now: the other rows do not time their imports either

        from_files = engine == "convsight detect score"
        if not from_files:  # the in-memory model is the input: reading it is not timed
            ds = read_coco(gt_path)
            dets = read_coco_results(res_path, ds)
        base = _rss_mb()
        t0 = time.perf_counter()
        if from_files:  # what `convsight detect score GT RESULTS` runs before printing
            _, m = score_results(gt_path, res_path)
        else:
            m = evaluate_detections(dets, ds.images, ds.num_classes, ds.class_names)
        seconds = time.perf_counter() - t0
        stats = [getattr(m, k) for k in COCO_STAT_NAMES]
        stats = [-1.0 if math.isnan(v) else float(v) for v in stats]  # NaN is pycocotools' -1
    return {"seconds": seconds, "stats": stats, "peak_mb": _rss_mb(), "base_mb": base}


def _rss_mb() -> float:
    """This process's peak resident memory. VmHWM, not ru_maxrss: Linux carries ru_maxrss over
    exec, so a child would report its parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def _header(n_images: int, doc: dict[str, Any], results: list[Any]) -> str:
    from importlib.metadata import version

    import torch

    crowd = sum(a["iscrowd"] for a in doc["annotations"])
    problem = (f"COCO bbox evaluation, val2017-sized synthetic problem: {n_images} images, {len(doc['categories'])} "
               f"categories (non-contiguous ids), {len(doc['annotations'])} gt boxes ({crowd} crowd), {len(results)} detections")
    machine = (f"CPU: {torch.backends.cpu.get_cpu_capability()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}; "
               f"numpy {np.__version__}, pycocotools {version('pycocotools')}, faster-coco-eval {version('faster-coco-eval')}")
    return f"{problem}\n{machine}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="500 images instead of 5,000")
    ap.add_argument("--repeats", type=int, default=1, help="rounds (each engine once per round); the best time counts")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--engine", help=argparse.SUPPRESS)  # internal: run one engine in this process
    ap.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.engine:
        print(json.dumps(_run_engine(args.engine, args.dir)))
        return 0
    n_images = 500 if args.quick else 5000
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        doc, results = make_problem(n_images, 100, args.seed)
        (folder / "gt.json").write_text(json.dumps(doc))
        (folder / "results.json").write_text(json.dumps(results))
        print(machine_line(None), flush=True)
        print(_header(n_images, doc, results), flush=True)
        runs: dict[str, list[dict[str, Any]]] = {e: [] for e in ENGINES}
        for _ in range(args.repeats):
            for engine in ENGINES:
                out = subprocess.run([sys.executable, __file__, "--engine", engine, "--dir", str(folder)],
                                     capture_output=True, text=True, check=False)
                if out.returncode != 0:
                    print(f"{engine} failed:\n{out.stderr}", file=sys.stderr)
                    return 1
                runs[engine].append(json.loads(out.stdout.strip().splitlines()[-1]))
    best = {e: min(r, key=lambda x: x["seconds"]) for e, r in runs.items()}
    ref = best["faster-coco-eval"]["seconds"]
    truth = np.array(best["pycocotools"]["stats"])
    print("\n| engine | time (s) | x faster-coco-eval | peak RSS (MB) | RSS before the timed part (MB) | max abs diff to pycocotools |")
    print("|---|---:|---:|---:|---:|---:|")
    worst = 0.0
    for e in ENGINES:
        b = best[e]
        diff = float(np.abs(np.array(b["stats"]) - truth).max())
        worst = max(worst, diff)
        print(f"| {e} | {b['seconds']:.2f} | {b['seconds'] / ref:.2f} | {b['peak_mb']:.0f} | {b['base_mb']:.0f} | {diff:.1e} |")
    print("\n| stat | " + " | ".join(STAT_NAMES) + " |")
    print("|---|" + "---:|" * len(STAT_NAMES))
    for e in ("pycocotools", "convsight (in memory)"):
        print(f"| {e} | " + " | ".join(f"{v:.4f}" for v in best[e]["stats"]) + " |")
    ok = worst <= 1e-6
    print(f"\nall twelve stats agree with pycocotools to 1e-6: {'yes' if ok else 'NO'} (largest difference {worst:.1e})")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

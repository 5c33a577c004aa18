"""Gatys style transfer: ours vs a straightforward tutorial-style reference, side by side in one run.

    .venv/bin/python benchmarks/style.py [--size 256] [--steps 300] [--threads 2] [--precision auto]
        [--ablation] [--no-budget] [--save PATH]

Both optimise the same image (content chelsea, style the generated ``swirl``, resized to --size) for
the same loss: the same encoder (VGG19, random init seed 0 unless VGG19 ImageNet weights are in the
local torch cache; average pooling), the same taps (style relu1_1..relu5_1 equal weights, content
relu4_2), alpha 0.1, relative normalisation (:mod:`convsight.style.losses`), started from the content
image. The reference (``_style_reference.py``) is PyTorch's "Neural Transfer" tutorial pattern:
deep-copied VGG19 with loss modules inserted, float32, L-BFGS defaults (lr 1, no line search), pixels
clamped in the closure, run for --steps evaluations (in calls of 20).

Measurements:

1. **Fixed budget** (``--no-budget`` skips it): ours (:class:`~convsight.style.gatys.GatysStylizer`,
   its defaults: one level, strong-Wolfe L-BFGS, Grams once, channels-last, --precision) for the
   same --steps evaluations. Time, ms per evaluation, peak RSS, final loss.
2. **One evaluation**, timed in turns in one process (the reference's model, ours at full and at
   half size), with its FLOPs (:mod:`convsight.style.cost`: 2 x 2 x conv MACs, forward +
   input-gradient backward, weights frozen) and the fraction of this machine's matmul throughput
   that is (a 2048^3 fp32 matmul timed in the same run; bf16 too when ours runs in bf16).
3. **Time to the reference's best loss**: L_ref = the loss of the reference's final image, or the
   lowest loss one of its evaluations reached, if lower (its L-BFGS without a line search can diverge;
   then its final loss is no target). The reference's time is that of its first evaluation with loss
   <= L_ref (its loss is of the clamped
   pixels, in float32). Ours runs with ``target_loss=L_ref`` (it stops at the first evaluation at or
   under it) and the options of each row; its image is then scored in float32 like the reference's.
   Our loss during the run is of the unclipped pixels (``bounds="clip"``) or in bf16, so the stop
   can come early: then the run is repeated with a lower target until the scored image is <= L_ref,
   and only the run that made it is timed (the tries are printed). Besides wall and CPU time, the
   evaluations each run needed are priced at the per-evaluation times of (2): on a machine shared
   with other jobs, that ratio holds where wall times swing by 2x between identical runs.

Each run is its own subprocess with the same thread count; peak memory = that process's ru_maxrss.
Emulating an AVX2-only CPU on a bigger one (issue 19): prefix the command with
``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2``; the first line
printed (:mod:`_machine`) names the caps in effect.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
from torch import Tensor

from _machine import machine_line  # benchmarks/_machine.py, beside this script

from convsight.style.gatys import FAST_OPTIONS
from _style_reference import (ALPHA, CONTENT_TAP, STYLE_TAPS, build_reference, encoder, reference_loss,
                              run_reference)  # benchmarks/_style_reference.py: the tutorial's pattern

# The rows of the time-to-loss table: GatysConfig options on top of the budget run's.
FAST = dict(FAST_OPTIONS)  # convsight.style.gatys.FAST_OPTIONS, what `style run --fast` uses
VARIANTS: dict[str, dict[str, object]] = {
    "ours, defaults": {},
    "ours, fast (all three below)": FAST,
}
ABLATION: dict[str, dict[str, object]] = {  # --ablation: each saving alone, then without the line search
    "  bounds in the loss": {"bounds": "loss"},
    "  first step of 0.05": {"first_step": 0.05},
    "  coarse-to-fine, 15 evals at half size": {"levels": 2, "coarse_steps": 15},
    "  fast, no line search": {**FAST, "line_search": "none"},
}


def inputs(size: int) -> tuple[Tensor, Tensor]:
    from convsight.io.images import resize_long
    from convsight.style.offline import load_style_input

    content = resize_long(load_style_input("chelsea"), size)
    style = torch.nn.functional.interpolate(load_style_input("swirl")[None], size=content.shape[-2:], mode="bilinear",
                                            antialias=True, align_corners=False)[0].clamp(0, 1)
    return content, style  # the same size: the tutorial's pattern needs it


def loss_fn(enc, content: Tensor, style: Tensor):  # noqa: ANN001, ANN201
    from convsight.style.losses import StyleContentLoss, StyleLossConfig

    return StyleContentLoss(enc, StyleLossConfig.equal(STYLE_TAPS, CONTENT_TAP, alpha=ALPHA), content, [style])


def run_ours(content: Tensor, style: Tensor, steps: int, precision: str, options: dict[str, object],
             target: float, clock: list[tuple[float, float]], losses: list[float],
             ) -> tuple[Tensor, list[int], list[tuple[int, int]]]:
    """-> (image, evaluations per level, size per level); ``clock`` / ``losses`` get each evaluation's (wall, CPU) time and
    loss as the run saw it (unclipped pixels unless bounds="loss"; bf16 under bf16)."""

    def record(_step: int, _total: int, terms: dict[str, float]) -> None:
        clock.append((time.perf_counter(), time.process_time()))
        losses.append(terms["total"])

    from convsight.style.gatys import GatysConfig, GatysStylizer

    cfg = GatysConfig(alpha=ALPHA, size=max(content.shape[-2:]), steps=steps, encoder="vgg19", weights="imagenet",
                      style_layers=tuple((t, 1.0) for t in STYLE_TAPS), content_layer=CONTENT_TAP,
                      precision=precision, max_size=8192, target_loss=target, **options)  # type: ignore[arg-type]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = GatysStylizer(style, cfg, encoder=encoder(), callback=record).run(content)
    return r.image, r.evals_per_level, r.sizes


def worker(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    content, style = inputs(args.size)
    clock: list[tuple[float, float]] = []
    losses: list[float] = []
    t0, c0 = time.perf_counter(), time.process_time()
    if args.worker == "ours":
        image, per_level, sizes = run_ours(content, style, args.steps, args.precision, json.loads(args.options),
                                           args.target, clock, losses)
    else:
        image = run_reference(content, style, args.steps, clock, losses)
        per_level, sizes = [len(clock)], [tuple(content.shape[-2:])]
    seconds, cpu_s = time.perf_counter() - t0, time.process_time() - c0
    torch.save(image.contiguous(), args.image)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({"time_s": seconds, "cpu_s": cpu_s, "evals": len(clock), "peak_rss_mb": rss_mb,
                      "per_level": per_level, "sizes": sizes, "clock": [w - t0 for w, _ in clock],
                      "cpu": [c - c0 for _, c in clock], "losses": losses}))


def eval_seconds(content: Tensor, style: Tensor, precision: str, rounds: int = 5) -> dict[str, float]:
    """CPU seconds of one loss evaluation (forward + backward to the pixels) on one thread: the reference's
    model at full size, ours at full and at half size (a coarse level), in turns, median of ``rounds``.

    One thread and CPU time, because that is the work an evaluation costs whatever else the machine
    runs: with two threads on a loaded machine every parallel region waits for the slower thread to
    be scheduled (measured here: a half-size evaluation then took as long as a full one).
    """
    from convsight.io.images import resize_long

    model, sl, cl = build_reference(content, style)
    x_ref = content[None].clone().requires_grad_(True)

    def reference() -> None:
        x_ref.grad = None
        reference_loss(model, sl, cl, x_ref).backward()

    half = resize_long(content, max(content.shape[-2:]) // 2)
    half_style = torch.nn.functional.interpolate(style[None], size=half.shape[-2:], mode="bilinear",
                                                 antialias=True, align_corners=False)[0]
    fns = {"reference": reference, "ours": _our_evaluation(content, style, precision),
           "ours, half size": _our_evaluation(half, half_style, precision)}
    times: dict[str, list[float]] = {k: [] for k in fns}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for fn in fns.values():
            fn()  # warm-up: oneDNN picks its kernels
        for _ in range(rounds):
            for k, fn in fns.items():
                times[k].append(_cpu_timed(fn))
    finally:
        torch.set_num_threads(threads)
    return {k: statistics.median(v) for k, v in times.items()}


def _our_evaluation(content: Tensor, style: Tensor, precision: str):  # noqa: ANN202
    """One evaluation as GatysStylizer runs it (channels-last, autocast, bounds="loss")."""
    enc = encoder().to(memory_format=torch.channels_last)
    bf16 = precision == "bf16"
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss = loss_fn(enc, content, style)
    x = content[None].clone().requires_grad_(True)

    def run() -> None:
        x.grad = None
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            terms = loss(x.clamp(0, 1).contiguous(memory_format=torch.channels_last))
        terms.total.sum().backward()

    return run


def matmul_gflops(dtype: torch.dtype, n: int = 2048, repeats: int = 5) -> float:
    """Throughput of one core on an (n x n) @ (n x n) product in ``dtype``, GFLOP per CPU second (one
    thread, best of ``repeats``): the machine's per-core limit the evaluations are compared with."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, n, generator=g).to(dtype), torch.randn(n, n, generator=g).to(dtype)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        a @ b  # warm-up: oneDNN/MKL pick and JIT their kernels once
        best = min(_cpu_timed(lambda: a @ b) for _ in range(repeats))
    finally:
        torch.set_num_threads(threads)
    return 2 * n**3 / best / 1e9


def _cpu_timed(fn) -> float:  # noqa: ANN001
    t = time.process_time()
    fn()
    return time.process_time() - t


class Bench:
    """Runs the workers, scores their images in float32 and keeps the results."""

    def __init__(self, args: argparse.Namespace, precision: str, tmp: Path) -> None:
        self.args, self.precision, self.tmp = args, precision, tmp
        self.env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
        self.content, self.style = inputs(args.size)
        self.loss = loss_fn(encoder(), self.content, self.style)
        self.images: dict[str, Tensor] = {}

    def run(self, name: str, who: str, options: dict[str, object] | None = None, target: float = 0.0,
            steps: int | None = None) -> dict:
        path = self.tmp / "image.pt"
        cmd = [sys.executable, __file__, "--worker", who, "--image", str(path), "--size", str(self.args.size),
               "--steps", str(steps or self.args.steps), "--threads", str(self.args.threads), "--precision", self.precision,
               "--options", json.dumps(options or {}), "--target", repr(target)]
        out = subprocess.run(cmd, env=self.env, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            sys.exit(f"benchmarks/style.py: the {name!r} run failed:\n{out.stderr[-2000:]}")
        r = json.loads(out.stdout.strip().splitlines()[-1])
        self.images[name] = torch.load(path, weights_only=True)
        with torch.no_grad():
            r["loss"] = float(self.loss(self.images[name][None].clamp(0, 1)).total)
        return r

    def to_loss(self, name: str, options: dict[str, object], l_ref: float, tries: int = 4) -> dict:
        """Ours with target_loss, lowered until the float32 score of the image is <= l_ref."""
        target = l_ref
        for k in range(1, tries + 1):
            # A budget it should never need: the run ends at the target (or fails to reach it: then stop trying).
            r = self.run(name, "ours", options, target, steps=4 * self.args.steps)
            print(f"  {name}: try {k}, target {target:.6g}: {r['evals']} evaluations, {r['time_s']:.1f} s, "
                  f"scored {r['loss']:.6g}", file=sys.stderr, flush=True)
            r["tries"] = k
            if r["loss"] <= l_ref:
                return r
            if not r["losses"] or r["losses"][-1] > target:  # ran out of budget without reaching even its own target
                break
            target *= (l_ref / r["loss"]) ** 1.5  # overshoot a little: another try costs a whole run
        r["failed"] = True
        return r


def per_eval_s(r: dict) -> float:
    """Seconds per evaluation between the first and the last (setup and scoring left out)."""
    c = r["clock"]
    return (c[-1] - c[0]) / max(1, len(c) - 1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    ap.add_argument("--ablation", action="store_true", help="also one time-to-loss row per saving on its own")
    ap.add_argument("--no-budget", action="store_true", help="skip ours' fixed-budget run")
    ap.add_argument("--save", type=Path, default=None, help="Write content, reference, ours side by side here.")
    ap.add_argument("--worker", choices=("ours", "reference"), help=argparse.SUPPRESS)
    ap.add_argument("--image", help=argparse.SUPPRESS)
    ap.add_argument("--options", default="{}", help=argparse.SUPPRESS)
    ap.add_argument("--target", type=float, default=0.0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    from convsight.precision import resolve_precision
    from convsight.style.cost import evaluation_flops

    torch.set_num_threads(args.threads)
    precision = resolve_precision(args.precision, "cpu")
    print(machine_line(args.precision), flush=True)
    peak = {"fp32": matmul_gflops(torch.float32)}
    if precision == "bf16":
        peak["bf16"] = matmul_gflops(torch.bfloat16)
    with tempfile.TemporaryDirectory() as tmp:
        bench = Bench(args, precision, Path(tmp))
        ref = bench.run("reference", "reference")
        # The reference's best: its final image's loss, or a lower one an evaluation reached before it (the
        # tutorial's line-search-free L-BFGS can diverge: at 256 px its 300th evaluation is above its first).
        l_ref = min(ref["loss"], *ref["losses"])
        hit = next((i for i, v in enumerate(ref["losses"]) if v <= l_ref), len(ref["clock"]) - 1)
        last = hit == len(ref["clock"]) - 1  # reached only by the final image: the whole run counts
        ref_to_loss = {**ref, "time_s": ref["time_s"] if last else ref["clock"][hit],
                       "cpu_s": ref["cpu_s"] if last else ref["cpu"][hit],
                       "evals": hit + 1, "per_level": [hit + 1], "loss": l_ref}
        budget = None if args.no_budget else bench.run("ours", "ours")
        rows = {**VARIANTS, **(ABLATION if args.ablation else {})}
        to_loss = {name: bench.to_loss(name, opts, l_ref) for name, opts in rows.items()}
    per_eval = eval_seconds(bench.content, bench.style, precision)
    h, w = bench.content.shape[-2:]
    flops = evaluation_flops(bench.loss.encoder, h, w)
    print(f"\n{args.size} px (long side) {h}x{w}, budget {args.steps} evaluations, {args.threads} threads, encoder "
          f"{bench.loss.encoder.describe()}, ours in {precision}; one core's matmul: fp32 {peak['fp32']:.0f} GFLOP/s"
          + (f", bf16 {peak['bf16']:.0f} GFLOP/s" if "bf16" in peak else ""))
    print(f"FLOPs per loss evaluation at {h}x{w}: {flops / 1e9:.1f} GFLOP (2 x 2 x {flops / 4e9:.2f} G conv MACs: "
          "forward + input-gradient backward; weights frozen, so no weight-gradient pass)")
    _print_budget(ref, budget, flops)
    _print_per_eval(per_eval, flops, peak)
    _print_to_loss(ref_to_loss, ref, to_loss, l_ref, flops, h * w, per_eval)
    if args.save:
        from convsight.io.images import save_image

        save_image(torch.cat([bench.content, bench.images["reference"], bench.images["ours, fast (all three below)"]], dim=2), args.save)
    return 0


def _print_budget(ref: dict, ours: dict | None, flops: int) -> None:
    print(f"\nFixed budget    {'time s':>8s} {'evals':>6s} {'ms/eval':>8s} {'GFLOP/s':>8s} "
          f"{'peak RSS MB':>12s} {'final loss':>11s}")
    for name, r in (("reference", ref), ("ours", ours)):
        if r is None:
            continue
        s = per_eval_s(r)
        print(f"{name:15s} {r['time_s']:8.1f} {r['evals']:6d} {1000 * s:8.0f} {flops / s / 1e9:8.0f} "
              f"{r['peak_rss_mb']:12.0f} {r['loss']:11.5f}")
    if ours is not None:
        print(f"ours / reference: time {ours['time_s'] / ref['time_s']:.2f}x, ms/eval "
              f"{per_eval_s(ours) / per_eval_s(ref):.2f}x, peak memory {ours['peak_rss_mb'] / ref['peak_rss_mb']:.2f}x, "
              f"final loss {ours['loss'] / ref['loss']:.2f}x")


def _print_per_eval(t: dict[str, float], flops: int, peak: dict[str, float]) -> None:
    print("\nOne loss evaluation, one thread, CPU time (in turns, median of 5); matmul likewise on one core:")
    for name, sec in t.items():
        f = flops / 4 if "half" in name else flops
        rate = f / sec / 1e9
        print(f"  {name:16s} {1000 * sec:7.0f} CPU ms  {f / 1e9:5.1f} GFLOP  {rate:6.0f} GFLOP/s = "
              + ", ".join(f"{rate / v:.2f} of the {k} matmul" for k, v in peak.items()))


def _print_to_loss(ref: dict, whole: dict, rows: dict[str, dict], l_ref: float, flops: int, pixels: int,
                   per_eval: dict[str, float]) -> None:
    print(f"\nTime to the reference's best loss {l_ref:.5f} (its final image's: {whole['loss']:.5f}); the reference "
          f"first reached it at evaluation {ref['evals']} of {whole['evals']}.")
    print("wall / CPU s: from the start of each run, setup included; evals x CPU s: the evaluations each "
          "needed, priced\nat the one-thread CPU times above (setup left out; holds on a loaded machine)")
    print(f"{'':36s} {'wall s':>7s} {'x ref':>6s} {'CPU s':>7s} {'x ref':>6s} {'evals':>7s} {'GFLOP':>6s} "
          f"{'x ref':>6s} {'evals x CPU s':>13s} {'x ref':>6s} {'tries':>5s} {'loss':>8s}")
    base: dict[str, float] = {}
    for name, r in {"reference": ref, **rows}.items():
        sizes = r.get("sizes") or [[1, pixels]]
        g = sum(n * flops * (s[0] * s[1]) / pixels for n, s in zip(r["per_level"], sizes)) / 1e9
        if name == "reference":
            priced = r["evals"] * per_eval["reference"]
        else:  # a coarser level is the half-size evaluation (levels > 2 would be cheaper still: priced as half)
            *coarse, fine = r["per_level"]
            priced = fine * per_eval["ours"] + sum(coarse) * per_eval["ours, half size"]
        base = base or {"wall": r["time_s"], "cpu": r["cpu_s"], "gflop": g, "priced": priced}
        mark = "  (never reached L_ref)" if r.get("failed") else ""
        print(f"{name:36s} {r['time_s']:7.1f} {r['time_s'] / base['wall']:6.2f} {r['cpu_s']:7.1f} "
              f"{r['cpu_s'] / base['cpu']:6.2f} {'+'.join(str(n) for n in r['per_level']):>7s} {g:6.0f} "
              f"{g / base['gflop']:6.2f} {priced:13.1f} {priced / base['priced']:6.2f} {r.get('tries', 1):5d} "
              f"{r['loss']:8.5f}{mark}")
    print(f"against the reference's whole run ({whole['time_s']:.1f} s wall, {whole['evals']} evaluations): "
          + ", ".join(f"{name.split(' (')[0]} {r['time_s'] / whole['time_s']:.2f}x wall" for name, r in rows.items()))


if __name__ == "__main__":
    sys.exit(main())

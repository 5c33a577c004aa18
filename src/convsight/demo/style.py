"""Demo stage: style transfer on images that ship inside our dependencies (no painting ships anywhere):
Gatys on scikit-image's cat with a generated swirl pattern, the lecture's "varying alpha" figure as one
grid, and the shipped feed-forward stylizer on the astronaut in one pass."""

from __future__ import annotations

import time
import warnings
from pathlib import Path

from convsight.io.atomic import write_json
from convsight.report import Report, Section

ALPHAS = (0.01, 0.1, 0.5)


def style_stage(report: Report, out: Path, seed: int, size: int = 192, steps: int = 60) -> None:
    from convsight.errors import ConvsightWarning
    from convsight.io.images import resize_long, save_image
    from convsight.style.fast import FastStylizer, resolve_model
    from convsight.style.gatys import GatysConfig, GatysStylizer
    from convsight.style.offline import load_style_input
    from convsight.style.sweep import alpha_sweep

    content, style = load_style_input("chelsea"), load_style_input("swirl")
    with warnings.catch_warnings(record=True) as caught:  # the encoder warning goes into the report
        warnings.simplefilter("always", ConvsightWarning)
        gatys = GatysStylizer(style, GatysConfig(size=size, steps=steps, seed=seed))
    encoder_note = "; ".join(str(w.message) for w in caught) or gatys.encoder.describe()
    grid, results = alpha_sweep(gatys, resize_long(content, size), resize_long(style, size), ALPHAS, cell=size)
    save_image(grid, out / "style_sweep.png")
    rows = [{"alpha": a, "seconds": r.time_s, "style loss": r.history[-1].get("style"),
             "content loss": r.history[-1].get("content")} for a, r in zip(ALPHAS, results, strict=True)]

    astronaut = load_style_input("astronaut")
    fast = FastStylizer.load(resolve_model("mosaic"))
    t0 = time.perf_counter()
    fast_image = fast.stylize(astronaut)
    fast_s = time.perf_counter() - t0
    save_image(fast_image, out / "style_fast_mosaic.png")
    write_json(out / "style.json", {"encoder": encoder_note, "gatys": rows, "fast_seconds": fast_s})
    report.add(Section(
        "Style transfer",
        f"Gatys et al.: the pixels are optimised (L-BFGS, {steps} evaluations, {size} px, seed {seed}) for "
        f"J = (1 - alpha) Jstyle + alpha Jcontent with Gram matrices over several layers. Encoder: {encoder_note}. "
        f"Then the shipped feed-forward network (Johnson et al., trained on a generated mosaic pattern) "
        f"stylises the 512 px astronaut in one pass: {fast_s:.2f} s.",
        images=[(report.rel(out / "style_sweep.png"), "Varying alpha: content, style, then alpha = "
                 + ", ".join(f"{a:g}" for a in ALPHAS)),
                (report.rel(out / "style_fast_mosaic.png"), "Feed-forward stylizer (mosaic), one forward pass")],
        table=rows,
    ))

"""A small static HTML report: stages with timings, tables and pictures, all links relative so the
folder opens from disk (``runs/demo/index.html``)."""

from __future__ import annotations

import html
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from convsight.io.atomic import write_text


@dataclass
class Section:
    title: str
    text: str = ""
    images: list[tuple[str, str]] = field(default_factory=list)  # (relative path, caption)
    table: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Report:
    """Collects sections and stage timings; :meth:`write` renders ``index.html`` into ``root``."""

    root: Path
    title: str
    sections: list[Section] = field(default_factory=list)
    timings: list[tuple[str, float]] = field(default_factory=list)
    log: Callable[[str], None] = print

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time a stage and print one progress line when it starts and ends."""
        self.log(f"[{len(self.timings) + 1}] {name} ...")
        t0 = time.perf_counter()
        yield
        dt = time.perf_counter() - t0
        self.timings.append((name, dt))
        self.log(f"[{len(self.timings)}] {name}: done in {dt:.1f} s")

    def add(self, section: Section) -> None:
        self.sections.append(section)

    def rel(self, path: str | os.PathLike[str]) -> str:
        return Path(os.path.relpath(Path(path).resolve(), self.root.resolve())).as_posix()

    def write(self) -> Path:
        parts = [f"<h1>{html.escape(self.title)}</h1>", "<h2>What ran</h2>",
                 _table([{"stage": n, "seconds": f"{t:.1f}"} for n, t in self.timings])]
        for s in self.sections:
            parts.append(f"<h2>{html.escape(s.title)}</h2>")
            if s.text:
                parts.append(f"<p>{html.escape(s.text)}</p>")
            if s.table:
                parts.append(_table(s.table))
            for src, caption in s.images:
                parts.append(f'<figure><img src="{html.escape(src)}" alt="{html.escape(caption)}">'
                             f"<figcaption>{html.escape(caption)}</figcaption></figure>")
        body = "\n".join(parts)
        page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(self.title)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 10px;text-align:left}}
th{{background:#f3f3f3}}img{{max-width:100%;border:1px solid #ddd}}figcaption{{color:#555;font-size:90%}}</style>
</head><body>
{body}
</body></html>
"""
        return write_text(self.root / "index.html", page)


def _table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    cols = list(rows[0])
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(r.get(c)))}</td>" for c in cols) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 100 else f"{v:.1f}"
    return "" if v is None else str(v)

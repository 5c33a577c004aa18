"""The floors of /work/shared/HOUSE_STYLE.md ("Floors (who may import whom)"), checked on the source.

Every module under ``src/convsight`` is parsed with :mod:`ast` (nothing is imported or run), and
every import of a convsight module is collected: module-level, inside functions (lazy imports count:
they run sooner or later), under ``if TYPE_CHECKING:`` (a type that a lower floor needs belongs on
that floor), relative ones, and ``importlib.import_module("convsight....")`` with a literal or an
f-string whose fixed prefix names a package. A module may import its own floor or any floor below.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "convsight"

FLOOR_NAMES = ("ground", "services", "foundations", "capabilities", "surfaces", "cli")

# Room (first name under convsight) -> floor. HOUSE_STYLE names most rooms; the others are placed by
# what they import and who imports them (checked when this table was written):
# * "__init__" (the package itself, ``import convsight``): the version, the base error types and,
#   lazily, the public API of api/ (over detection/, faces/, style/): a surface. Only export/onnx.py
#   (``__version__``) and cli/ import it.
# * api/: the Python API (load_detector, FacePipeline, stylize, evaluate) over the capabilities: a surface.
# * registry.py: name -> constructor, imports only ``errors``; backbones/ and detection/ use it: ground.
# * precision.py: fp32/bf16/auto and thread counts from torch's capability checks, imports only
#   ``errors``; training/, style/ and cli/ resolve ``--precision auto`` with it: ground.
# * assets/: shipped data files, no Python; read through importlib.resources by style/ and detection/.
#   Data anyone may read: ground.
# * report.py: imports only ``io.atomic``; the demo writes its pages with it: services.
# * viz.py: drawing, imports no convsight module; detection/ (outputs, plots), web/, demo/ and cli/
#   draw with it. It could sit on the ground, but it is a service over images, not a shared type or
#   format, so it stays with weights/report/console (HOUSE_STYLE's "viz?"): services.
# * __main__.py: ``python -m convsight``, it calls the CLI: the CLI's floor (nothing imports it).
# * extras.py: which optional extra provides which module, and the error naming its pip command;
#   imports only ``errors``; the gallery (faces/), web/ and cli/ guard their imports with it: ground.
FLOORS: Mapping[str, int] = {
    "errors": 0, "structures": 0, "registry": 0, "precision": 0, "assets": 0, "extras": 0,
    "ops": 0, "io": 0,
    "weights": 1, "report": 1, "console": 1, "viz": 1,
    "backbones": 2, "training": 2,
    "detection": 3, "faces": 3, "style": 3,
    "web": 4, "export": 4, "demo": 4, "api": 4, "__init__": 4,
    "cli": 5, "__main__": 5,
}

# Rooms of one floor that must not import each other. The capabilities are independent: today none
# imports another (checked), and a piece two of them need (a type, a resize, a loader) goes down a
# floor instead, as Detections and resize_long did. Other floors share freely (backbones/pretrain.py
# trains with training/, io/ reads structures.py).
INDEPENDENT = frozenset({"detection", "faces", "style"})


def module_name(path: Path, root: Path = SRC) -> str:
    """src/convsight/io/coco.py -> "convsight.io.coco"; a package's __init__.py -> the package."""
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def room(module: str) -> str:
    """ "convsight.io.coco" -> "io"; "convsight" -> "__init__"."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _import_module_target(call: ast.Call) -> str | None:
    """The module named by ``importlib.import_module(...)`` / ``__import__(...)``, if it can be read."""
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    if name not in ("import_module", "__import__") or not call.args:
        return None
    arg = call.args[0]
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value
    if isinstance(arg, ast.JoinedStr) and arg.values and isinstance(arg.values[0], ast.Constant):
        return str(arg.values[0].value).rstrip(".") or None  # f"convsight.detection.{name}" -> the package
    return None


def imports_of(source: str, module: str, is_package: bool, known: frozenset[str]) -> Iterator[tuple[str, int]]:
    """(imported convsight module, line) for every import in ``source``, at any depth.

    ``from pkg import name`` counts as ``pkg.name`` when that is a module (``from convsight import viz``).
    """
    package = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from . import x / from ..y import z
                base = package[: len(package) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                yield (sub if sub in known else target), node.lineno
        elif isinstance(node, ast.Call) and (target := _import_module_target(node)) is not None:
            yield target, node.lineno


def import_graph(root: Path = SRC) -> dict[str, set[str]]:
    """module -> the convsight modules it imports (itself excluded)."""
    files = sorted(root.rglob("*.py"))
    known = frozenset(module_name(p, root) for p in files)
    graph: dict[str, set[str]] = {}
    for path in files:
        mod = module_name(path, root)
        targets = imports_of(path.read_text(encoding="utf-8"), mod, path.name == "__init__.py", known)
        graph[mod] = {t for t, _ in targets if (t == "convsight" or t.startswith("convsight.")) and t != mod}
    return graph


def violations(graph: Mapping[str, set[str]], floors: Mapping[str, int] = FLOORS,
               independent: frozenset[str] = INDEPENDENT) -> list[str]:
    """One line per import that breaks the floors: ``module -> imported (floor X -> floor Y)``."""
    out = []
    for mod in sorted(graph):
        for target in sorted(graph[mod]):
            src_room, dst_room = room(mod), room(target)
            a, b = floors[src_room], floors[dst_room]
            where = f"{mod} -> {target} (floor {a} {FLOOR_NAMES[a]} -> floor {b} {FLOOR_NAMES[b]}"
            if b > a:
                out.append(where + ")")
            elif a == b and src_room != dst_room and {src_room, dst_room} <= independent:
                out.append(where + f": {src_room}/ and {dst_room}/ are independent)")
    return out


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph()


def test_every_module_has_a_floor(graph) -> None:
    rooms = {room(m) for m in graph} | {room(t) for ts in graph.values() for t in ts}
    assert rooms - set(FLOORS) == set(), "new room(s): give them a floor in FLOORS (with the reason)"
    # assets/ has no Python: its floor is only reachable through the table, so check it is still data
    assert (SRC / "assets").is_dir() and not list((SRC / "assets").rglob("*.py"))


def test_the_scan_sees_lazy_relative_and_dynamic_imports(graph) -> None:
    assert len(graph) > 80  # every module, packages included
    assert "convsight.style.gatys" in graph["convsight.cli.style"]  # imported inside a command function
    assert "convsight.viz" in graph["convsight.cli.data"]  # "from convsight import viz" or inside a function
    assert "convsight.detection" in graph["convsight.detection.config"]  # import_module(f"convsight.detection.{n}")


def test_no_module_imports_a_floor_above_it(graph) -> None:
    found = violations(graph)
    print("\n".join(found))
    assert not found, f"{len(found)} import(s) against the floors of HOUSE_STYLE.md:\n" + "\n".join(found)


def test_the_checker_catches_each_kind_of_wrong_import(tmp_path) -> None:
    # A fake convsight tree: each module holds one kind of import, wrong or allowed.
    files = {
        "__init__.py": "",
        "errors.py": "from convsight import viz\n",  # a module, not the package: up
        "io/__init__.py": "",
        "io/coco.py": "from convsight.detection.types import Detections\nfrom . import fmt\n",  # up; relative ok
        "io/fmt.py": "from ..structures import Target\n",  # relative, down: ok
        "structures.py": "",
        "ops/nms.py": "def f():\n    import convsight.cli.common\n",  # lazy, up to the CLI
        "training/progress.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..style import gatys\n",
        "detection/__init__.py": "", "detection/types.py": "",
        "detection/engine.py": "from convsight.faces.types import Face\nfrom convsight.training import progress\n",
        "faces/__init__.py": "", "faces/types.py": "",
        "style/__init__.py": "", "style/gatys.py": "import importlib\nimportlib.import_module('convsight.web.app')\n",
        "web/__init__.py": "", "web/app.py": "from convsight import viz\nfrom convsight.style.gatys import run\n",
        "viz.py": "", "cli/__init__.py": "", "cli/common.py": "from convsight.web.app import app\n",
        "__main__.py": "from convsight.cli.common import main\n",
    }
    for name, text in files.items():
        (tmp_path / "convsight" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "convsight" / name).write_text(text)
    found = violations(import_graph(tmp_path / "convsight"))
    assert found == [
        "convsight.detection.engine -> convsight.faces.types (floor 3 capabilities -> floor 3 capabilities: "
        "detection/ and faces/ are independent)",
        "convsight.errors -> convsight.viz (floor 0 ground -> floor 1 services)",
        "convsight.io.coco -> convsight.detection.types (floor 0 ground -> floor 3 capabilities)",
        "convsight.ops.nms -> convsight.cli.common (floor 0 ground -> floor 5 cli)",
        "convsight.style.gatys -> convsight.web.app (floor 3 capabilities -> floor 4 surfaces)",
        "convsight.training.progress -> convsight.style.gatys (floor 2 foundations -> floor 3 capabilities)",
    ]

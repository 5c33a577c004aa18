from __future__ import annotations

import pytest

from convsight.report import Report, Section


def test_report_escapes_times_and_links_relatively(tmp_path):
    lines: list[str] = []
    rep = Report(tmp_path, "demo <1>", log=lines.append)
    with rep.stage("first"):
        pass
    (tmp_path / "img").mkdir()
    rep.add(Section("A & B", "x < y", images=[(rep.rel(tmp_path / "img" / "a.png"), "cap")],
                    table=[{"k": 0.123456, "n": None, "big": 1234.5}]))
    html = rep.write().read_text()
    assert "demo &lt;1&gt;" in html and "A &amp; B" in html and "x &lt; y" in html
    assert 'src="img/a.png"' in html and "0.1235" in html and "1234.5" in html
    assert lines[0] == "[1] first ..." and lines[1].startswith("[1] first: done in")


def test_failed_stage_is_not_timed(tmp_path):
    rep = Report(tmp_path, "t", log=lambda s: None)
    with pytest.raises(RuntimeError), rep.stage("boom"):
        raise RuntimeError
    assert rep.timings == []

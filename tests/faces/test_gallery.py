"""Gallery: enrol -> identify -> remove, embedder ids never mix, the index persists, crashes lose nothing."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from convsight.errors import ConfigError
from convsight.faces.gallery import Gallery, GalleryError


def unit(rng: np.random.Generator, n: int, d: int = 16) -> np.ndarray:
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_enroll_identify_remove_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    alice, bob = unit(rng, 3), unit(rng, 2)
    with Gallery(tmp_path / "g.db", "model-a", 16) as g:
        assert g.enroll("alice", alice, ["a1.jpg", "a2.jpg", "a3.jpg"]) == 3
        assert g.enroll("bob", bob) == 2
        assert g.names() == {"alice": 3, "bob": 2}
        (res,) = g.identify(alice[1:2], k=5)
        assert [n for n, _ in res] == ["alice", "bob"]  # one entry per name, nearest first
        assert res[0][1] == pytest.approx(0.0, abs=1e-3)
        assert res[1][1] == pytest.approx(float(np.linalg.norm(bob - alice[1], axis=1).min()), abs=1e-4)
        assert g.remove("alice") == 3
        assert g.remove("nobody") == 0
        assert g.names() == {"bob": 2}
        assert [n for n, _ in g.identify(alice[1:2])[0]] == ["bob"]
    with Gallery(tmp_path / "g.db", "model-a", 16) as g:  # persisted
        assert g.names() == {"bob": 2}
        assert g.identify(bob[:1], k=1)[0][0][0] == "bob"


def test_empty_gallery_and_bad_input(tmp_path: Path) -> None:
    with Gallery(tmp_path / "g.db", "m", 8) as g:
        assert g.identify(np.zeros((2, 8), np.float32)) == [[], []]
        with pytest.raises(ConfigError, match=r"\(N, 8\)"):
            g.enroll("x", np.zeros((2, 5), np.float32))
        with pytest.raises(ConfigError, match="NaN"):
            g.enroll("x", np.full((1, 8), np.nan, np.float32))
        with pytest.raises(ConfigError, match="name"):
            g.enroll("", np.zeros((1, 8), np.float32))


def test_other_embedder_or_dim_refused(tmp_path: Path) -> None:
    with Gallery(tmp_path / "g.db", "dlib_resnet_v1", 8) as g:
        g.enroll("a", np.ones((1, 8), np.float32))
    with pytest.raises(GalleryError, match="dlib_resnet_v1"):
        Gallery(tmp_path / "g.db", "convsight_small:abc", 8)
    with pytest.raises(GalleryError, match="dimensions"):
        Gallery(tmp_path / "g.db", "dlib_resnet_v1", 16)


def test_not_a_database(tmp_path: Path) -> None:
    bad = tmp_path / "g.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(GalleryError, match="not a convsight gallery"):
        Gallery(bad, "m", 8)


def test_hnsw_above_threshold_and_index_persisted(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    emb = unit(rng, 300)
    names = [f"p{i // 3}" for i in range(300)]
    with Gallery(tmp_path / "g.db", "m", 16, hnsw_threshold=100) as g:
        g.enroll_many(names, emb)
        assert g.index_kind == "hnsw"
        found = [r[0][0] for r in g.identify(emb[::7], k=1)]
        assert found == names[::7]
    index_file = tmp_path / "g.db.faiss"
    assert index_file.is_file()
    stamp = index_file.stat().st_mtime_ns
    with Gallery(tmp_path / "g.db", "m", 16, hnsw_threshold=100) as g:
        assert g.index_kind == "hnsw" and not g._dirty  # loaded, not rebuilt
        assert g.remove("p0") == 3
        assert [r[0][0] for r in g.identify(emb[:1], k=1)] != ["p0"]
    assert index_file.stat().st_mtime_ns != stamp


def test_stale_index_is_reconciled(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    a, b = unit(rng, 4), unit(rng, 4)
    with Gallery(tmp_path / "g.db", "m", 16) as g:
        g.enroll("a", a)
    # another writer (or a crash before close) changes the database behind the saved index
    db = sqlite3.connect(tmp_path / "g.db")
    with db:
        db.execute("DELETE FROM faces WHERE name = 'a' AND id = 1")
        db.execute("UPDATE meta SET value = value + 1 WHERE key = 'generation'")
    db.close()
    with Gallery(tmp_path / "g.db", "m", 16) as g:
        g.enroll("b", b)
    with Gallery(tmp_path / "g.db", "m", 16) as g:
        assert g._index.ntotal == 7
        assert g.identify(b[:1], k=1)[0][0][0] == "b"
        assert g.names() == {"a": 3, "b": 4}


WRITER = """
import sys, numpy as np
from convsight.faces.gallery import Gallery
g = Gallery(sys.argv[1], "m", 16)
rng = np.random.default_rng(0)
i = 0
while True:
    g.enroll(f"person{i}", rng.normal(size=(20, 16)).astype(np.float32), [f"f{i}_{j}" for j in range(20)])
    print(i, flush=True)
    i += 1
"""


def test_kill_during_enrolment_keeps_committed_rows(tmp_path: Path) -> None:
    path = tmp_path / "g.db"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True, env=env)
    committed = -1
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    while committed < 30 and time.monotonic() < deadline:
        committed = int(proc.stdout.readline())
    os.kill(proc.pid, signal.SIGKILL)  # mid-loop: very likely inside a transaction
    proc.wait()
    assert committed >= 30
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()
    with Gallery(path, "m", 16) as g:
        names = g.names()
        for i in range(committed + 1):  # everything reported committed is there, whole
            assert names[f"person{i}"] == 20
        assert all(n == 20 for n in names.values())  # no half-written enrolment
        assert g._index.ntotal == len(g)


def test_two_open_galleries_see_each_others_writes(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    a, b = unit(rng, 3), unit(rng, 3)
    with Gallery(tmp_path / "g.db", "m", 16) as g1, Gallery(tmp_path / "g.db", "m", 16) as g2:
        g1.enroll("a", a)
        g2.enroll("b", b)  # g2's index lacked a: it catches up instead of patching
        assert g2.identify(a[:1], k=1)[0][0][0] == "a"
        assert g1.identify(b[:1], k=1)[0][0][0] == "b"
        g1.remove("b")
        assert [n for n, _ in g2.identify(b[:1], k=5)[0]] == ["a"]
    with Gallery(tmp_path / "g.db", "m", 16) as g:
        assert g.names() == {"a": 3} and g._index.ntotal == 3


def test_removed_ids_are_never_reused(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    a, b, c = unit(rng, 2), unit(rng, 2), unit(rng, 10)
    with Gallery(tmp_path / "g.db", "m", 16, hnsw_threshold=2) as g:  # HNSW keeps removed rows
        g.enroll("c", c)
        g.enroll("a", a)  # the highest ids
        g.remove("a")
        assert g.index_kind == "hnsw" and g._index.ntotal == 12  # a's rows still in the graph, dead
        g.enroll("b", b)  # must not take a's ids, or a's old vectors would answer as b
        found = g.identify(a, k=1)
        assert all(r[0][0] != "b" or r[0][1] == pytest.approx(np.linalg.norm(b - a[i], axis=1).min(), abs=1e-4)
                   for i, r in enumerate(found))  # fmt: skip
        assert g.identify(b[:1], k=1)[0][0] == ("b", pytest.approx(0.0, abs=1e-3))


def test_default_gallery_path_follows_convsight_data_then_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # The XDG Base Directory Specification: $XDG_DATA_HOME, else $HOME/.local/share.
    from convsight.faces.paths import default_gallery_path

    monkeypatch.setenv("CONVSIGHT_DATA", str(tmp_path / "mine"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_gallery_path() == tmp_path / "mine" / "gallery.sqlite"
    monkeypatch.delenv("CONVSIGHT_DATA")
    assert default_gallery_path() == tmp_path / "xdg" / "convsight" / "gallery.sqlite"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_gallery_path() == tmp_path / "home" / ".local" / "share" / "convsight" / "gallery.sqlite"

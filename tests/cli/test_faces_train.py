"""``convsight faces train | eval | synth | pairs`` driven in-process."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


def test_the_real_app_wires_the_commands(cli: Callable[..., Any]) -> None:
    """The commands come from the real ``convsight`` app (no test registers them): unwiring fails here."""
    for command in ("train", "eval", "synth", "pairs"):
        r = cli("faces", command, "--help")
        assert r.code == 0, (command, r.stderr)


def test_synth_train_pairs_eval(cli: Callable[..., Any], tmp_path: Path) -> None:
    r = cli("faces", "synth", tmp_path / "ids", "--identities", "8", "--per-identity", "3", "--size", "32")
    assert r.code == 0, r.stderr
    model = tmp_path / "emb.safetensors"
    r = cli("faces", "train", tmp_path / "ids", "--out", model, "--epochs", "1", "--steps", "2", "--pk", "4,2",
            "--width", "4", "--chip-size", "32", "--json")  # fmt: skip
    assert r.code == 0, r.stderr
    trained = json.loads(r.stdout)
    assert trained["embedder_id"].startswith("convsight_small:") and model.is_file()
    r = cli("faces", "synth", tmp_path / "test", "--identities", "4", "--per-identity", "3", "--size", "32", "--first", "100")
    r = cli("faces", "pairs", tmp_path / "test", "--out", tmp_path / "pairs.txt", "--per-fold", "5", "--folds", "2")
    assert r.code == 0, r.stderr
    r = cli("faces", "eval", tmp_path / "pairs.txt", "--root", tmp_path / "test", "--model", model,
            "--plot", tmp_path / "roc.png", "--json")  # fmt: skip
    assert r.code == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["n_same"] == 10 and out["n_different"] == 10 and 0 <= out["accuracy"] <= 1
    assert out["threshold"] == pytest.approx(trained["threshold"]["value"])
    assert (tmp_path / "roc.png").read_bytes()[:4] == b"\x89PNG"
    r = cli("faces", "eval", tmp_path / "pairs.txt", "--root", tmp_path / "test", "--model", model)
    assert r.code == 0 and "TAR@FAR=1e-2" in r.stdout


def test_user_errors_are_one_line(cli: Callable[..., Any], tmp_path: Path) -> None:
    r = cli("faces", "train", tmp_path / "missing", "--out", tmp_path / "m.safetensors")
    assert r.code == 2 and "not a folder" in r.stderr and "Traceback" not in r.stderr
    r = cli("faces", "train", tmp_path, "--out", tmp_path / "m.safetensors", "--pk", "16")
    assert r.code == 2 and "--pk" in r.stderr
    (tmp_path / "pairs.txt").write_text("1\t1\nA\t1\t2\nA\t1\tB\t1\n")
    (tmp_path / "m.safetensors").write_bytes(b"junk")
    r = cli("faces", "eval", tmp_path / "pairs.txt", "--root", tmp_path, "--model", tmp_path / "m.safetensors")
    assert r.code == 2 and "m.safetensors" in r.stderr

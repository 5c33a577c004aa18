from __future__ import annotations

import json

import pytest


def test_help_lists_every_group(cli):
    r = cli("--help")
    assert r.code == 0
    for group in ("data", "detect", "faces", "style", "serve", "export", "demo", "version"):
        assert group in r.stdout


def test_version_json_is_one_document(cli):
    r = cli("version", "--json")
    assert r.code == 0
    doc = json.loads(r.stdout)
    assert doc["convsight"] and doc["torch"]


@pytest.mark.parametrize("native", [True, False])
def test_version_json_names_the_machine_and_what_auto_picks(cli, monkeypatch, native):
    """Issue 19: version --json reports the CPU capability, native bf16, auto's choice and the threads."""
    import torch

    import convsight.precision as P

    monkeypatch.setattr(P, "_native_bf16", lambda kind: native)
    monkeypatch.setattr(P, "default_threads", lambda: 3)
    r = cli("version", "--json")
    assert r.code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["cpu_capability"].split()[0] == torch.backends.cpu.get_cpu_capability()
    assert doc["bf16_native"] is native
    assert doc["precision_auto"] == ("bf16" if native else "fp32")
    assert doc["threads"] == 3


# The README ("The command line"): "A user error (bad path, corrupt file, wrong option) prints one line
# `convsight: error: ...` on stderr and exits with code 2". Parser errors included: not typer's boxed panel.
PARSER_ERRORS = [
    (("no-such-command",), "No such command 'no-such-command'"),
    (("data", "synth", "OUTDIR", "--bogus"), "No such option: --bogus"),
    (("data", "synth"), "Missing argument"),
    (("data", "synth", "OUTDIR", "--n", "abc"), "'--n'"),
    (("data", "synth", "OUTDIR", "--format", "xml"), "'--format'"),
    (("detect", "predict", "a.jpg", "--conf"), "'--conf' requires an argument"),
    (("faces", "verify", "a.jpg", "b.jpg", "--threshold", "near"), "'--threshold'"),
]


@pytest.mark.parametrize("args, words", PARSER_ERRORS, ids=[" ".join(a) for a, _ in PARSER_ERRORS])
def test_parser_errors_are_one_line_exit_2(cli, tmp_path, args, words):
    args = [str(tmp_path / "out") if a == "OUTDIR" else a for a in args]
    r = cli(*args)
    assert r.code == 2, (r.code, r.stderr)
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("convsight: error: "), r.stderr
    assert words in lines[0], lines[0]
    assert "╭" not in r.stderr and "Usage:" not in r.stderr  # not typer's panel nor click's usage block
    assert not (tmp_path / "out").exists()


def test_parser_error_names_the_command_and_its_help(cli, tmp_path):
    r = cli("data", "synth", tmp_path / "out", "--bogus")
    assert r.stderr.strip() == ("convsight: error: data synth: No such option: --bogus "
                                "(see convsight data synth --help)")


def test_a_bare_group_shows_its_help(cli):
    r = cli("data")  # what click does for a group without a command: the help, exit code 2
    assert r.code == 2 and "synth" in r.stdout and "convert" in r.stdout
    assert "error" not in r.stderr


def test_help_of_a_command_exits_0(cli):
    r = cli("data", "synth", "--help")
    assert r.code == 0 and "--format" in r.stdout and r.stderr == ""

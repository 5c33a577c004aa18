from __future__ import annotations

import json


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


def test_unknown_command_is_usage_error(cli):
    r = cli("no-such-command")
    assert r.code == 2

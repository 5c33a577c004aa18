from __future__ import annotations

import pytest


@pytest.mark.parametrize("group", ["serve", "export"])
def test_planned_groups_say_what_they_will_hold(cli, group):
    r = cli(group)
    assert r.code == 0 and "no commands in this version yet" in r.stdout


def test_help_lists_every_group(cli):
    r = cli("--help")
    assert r.code == 0
    for group in ("data", "detect", "faces", "style", "serve", "export", "demo", "version"):
        assert group in r.stdout

from __future__ import annotations


def test_serve_help_names_the_safe_default(cli):
    r = cli("serve", "--help")
    assert r.code == 0 and "127.0.0.1" in r.stdout and "--max-mb" in r.stdout


def test_serve_refuses_a_bad_port(cli):
    r = cli("serve", "--port", "70000")
    assert r.code == 2

from __future__ import annotations


def test_serve_help_names_the_safe_default(cli):
    r = cli("serve", "--help")
    assert r.code == 0 and "127.0.0.1" in r.stdout and "--max-mb" in r.stdout


def test_serve_refuses_a_bad_port(cli):
    r = cli("serve", "--port", "70000")
    assert r.code == 2


def test_serve_help_lists_the_pool_options(cli):
    r = cli("serve", "--help")
    assert r.code == 0 and all(opt in r.stdout for opt in ("--workers", "--queue", "--timeout", "--no-warmup"))


def test_serve_refuses_zero_workers(cli):
    r = cli("serve", "--workers", "0")
    assert r.code == 2


def test_serve_help_lists_the_gallery_options(cli):
    r = cli("serve", "--help")
    assert r.code == 0 and all(opt in r.stdout for opt in ("--gallery", "--token", "CONVSIGHT_TOKEN", "--docs"))


def test_serve_detector_that_cannot_load_is_one_line_before_serving(cli, tmp_path, monkeypatch):
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: (_ for _ in ()).throw(AssertionError("served")))
    r = cli("serve", "--detector", tmp_path / "missing.safetensors")
    assert r.code == 2 and r.stderr.count("\n") == 1 and "not found" in r.stderr
    r = cli("serve", "--detector", "nope")
    assert r.code == 2 and r.stderr.count("\n") == 1 and "nope" in r.stderr

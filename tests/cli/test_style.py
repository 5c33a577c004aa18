from convsight.io.images import load_image, save_image


def test_style_run_writes_a_png(cli, tmp_path) -> None:
    import numpy as np

    content = tmp_path / "c.png"
    save_image(np.random.default_rng(0).integers(0, 255, (40, 30, 3), dtype=np.uint8), content)
    out = tmp_path / "out.png"
    r = cli("style", "run", content, "swirl", "-o", out, "--size", "32", "--steps", "3", "--encoder", "vgg19",
            "--weights", "random", "--no-progress")
    assert r.code == 0, r.stderr
    assert load_image(out).shape == (32, 24, 3)
    assert "vgg19 (random init" in r.stderr  # the warning says which encoder ran


def test_style_bad_image_path_is_one_line_exit_2(cli, tmp_path) -> None:
    r = cli("style", "run", tmp_path / "missing.png", "hubble", "-o", tmp_path / "o.png")
    assert r.code == 2
    assert r.stderr.strip().count("\n") == 0 and "missing.png" in r.stderr
    assert not (tmp_path / "o.png").exists()


def test_style_sweep_writes_a_grid_and_rejects_bad_alphas(cli, tmp_path) -> None:
    out = tmp_path / "grid.png"
    r = cli("style", "sweep", "chelsea", "hubble", "-o", out, "--alphas", "0.01,0.5", "--size", "24",
            "--steps", "2", "--cell", "32", "--encoder", "vgg19", "--weights", "random", "--json")
    assert r.code == 0, r.stderr
    assert '"alpha": 0.5' in r.stdout and load_image(out).shape[1] == 4 * 38 + 6
    r = cli("style", "sweep", "chelsea", "hubble", "-o", out, "--alphas", "0.1,7")
    assert r.code == 2 and "--alphas" in r.stderr


def test_style_run_fast_runs_the_benchmarks_fast_options(cli, tmp_path, monkeypatch) -> None:
    """--fast = GatysConfig options FAST_OPTIONS (benchmarks/style.py's 'ours, fast' row): 15 evaluations at
    half size, then --steps at full size."""
    import json

    from convsight.style import gatys

    seen = []
    original = gatys.GatysConfig.__init__

    def spy(self, *a, **k):  # type: ignore[no-untyped-def]
        original(self, *a, **k)
        seen.append(self)

    monkeypatch.setattr(gatys.GatysConfig, "__init__", spy)
    out = tmp_path / "fast.png"
    r = cli("style", "run", "chelsea", "swirl", "-o", out, "--size", "64", "--steps", "4", "--encoder", "vgg19",
            "--weights", "random", "--fast", "--json")
    assert r.code == 0, r.stderr
    assert json.loads(r.stdout)["evaluations"] == 15 + 4
    cfg = seen[-1]
    assert (cfg.bounds, cfg.first_step, cfg.levels, cfg.coarse_steps) == ("loss", 0.05, 2, 15)

import numpy as np
import pytest

from convsight.errors import ImageError
from convsight.io.images import save_image
from convsight.style.offline import builtin_image, load_style_input, swirl


def test_builtin_photos_and_patterns() -> None:
    assert builtin_image("chelsea").shape == (300, 451, 3)
    assert builtin_image("Hubble").dtype == np.uint8
    a = swirl(64, seed=1)
    assert a.shape == (64, 64, 3) and np.array_equal(a, swirl(64, seed=1))
    assert a.std() > 20  # a pattern, not a flat colour


def test_load_style_input_prefers_files_and_rejects_unknown_names(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    save_image(np.zeros((8, 8, 3), np.uint8), tmp_path / "c.png")
    (tmp_path / "c.png").rename(tmp_path / "chelsea")  # a file named like a built-in wins
    assert tuple(load_style_input("chelsea").shape) == (3, 8, 8)
    assert tuple(load_style_input("rocket").shape)[0] == 3
    with pytest.raises(ImageError):
        load_style_input("no_such_image.png")

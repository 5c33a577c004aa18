"""Synthetic identities: deterministic, varied within an identity, distinct across identities."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from convsight.errors import ConfigError
from convsight.faces.synthetic import identity, render, write_identity_folders


def test_deterministic_and_shaped() -> None:
    a = render(3, 7, 2, size=48)
    assert a.shape == (48, 48, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, render(3, 7, 2, size=48))
    assert not np.array_equal(a, render(4, 7, 2, size=48))  # another population seed
    with pytest.raises(ConfigError):
        render(0, 0, 0, size=8)


def test_samples_differ_and_identities_differ() -> None:
    s = [render(0, 1, j, 48).astype(np.float32) for j in range(4)]
    assert min(np.abs(s[i] - s[j]).mean() for i in range(4) for j in range(i + 1, 4)) > 5  # visibly different
    p, q = identity(0, 1), identity(0, 2)
    assert not np.allclose(p.skin, q.skin) and p.eye_dx != q.eye_dx
    assert identity(0, 1).eye_dx == p.eye_dx


def test_write_identity_folders(tmp_path: Path) -> None:
    write_identity_folders(tmp_path / "ids", 3, 2, size=32, seed=0, first=10)
    folders = sorted(p.name for p in (tmp_path / "ids").iterdir())
    assert folders == ["id00010", "id00011", "id00012"]
    files = sorted(p.name for p in (tmp_path / "ids" / "id00011").iterdir())
    assert files == ["id00011_0001.png", "id00011_0002.png"]

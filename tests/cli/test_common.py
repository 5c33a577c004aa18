from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

from convsight.cli.common import print_json


def test_print_json_makes_tensors_paths_and_nan_safe(capsys):
    print_json({"t": torch.tensor([1.5, 2.0]), "n": np.float32(0.5), "p": Path("a/b"), "nan": math.nan, 3: (1, 2)})
    doc = json.loads(capsys.readouterr().out)
    assert doc == {"t": [1.5, 2.0], "n": 0.5, "p": "a/b", "nan": None, "3": [1, 2]}

from __future__ import annotations

import pytest

from convsight.detection.build import build_detector, detector_names
from convsight.detection.config import make_config
from convsight.errors import ConfigError


def test_build_sets_identity_and_overrides():
    model = build_detector("toy", 4, image_size=(32, 48))
    assert model.arch == "toy" and model.num_classes == 4 and model.image_size == (32, 48)
    assert "toy" in detector_names()


def test_unknown_arch_and_option_are_config_errors():
    with pytest.raises(ConfigError, match="unknown detector architecture 'nope'"):
        build_detector("nope", 2)
    with pytest.raises(ConfigError, match="unknown option.*colour.*valid:"):
        make_config("toy", colour="red")
    with pytest.raises(ConfigError, match="num_classes"):
        build_detector("toy", 0)

from __future__ import annotations

import pytest

from convsight import errors


@pytest.mark.parametrize("cls", [errors.InputFileError, errors.ImageError, errors.DatasetError,
                                 errors.WeightsError, errors.ConfigError])
def test_every_user_error_is_a_convsight_error(cls):
    assert issubclass(cls, errors.ConvsightError)


def test_file_errors_are_input_file_errors():
    for cls in (errors.ImageError, errors.DatasetError, errors.WeightsError):
        assert issubclass(cls, errors.InputFileError)
    assert not issubclass(errors.ConfigError, errors.InputFileError)


def test_warning_is_a_user_warning():
    assert issubclass(errors.ConvsightWarning, UserWarning)

from __future__ import annotations

import pytest

from convsight.errors import ConfigError
from convsight.registry import Registry


def test_register_get_and_list():
    reg: Registry = Registry("widget")

    @reg.register("b")
    def b() -> str:
        return "b"

    reg.register("a")(lambda: "a")
    assert reg.get("b") is b and reg.get("a")() == "a"
    assert reg.names() == ["a", "b"] and list(reg) == ["a", "b"] and "a" in reg and "c" not in reg


def test_unknown_name_lists_choices():
    reg: Registry = Registry("widget")
    reg.register("x")(lambda: None)
    with pytest.raises(ConfigError, match=r"unknown widget 'y'; choose one of: x"):
        reg.get("y")


def test_double_registration_is_a_programming_error():
    reg: Registry = Registry("widget")
    reg.register("x")(lambda: None)
    with pytest.raises(ValueError, match="twice"):
        reg.register("x")(lambda: None)

"""A tiny registry: name -> constructor (timm's ``register_model`` idea).

>>> BACKBONES = Registry("backbone")
>>> @BACKBONES.register("tiny")
... def tiny(): ...
>>> BACKBONES.get("tiny")
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from convsight.errors import ConfigError

T = TypeVar("T", bound=Callable[..., object])


class Registry(Generic[T]):
    """Maps names to constructors; unknown names give a :class:`ConfigError` listing the choices."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def deco(fn: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._items[name] = fn
            return fn

        return deco

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            choices = ", ".join(sorted(self._items)) or "none"
            raise ConfigError(f"unknown {self.kind} {name!r}; choose one of: {choices}") from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

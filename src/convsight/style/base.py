"""The one interface every stylizer implements, so the CLI, the demo and the web page need not care
whether pixels are optimised (Gatys) or a network was trained for the style (feed-forward)."""

from __future__ import annotations

from abc import ABC, abstractmethod

from torch import Tensor


class Stylizer(ABC):
    """A style bound at construction; ``stylize`` renders any content image in it."""

    name: str = "stylizer"

    @abstractmethod
    def stylize(self, content: Tensor) -> Tensor:
        """content (3, H, W) float in [0, 1] -> stylised image (3, H', W') float in [0, 1]."""

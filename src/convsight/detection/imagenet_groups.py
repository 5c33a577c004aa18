"""ImageNet's 1000 classes, and a few readable super-classes made of them (``--set group=true``).

ImageNet names 118 dog breeds and five house cats, no "dog" or "cat". A super-class's probability
is the sum of its members' softmax probabilities (they are disjoint events: the image is one of
them), so ``tabby 0.1 + tiger cat 0.1 + Egyptian cat 0.2`` is ``cat 0.4``. Classes in no group are
not reported when grouping.

Index ranges are inclusive and follow the ILSVRC-2012 class order that torchvision's
``MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"]`` lists. Sources:

- dog 151-268, cat 281-285, bird 80-100, monkey 365-382, fish 389-397, insect 300-319:
  Restricted ImageNet (Tsipras et al., "Robustness May Be at Odds with Accuracy", ICLR 2019), as
  ``RESTRICTED_IMAGNET_RANGES`` in MadryLab/robustness, ``robustness/tools/constants.py``;
- its later 16-class variant in the same file (``IMAGENET_16_RANGES``) adds birds 127-146, tench and
  goldfish to fish, butterflies 321-326 to insects, and has big cat 286-293 and bear 294-297;
- the rest (birds 7-24, sharks and rays, cup, car, helmet, boat, aircraft, building, flower,
  clothing) are lists written here by reading the class names; ``tests/detection/test_imagenet.py``
  checks each listed index against its name, so a reordered class list fails loudly.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import Tensor

NUM_IMAGENET_CLASSES = 1000


def _span(first: int, last: int) -> tuple[int, ...]:
    return tuple(range(first, last + 1))


# super-class -> ImageNet indices (ordered as shown; one index belongs to at most one group)
SUPER_CLASSES: dict[str, tuple[int, ...]] = {
    "cat": _span(281, 285),  # tabby .. Egyptian cat
    "big cat": _span(286, 293),  # cougar .. cheetah
    "dog": _span(151, 268),  # Chihuahua .. Mexican hairless
    "bear": _span(294, 297),  # brown bear .. sloth bear
    "monkey": _span(365, 382),  # orangutan .. squirrel monkey
    "bird": _span(7, 24) + _span(80, 100) + _span(127, 146),  # cock .. great grey owl, black grouse .. black swan, white stork .. albatross
    "fish": _span(0, 6) + _span(389, 397),  # tench .. stingray, barracouta .. puffer
    "insect": _span(300, 326),  # tiger beetle .. lycaenid (butterflies included)
    "cup": (504, 967, 968),  # coffee mug, espresso (served in its cup), cup
    "car": (407, 436, 468, 511, 609, 627, 656, 661, 717, 751, 817),  # ambulance .. sports car
    "helmet": (518, 560),  # crash helmet, football helmet
    "aircraft": (404, 405, 657, 744, 812, 895),  # airliner, airship, missile, projectile, space shuttle, warplane
    "boat": (472, 484, 554, 576, 625, 724, 780, 814, 833, 871, 914),  # canoe .. yawl
    "building": (442, 483, 497, 538, 663, 668, 698, 832),  # bell cote, castle, church, dome, monastery, mosque, palace, stupa
    "flower": (985, 986),  # daisy, yellow lady's slipper
    "clothing": (400, 457, 652, 834, 906),  # academic gown, bow tie, military uniform, suit, Windsor tie
}
GROUP_NAMES: tuple[str, ...] = tuple(SUPER_CLASSES)


@lru_cache(maxsize=1)
def imagenet_class_names() -> tuple[str, ...]:
    """The 1000 ImageNet class names in index order (inside torchvision: no download)."""
    from torchvision.models import MobileNet_V2_Weights

    return tuple(MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"])


def group_matrix(num_classes: int = NUM_IMAGENET_CLASSES) -> Tensor:
    """``(G, num_classes)`` float 0/1: row g marks the members of super-class g. ``probs (N, 1000) @
    matrix.T`` gives super-class probabilities ``(N, G)``."""
    m = torch.zeros(len(SUPER_CLASSES), num_classes)
    for g, members in enumerate(SUPER_CLASSES.values()):
        m[g, list(members)] = 1.0
    return m


def super_class_of(index: int) -> str | None:
    """The super-class an ImageNet index belongs to, or None."""
    for name, members in SUPER_CLASSES.items():
        if index in members:
            return name
    return None

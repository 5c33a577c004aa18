"""Which shipped detector runs when none is named, and the score each draws at (no imports: the CLI's
help text reads these without loading torch)."""

from __future__ import annotations

# The most accurate shipped detector (README table): what predict, eval, export and the web page use
# when no file or architecture is named.
DEFAULT_ARCH = "ssd"

# What predict draws by default. Models keep a low score threshold (0.05) because mAP integrates over
# all scores, but a picture with every 6% guess on it is unreadable. These are the scores of best F1
# (IoU 0.5) of the shipped files on 300 fresh 256-px scenes (seed 4242, no training run used them;
# localization on 300 single-object ones), on a grid of 0.05: `python scripts/display_thresholds.py`
# (F1: yolo 0.881, ssd 0.883, faster_rcnn 0.900; localization 0.965, sliding_window 0.481, rcnn 0.760,
# fast_rcnn 0.780).
DISPLAY_THRESHOLD = {"yolo": 0.25, "ssd": 0.45, "faster_rcnn": 0.65,
                     "localization": 0.5, "sliding_window": 0.4, "rcnn": 0.85, "fast_rcnn": 0.75}
OTHER_THRESHOLD = 0.5  # a detector file of another architecture

# Detectors whose weights come from another package, drawn at a score that means the same for any
# photo (no scene set to tune on). imagenet_localize's score is the whole image's class probability:
# at 0.2 a photo shows its top class and hides the runner-up breeds of the same object (chelsea:
# Egyptian cat 0.71, then tabby 0.13 and tiger cat 0.09, all boxing the same cat). imagenet_sliding's
# is one window's softmax: at 0.5 the class holds more than half the window's probability, the rule
# by which windows merge into one box (ImagenetSlidingConfig.merge_score).
PRETRAINED_THRESHOLD = {"imagenet_localize": 0.2, "imagenet_sliding": 0.5}


def display_threshold(arch: str) -> float:
    return DISPLAY_THRESHOLD.get(arch, PRETRAINED_THRESHOLD.get(arch, OTHER_THRESHOLD))


def thresholds_text() -> str:
    """``"yolo 0.2, ssd 0.35, faster-rcnn 0.65, others 0.5"`` for help and report text."""
    parts = [f"{a.replace('_', '-')} {t:g}" for a, t in DISPLAY_THRESHOLD.items()]
    return ", ".join([*parts, f"others {OTHER_THRESHOLD:g}"])

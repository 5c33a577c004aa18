from convsight.detection.defaults import DEFAULT_ARCH, DISPLAY_THRESHOLD, OTHER_THRESHOLD, display_threshold, thresholds_text
from convsight.detection.files import shipped_detectors


def test_the_default_and_every_drawn_threshold_name_a_shipped_detector() -> None:
    assert DEFAULT_ARCH in shipped_detectors()
    assert set(DISPLAY_THRESHOLD) == set(shipped_detectors())
    assert all(0 < t < 1 for t in DISPLAY_THRESHOLD.values())


def test_a_detector_of_another_architecture_is_drawn_at_the_fallback() -> None:
    assert display_threshold("ssd") == DISPLAY_THRESHOLD["ssd"]
    assert display_threshold("rcnn") == DISPLAY_THRESHOLD["rcnn"]  # the whole lineage ships (issue 18)
    assert display_threshold("toy") == OTHER_THRESHOLD


def test_help_text_names_each_threshold_in_cli_spelling() -> None:
    text = thresholds_text()
    assert f"faster-rcnn {DISPLAY_THRESHOLD['faster_rcnn']:g}" in text and text.endswith(f"others {OTHER_THRESHOLD:g}")

"""The web page's ``objects`` task: real objects in an uploaded photo (imagenet-sliding)."""

from __future__ import annotations

import pytest

from convsight.web.app import ServeConfig, create_app
from tests.web.test_app import _png

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def client():  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    return TestClient(create_app(ServeConfig(warmup=False, max_bytes=4_000_000)))


def test_the_page_lists_the_objects_task(client) -> None:  # type: ignore[no-untyped-def]
    assert "objects" in client.get("/api/tasks").json()["tasks"]


def test_objects_finds_the_espresso_in_the_coffee_photo(client) -> None:  # type: ignore[no-untyped-def]
    from skimage import data

    coffee = data.coffee()  # (400, 600, 3); hand-drawn cup-and-saucer box in tests/fixtures/photos/boxes.json
    r = client.post("/api/run", files={"file": ("coffee.png", _png(coffee), "image/png")}, data={"task": "objects"})
    assert r.status_code == 200, r.text
    d = r.json()
    assert (d["width"], d["height"]) == (600, 400) and d["image"].startswith("data:image/png;base64,")
    objects = d["result"]["objects"]
    assert objects and objects[0]["class"] == "espresso" and all(o["score"] >= 0.5 for o in objects)
    x1, y1, x2, y2 = objects[0]["box_xyxy"]
    assert 0 <= x1 < x2 <= 600 and 0 <= y1 < y2 <= 400  # in the upload's own pixels


def test_serve_detector_picks_what_the_detect_task_runs() -> None:
    """`convsight serve --detector NAME` (web.tasks.detector_task): the detect task runs that detector,
    here the ImageNet one on the coffee photo, and says which in its answer."""
    from fastapi.testclient import TestClient
    from skimage import data

    from convsight.web.tasks import TASKS, detector_task

    task = detector_task("imagenet-sliding")
    client = TestClient(create_app(ServeConfig(warmup=False, max_bytes=4_000_000), {**TASKS, "detect": task}))
    r = client.post("/api/run", files={"file": ("coffee.png", _png(data.coffee()), "image/png")}, data={"task": "detect"})
    assert r.status_code == 200, r.text
    d = r.json()["result"]
    assert d["model"] == "imagenet_sliding (imagenet-sliding)"
    assert d["objects"] and d["objects"][0]["class"] == "espresso"

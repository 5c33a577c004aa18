"""Tiny datasets laid out exactly as other tools write them (each builder cites its source).

Images are small PIL-made files; label values are chosen so that expected pixel boxes can be worked
out by hand in the tests.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def image(path: Path, size: tuple[int, int] = (200, 100)) -> Path:
    """A ``size`` = (width, height) image; the format follows the suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), 128, np.uint8)).save(path)
    return path


def text(path: Path, content: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    return path


# Ultralytics' coco8.yaml as the docs show it (https://docs.ultralytics.com/datasets/detect/, "Ultralytics
# YOLO format"; the file is ultralytics/cfg/datasets/coco8.yaml), names as a dict, cut to 4 classes.
# Older releases wrote `path: ../datasets/coco8` (relative to the yaml's folder here).
COCO8_YAML = """\
# Ultralytics YOLO, AGPL-3.0 license
# COCO8 dataset (first 8 images from COCO train2017) by Ultralytics
# Documentation: https://docs.ultralytics.com/datasets/detect/coco8/
# Train/val/test sets as 1) dir: path/to/imgs, 2) file: path/to/imgs.txt, or 3) list: [path/to/imgs1, path/to/imgs2, ..]
path: ../datasets/coco8 # dataset root dir
train: images/train # train images (relative to 'path') 4 images
val: images/val # val images (relative to 'path') 4 images
test: # test images (optional)

# Classes
names:
  0: person
  1: bicycle
  2: car
  3: motorcycle

# Download script/URL (optional)
download: https://github.com/ultralytics/assets/releases/download/v0.0.0/coco8.zip
"""


def ultralytics_coco8(tmp: Path) -> Path:
    """``tmp/cfg/coco8.yaml`` + ``tmp/datasets/coco8/{images,labels}/{train,val}``; returns the yaml."""
    root = tmp / "datasets" / "coco8"
    for split, stem, lines in (
        ("train", "000000000009", "0 0.5 0.5 0.5 0.5\n2 0.25 0.25 0.1 0.1\n"),
        ("train", "000000000025", "1 0.5 0.5 1.0 1.0\n"),
        ("val", "000000000036", "3 0.75 0.5 0.5 1.0\n"),
        ("val", "000000000042", None),  # no label file: a background image
    ):
        image(root / "images" / split / f"{stem}.jpg")
        if lines is not None:
            text(root / "labels" / split / f"{stem}.txt", lines)
    return text(tmp / "cfg" / "coco8.yaml", COCO8_YAML)


def cvat_ultralytics_list(tmp: Path) -> Path:
    """CVAT's "Ultralytics YOLO Detection" export (https://docs.cvat.ai/docs/manual/advanced/formats/
    format-yolo-ultralytics/): ``data.yaml`` with ``path: ./`` and ``train: train.txt`` listing
    ``images/<subset>/<name>``; names as a list, as in datumaro's test asset
    ``tests/assets/yolo_dataset/yolov8_with_list_of_names/data.yaml``. One listed image is missing."""
    root = tmp / "cvat_ultra"
    text(root / "data.yaml", "path: ./ # dataset root dir\ntrain: train.txt # train images (relative to 'path')\n"
         "val: images/val\n\nnames:\n  - cat\n  - dog\n")
    image(root / "images" / "train" / "image1.jpg")
    image(root / "images" / "train" / "image2.jpg")
    image(root / "images" / "val" / "image3.jpg")
    text(root / "labels" / "train" / "image1.txt", "1 0.3 0.8 0.1 0.3\n")
    text(root / "labels" / "train" / "image2.txt", "0 0.7 0.2 0.3 0.1\n")
    text(root / "labels" / "val" / "image3.txt", "1 0.5 0.5 0.5 0.5\n")
    text(root / "train.txt", "images/train/image1.jpg\nimages/train/image2.jpg\nimages/train/gone.jpg\n")
    return root


# Roboflow's "YOLOv8 PyTorch TXT" export (https://roboflow.com/formats/yolov8-pytorch-txt): split-first
# folders, data.yaml at the root with `../train/images` paths; the `roboflow:` block as in public
# Universe exports (e.g. universe.roboflow.com/mineralizadosyolov3old/mineralesall/dataset/1).
ROBOFLOW_YAML = """\
train: ../train/images
val: ../valid/images
test: ../test/images

nc: 3
names: ['head', 'helmet', 'person']

roboflow:
  workspace: example-workspace
  project: hard-hats
  version: 1
  license: CC BY 4.0
  url: https://universe.roboflow.com/example-workspace/hard-hats/dataset/1
"""

ROBOFLOW_LINE = "1 0.617 0.3594420600858369 0.114 0.17381974248927037\n"  # from Roboflow's format page


def roboflow_yolov8(tmp: Path, same_name_in_every_split: bool = False) -> Path:
    root = tmp / "Hard-Hats-1"
    text(root / "data.yaml", ROBOFLOW_YAML)
    text(root / "README.roboflow.txt", "Hard Hats - v1\nThis dataset was exported via roboflow.com\n")
    for k, split in enumerate(("train", "valid", "test")):
        name = "frame_jpg.rf.0a1b2c" if same_name_in_every_split else f"img{k}_jpg.rf.{k}f3e9"
        image(root / split / "images" / f"{name}.jpg", (250, 233))
        text(root / split / "labels" / f"{name}.txt", ROBOFLOW_LINE if split != "test" else "")
    image(root / "train" / "images" / "extra_jpg.rf.77.jpg", (100, 100))
    text(root / "train" / "labels" / "extra_jpg.rf.77.txt", "0 0.5 0.5 0.5 0.5\n2 0.25 0.25 0.5 0.5\n")
    return root


def cvat_yolo11(tmp: Path) -> Path:
    """CVAT "YOLO 1.1" export (https://docs.cvat.ai/docs/dataset_management/formats/format-yolo/):
    obj.data, obj.names, obj_<subset>_data/ with images and labels side by side, <subset>.txt. Paths
    carry darknet's ``data/`` prefix, as datumaro's exporter writes them by default
    (``--add-path-prefix``, datumaro docs/source/docs/explanation/formats/yolo.md)."""
    root = tmp / "cvat_yolo"
    text(root / "obj.data", "classes = 3\ntrain = data/train.txt\nvalid = data/valid.txt\nnames = data/obj.names\n"
         "backup = backup/\n")
    text(root / "obj.names", "cat\ndog\nairplane\n")
    image(root / "obj_train_data" / "frame_000000.jpg")
    text(root / "obj_train_data" / "frame_000000.txt", "1 0.3 0.8 0.1 0.3\n2 0.7 0.2 0.3 0.1\n")
    image(root / "obj_train_data" / "frame_000001.jpg")
    text(root / "obj_train_data" / "frame_000001.txt", "")
    image(root / "obj_valid_data" / "frame_000002.jpg")
    text(root / "obj_valid_data" / "frame_000002.txt", "0 0.5 0.5 0.2 0.2\n")
    text(root / "train.txt", "data/obj_train_data/frame_000000.jpg\ndata/obj_train_data/frame_000001.jpg\n")
    text(root / "valid.txt", "data/obj_valid_data/frame_000002.jpg\n")
    return root


def darknet_alexeyab(tmp: Path) -> Path:
    """AlexeyAB/darknet README, "How to train (to detect your custom objects)": ``data/obj.data`` with
    ``classes= 2 / train = data/train.txt / valid = data/test.txt / names = data/obj.names / backup =
    backup/``, images and labels together in ``data/obj/``, list lines ``data/obj/img1.jpg``. Returns
    the darknet folder (``data/`` lies inside)."""
    darknet = tmp / "darknet"
    data = darknet / "data"
    text(data / "obj.data", "classes= 2\ntrain  = data/train.txt\nvalid  = data/test.txt\nnames = data/obj.names\n"
         "backup = backup/\n")
    text(data / "obj.names", "bird\ncar\n")
    for k in (1, 2, 3):
        image(data / "obj" / f"img{k}.jpg", (100, 100))
    text(data / "obj" / "img1.txt", "1 0.716797 0.395833 0.216406 0.147222\n")
    text(data / "obj" / "img2.txt", "0 0.5 0.5 0.2 0.2\n")
    text(data / "obj" / "img3.txt", "0 0.5 0.5 0.4 0.4\n")
    text(data / "train.txt", "data/obj/img1.jpg\ndata/obj/img2.jpg\n")
    text(data / "test.txt", "data/obj/img3.jpg\ndata/obj/img4.jpg\n")  # img4.jpg does not exist
    return darknet

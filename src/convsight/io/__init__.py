"""Ground floor: images in and out, and datasets in the formats other tools write (COCO, Pascal VOC,
YOLO/Ultralytics), all read into one in-memory model, :class:`convsight.io.annotations.AnnotationSet`.

Nothing is imported here, so ``import convsight.io`` stays cheap; import the modules you need.
"""

"""Box maths as pure tensor functions: formats and IoU, anchors, box coding, matching, windows, NMS.

Boxes are ``xyxy`` float tensors ``(N, 4)`` in absolute pixels; image sizes are ``(H, W)``.
"""

from convsight.ops.anchors import (
    AnchorConfig,
    AnchorGenerator,
    anchor_shapes,
    anchors_per_location,
    grid_anchors,
    ssd_default_box_config,
    ssd_scales,
)
from convsight.ops.box_coder import BoxCoder, decode_boxes, encode_boxes
from convsight.ops.boxes import (
    box_area,
    box_convert,
    box_iou,
    clip_boxes,
    cxcywh_to_xyxy,
    denormalize_boxes,
    expand_boxes,
    normalize_boxes,
    remove_small_boxes,
    scale_boxes,
    xywh_to_xyxy,
    xyxy_to_cxcywh,
    xyxy_to_xywh,
)
from convsight.ops.matching import BACKGROUND, IGNORE, MatcherConfig, match_boxes, sample_fg_bg
from convsight.ops.nms import batched_nms_topk, postprocess_detections
from convsight.ops.windows import sliding_windows, sliding_windows_by_scale, window_sizes_from_scales

__all__ = [
    "BACKGROUND",
    "IGNORE",
    "AnchorConfig",
    "AnchorGenerator",
    "BoxCoder",
    "MatcherConfig",
    "anchor_shapes",
    "anchors_per_location",
    "batched_nms_topk",
    "box_area",
    "box_convert",
    "box_iou",
    "clip_boxes",
    "cxcywh_to_xyxy",
    "decode_boxes",
    "denormalize_boxes",
    "encode_boxes",
    "expand_boxes",
    "grid_anchors",
    "match_boxes",
    "normalize_boxes",
    "postprocess_detections",
    "remove_small_boxes",
    "sample_fg_bg",
    "scale_boxes",
    "sliding_windows",
    "sliding_windows_by_scale",
    "ssd_default_box_config",
    "ssd_scales",
    "window_sizes_from_scales",
    "xywh_to_xyxy",
    "xyxy_to_cxcywh",
    "xyxy_to_xywh",
]

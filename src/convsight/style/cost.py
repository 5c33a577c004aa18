"""What one loss evaluation of pixel-optimising style transfer costs, counted from the layer shapes.

A loss evaluation is one forward of the encoder to its deepest tap and one backward to the pixels.
The encoder is frozen, so the backward computes input gradients only (no weight gradients): each
convolution's input-gradient is a transposed convolution with the same multiply-adds as its forward.
Hence the convention used here::

    FLOPs per evaluation = 2 (multiply + add) x 2 (forward + input-gradient backward) x conv MACs

(the "x3 for forward + backward" rule of thumb is for training, where weight gradients cost a third
pass). Only convolutions are counted. ReLU, pooling and the loss are memory-bound and small; the
Gram matrices are matrix products too, but small ones: at VGG19's five style taps they add about 5%
to the convolutions' multiply-adds (forward and backward, ``sum_l C_l^2 h_l w_l`` each way), left out
so the count is the textbook one (torchvision lists VGG19 at 19.63 GMACs at 224 px; ``conv_macs`` of
its features plus the three FC layers gives the same).
"""

from __future__ import annotations

from torch import nn


def _out_side(side: int, kernel: int, stride: int, padding: int, dilation: int = 1, ceil: bool = False) -> int:
    span = side + 2 * padding - dilation * (kernel - 1) - 1
    return (-(-span // stride) if ceil else span // stride) + 1


def _pair(v: int | tuple[int, ...]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[-1]))


def conv_macs(net: nn.Module, height: int, width: int) -> int:
    """Multiply-accumulates of every ``nn.Conv2d`` in ``net`` for one (3, height, width) input.

    Walks the leaf modules in definition order, which is the execution order for a VGG-style
    ``nn.Sequential`` and for MobileNetV2's blocks (their residual additions keep the shape), and
    tracks the map size through convolutions and pooling layers. A conv's MACs:
    ``h_out * w_out * c_out * (c_in / groups) * k_h * k_w``.
    """
    h, w = height, width
    total = 0
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            (kh, kw), (sh, sw), (dh, dw) = _pair(m.kernel_size), _pair(m.stride), _pair(m.dilation)
            if isinstance(m.padding, str):  # "same" keeps the size (stride 1 only), "valid" pads nothing
                ph, pw = ((dh * (kh - 1)) // 2, (dw * (kw - 1)) // 2) if m.padding == "same" else (0, 0)
            else:
                ph, pw = _pair(m.padding)
            h, w = _out_side(h, kh, sh, ph, dh), _out_side(w, kw, sw, pw, dw)
            total += h * w * m.out_channels * (m.in_channels // m.groups) * kh * kw
        elif isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
            (kh, kw), (sh, sw) = _pair(m.kernel_size), _pair(m.stride or m.kernel_size)
            ph, pw = _pair(m.padding)
            h, w = _out_side(h, kh, sh, ph, 1, m.ceil_mode), _out_side(w, kw, sw, pw, 1, m.ceil_mode)
    return total


def evaluation_flops(encoder: nn.Module, height: int, width: int) -> int:
    """FLOPs of one loss evaluation at (height, width): ``4 * conv_macs`` of the encoder's features
    (truncated after its deepest tap), by the module's convention (forward + input-gradient backward)."""
    features = getattr(encoder, "features", encoder)
    return 4 * conv_macs(features, height, width)

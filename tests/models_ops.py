"""Test networks for operators beyond the MLP/CNN/branch sets: Brevitas, seeded random weights,
calibrated batch-norm, exported to QONNX (legacy exporter by default).

* :func:`mobilenet_v1` -- Brevitas' own ``brevitas_examples.imagenet_classification.models
  .mobilenetv1.MobileNet`` (the class ``quant_mobilenet_v1`` builds) at width 0.25 and W4A4 on a
  small input, untouched: per-channel activation scales on the stem and on every pointwise layer
  but the last stage's, and its ``TruncAvgPool2d`` (``AveragePool`` + ``Trunc``) sized to the final
  map through the constructor's own ``avg_pool_kernel_size``. :func:`mobilenet_v1_vww` is the MLPerf
  Tiny visual-wake-words shape (3x96x96, width 0.25, 2 classes).
* :func:`ds_cnn` -- the MLPerf Tiny keyword-spotting DS-CNN (1x49x10 MFCC frames, 10x4 stride-2
  stem, four depthwise-separable blocks, a ``TruncAvgPool2d`` over the whole 25x5 map, 12 classes).
* :func:`espcn` -- Brevitas' own ``brevitas_examples.super_resolution.models.espcn.QuantESPCN``
  (W4A4 "base" flavour, upscale 2) on a 3x16x64 input; ends in ``PixelShuffle`` = ``DepthToSpace``.
* :func:`conv1d_net` -- a RadioML-VGG10-like 1-D classifier on a 2x1024 signal (QuantConv1d k3 p1,
  BN, QuantReLU, MaxPool1d(2) seven times, then dense layers).
* :func:`hardswish_net` -- a small CNN with ``nn.Hardswish`` (or ``nn.SiLU``) between two signed
  4-bit ``QuantIdentity`` quantizers.

Each ``<name>(path, dynamo=False, seed=0, ...)`` builds, checks the activation levels and exports,
returning ``path``; ``build_<name>(seed=0, ...)`` gives the torch model (eval mode, calibrated);
``OPS_MODELS`` / :func:`export_ops_model` / :func:`build_ops_model` reach them by name;
``<NAME>_FRAME`` are the default input shapes and :data:`INPUT_RANGE` the value range of each
(``random_frames`` draws 8-bit-like values in it: all in [0, 1] but the 1-D net's, in [-1, 1]).

All are checked with the legacy exporter (``dynamo=False``, the default); ``dynamo=True`` also
exported each of them (torch 2.13, brevitas 0.13) and matched torch under qonnx (its ``Flatten`` is
a ``Reshape``).
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from models import _act_quant_modules, _check_levels, _one_thread, calibrate_float_flow, export

MOBILENET_V1_FRAME = (3, 64, 64)
MOBILENET_V1_VWW_FRAME = (3, 96, 96)
DS_CNN_FRAME = (1, 49, 10)
ESPCN_FRAME = (3, 16, 64)
CONV1D_FRAME = (2, 1024)
HARDSWISH_FRAME = (3, 16, 16)

#: channels of ``quant_mobilenet_v1`` at width 1.0 (a local list in Brevitas' factory function):
#: stem, then five stages of depthwise-separable blocks.
MOBILENET_V1_CHANNELS = ((32,), (64,), (128, 128), (256, 256), (512,) * 6, (1024, 1024))
ESPCN_CHANNELS = (64, 64, 32)  # QuantESPCN's conv1..conv3 widths (hard-coded in Brevitas)


# ----------------------------------------------------------------------------- inputs
def random_frames(shape, n: int, seed: int = 0, signed: bool = False) -> np.ndarray:
    """``n`` float32 frames ``k / 255`` in [0, 1] (``signed``: ``k / 127`` in [-1, 1])."""
    rng = np.random.default_rng(seed)
    shape = (n, *tuple(shape))
    if signed:
        return (rng.integers(-127, 128, size=shape) / 127).astype(np.float32)
    return (rng.integers(0, 256, size=shape) / 255).astype(np.float32)


def _frames_for(name: str, shape, n: int, seed: int) -> np.ndarray:
    return random_frames(shape, n, seed, signed=INPUT_RANGE[name][0] < 0)


# ----------------------------------------------------------------------------- quantizer helpers
def _wq(bits: int, per_channel: bool = True):
    from brevitas.quant import Int8WeightPerChannelFloat, Int8WeightPerTensorFloat

    return dict(weight_quant=Int8WeightPerChannelFloat if per_channel else Int8WeightPerTensorFloat,
                weight_bit_width=bits, bias=False)


def _relu(bits: int, quant_tensor: bool = False):
    from brevitas.nn import QuantReLU
    from brevitas.quant import Uint8ActPerTensorFloat

    return QuantReLU(act_quant=Uint8ActPerTensorFloat, bit_width=bits, return_quant_tensor=quant_tensor)


def _signed(bits: int):
    from brevitas.nn import QuantIdentity
    from brevitas.quant import Int8ActPerTensorFloat

    return QuantIdentity(act_quant=Int8ActPerTensorFloat, bit_width=bits, return_quant_tensor=False)


def _input_quant(bits: int, signed: bool = False, quant_tensor: bool = False):
    from brevitas.nn import QuantIdentity
    from brevitas.quant import Int8ActPerTensorFloat, Uint8ActPerTensorFloat

    return QuantIdentity(act_quant=Int8ActPerTensorFloat if signed else Uint8ActPerTensorFloat,
                         bit_width=bits, return_quant_tensor=quant_tensor)


def _dense(cin, cout, bits: int, bias: bool = True):
    from brevitas.nn import QuantLinear
    from brevitas.quant import Int8WeightPerTensorFloat

    return QuantLinear(cin, cout, weight_quant=Int8WeightPerTensorFloat, weight_bit_width=bits, bias=bias)


# ----------------------------------------------------------------------------- calibration
def _input_quant_proxies(model):
    """Enabled ``input_quant`` proxies of layers (QuantESPCN's conv input quantizers)."""
    out = []
    for n, m in model.named_modules():
        q = getattr(m, "input_quant", None)
        if q is not None and getattr(q, "is_quant_enabled", False):
            out.append((n + ".input_quant", q))
    return out


def levels(model, x) -> list[dict]:
    """``models.quant_levels`` extended to the layers' ``input_quant`` proxies: for each activation
    quantizer the number of distinct output values on ``x`` and its stuck (one-value) channels."""
    import torch

    out, hooks = [], []
    for name, m in _act_quant_modules(model) + _input_quant_proxies(model):
        def hook(mod, inp, res, name=name):
            t = res.value if hasattr(res, "value") else res
            if isinstance(t, tuple):
                t = t[0]
            t = t.detach()
            flat = t.transpose(0, 1).reshape(t.shape[1], -1)
            stuck = int(sum(int(torch.unique(row).numel() == 1) for row in flat))
            out.append({"name": name, "levels": int(torch.unique(t).numel()),
                        "channels": int(t.shape[1]), "stuck_channels": stuck})
        hooks.append(m.register_forward_hook(hook))
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return out


def _calibrate(model, x, seed):
    """Batch-norm statistics on the float flow, then the activation scales with those statistics
    in place (:func:`models.calibrate_float_flow`), as ``models_graph`` does."""
    import torch

    return calibrate_float_flow(model, x, torch.Generator().manual_seed(seed + 7))


def _built(name, shape, seed, make):
    """``make()`` under ``manual_seed(seed)``, calibrated on 64 frames, levels checked on 32 more."""
    import torch

    with _one_thread(), torch.random.fork_rng():
        torch.manual_seed(seed)
        model = make()
        _calibrate(model, torch.from_numpy(_frames_for(name, shape, 64, seed + 1)), seed)
        _check_levels(levels(model, torch.from_numpy(_frames_for(name, shape, 32, seed + 2))), name)
    return model


def _export(name, model, shape, path, dynamo, seed) -> Path:
    x = _frames_for(name, shape, 1, seed + 3)
    with _one_thread():
        export(model, x, Path(path), dynamo)
    return Path(path)


# ----------------------------------------------------------------------------- MobileNet-v1
def mobilenet_v1_final_map(size: int) -> int:
    """Side of MobileNet-v1's last feature map for a ``size`` x ``size`` input: the stem is a
    3x3 stride-2 convolution *without* padding, then four stride-2 depthwise 3x3 (pad 1) stages
    (224 -> 111 -> 56 -> 28 -> 14 -> 7, Brevitas' ``avg_pool_kernel_size=7``)."""
    h = (int(size) - 3) // 2 + 1
    for _ in range(4):
        h = (h - 1) // 2 + 1
    if h < 1:
        raise ValueError(f"mobilenet_v1: input {size} too small")
    return h


def build_mobilenet_v1(seed: int = 0, size: int = 64, width: float = 0.25, bit_width: int = 4,
                       num_classes: int = 10, input_bits: int | None = 8, round_average_pool: bool = False,
                       first_layer_bit_width: int = 8):
    """Brevitas' ``MobileNet`` built as ``quant_mobilenet_v1`` builds it (channels
    ``int(c * width)`` of :data:`MOBILENET_V1_CHANNELS`, ``first_stage_stride=False``,
    ``act_bit_width = weight_bit_width = last_layer_bit_width = bit_width``) with
    ``avg_pool_kernel_size`` = the final map side (:func:`mobilenet_v1_final_map`: 2 at 64x64,
    3 at 96x96), ``in_channels=3`` and ``num_classes``; behind a ``QuantIdentity`` (uint
    ``input_bits``; None: no input quantizer, Brevitas' class alone takes float input).

    Layers (width 0.25: 8, 16, 32, 32, 64, 64, 128 x 6, 256, 256 channels):
    init_block conv3x3 stride 2 pad 0 (8-bit per-channel weights, ``first_layer_bit_width``) BN
    QuantReLU(4, per-channel scale); 13 DwsConvBlocks, each dw conv3x3 pad 1 (stride 2 first in
    stages 2-5) BN QuantReLU(4, per-tensor) then pw conv1x1 BN QuantReLU(4, per-channel scale in
    stages 1-4, per-tensor in stage 5); weights 4-bit per-channel; ``TruncAvgPool2d(kernel, stride
    1, bit_width=bit_width, FLOOR)`` (``round_average_pool=True``: ROUND, the class's default; the
    4-bit zoo config ``quant_mobilenet_v1_4b`` uses FLOOR); view; QuantLinear(256 -> classes,
    4-bit per-tensor weights, Int32Bias). All quantizers return QuantTensors: legacy export.
    """
    import torch
    from brevitas_examples.imagenet_classification.models.mobilenetv1 import MobileNet

    channels = [[int(c * width) for c in stage] for stage in MOBILENET_V1_CHANNELS]
    shape = (3, size, size)

    def make():
        net = MobileNet(channels=channels, first_stage_stride=False, act_bit_width=bit_width,
                        weight_bit_width=bit_width, round_average_pool=round_average_pool,
                        first_layer_bit_width=first_layer_bit_width, last_layer_bit_width=bit_width,
                        avg_pool_kernel_size=mobilenet_v1_final_map(size), in_channels=3,
                        num_classes=num_classes)
        if input_bits is None:
            return net
        return torch.nn.Sequential(_input_quant(input_bits, quant_tensor=True), net)

    return _built("mobilenet_v1", shape, seed, make)


def mobilenet_v1(path, dynamo: bool = False, seed: int = 0, size: int = 64, width: float = 0.25,
                 bit_width: int = 4, num_classes: int = 10, input_bits: int | None = 8,
                 round_average_pool: bool = False, first_layer_bit_width: int = 8) -> Path:
    model = build_mobilenet_v1(seed, size, width, bit_width, num_classes, input_bits, round_average_pool,
                               first_layer_bit_width)
    return _export("mobilenet_v1", model, (3, size, size), path, dynamo, seed)


def build_mobilenet_v1_vww(seed: int = 0, **kw):
    """:func:`build_mobilenet_v1` at the MLPerf Tiny visual-wake-words shape: 3x96x96, width 0.25,
    2 classes (final map 3x3, ``TruncAvgPool2d`` kernel 3)."""
    kw = {"size": 96, "width": 0.25, "num_classes": 2, **kw}
    return build_mobilenet_v1(seed, **kw)


def mobilenet_v1_vww(path, dynamo: bool = False, seed: int = 0, **kw) -> Path:
    kw = {"size": 96, "width": 0.25, "num_classes": 2, **kw}
    return mobilenet_v1(path, dynamo=dynamo, seed=seed, **kw)


# ----------------------------------------------------------------------------- module classes
@functools.cache
def _nn():
    """The nn.Module classes, defined on first use (torch is imported lazily)."""
    from brevitas.nn import QuantConv1d, QuantConv2d, TruncAvgPool2d
    from torch import nn

    class DSCNN(nn.Module):
        def __init__(self, frame=DS_CNN_FRAME, width=64, blocks=4, classes=12, bit_width=4, input_bits=8,
                     round_average_pool=False):
            super().__init__()
            c, h, w = frame
            self.quant_in = _input_quant(input_bits)
            self.conv1 = QuantConv2d(c, width, (10, 4), stride=2, padding=(5, 1), **_wq(bit_width))
            self.bn1 = nn.BatchNorm2d(width)
            self.relu1 = _relu(bit_width)
            layers = []
            for i in range(blocks):
                last = i == blocks - 1
                layers += [QuantConv2d(width, width, 3, padding=1, groups=width, **_wq(bit_width)),
                           nn.BatchNorm2d(width), _relu(bit_width),
                           QuantConv2d(width, width, 1, **_wq(bit_width)),
                           nn.BatchNorm2d(width), _relu(bit_width, quant_tensor=last)]
            self.blocks = nn.Sequential(*layers)
            self.map = ((h + 10 - 10) // 2 + 1, (w + 2 - 4) // 2 + 1)  # 25 x 5 for 49 x 10
            self.pool = TruncAvgPool2d(kernel_size=self.map, stride=1, bit_width=bit_width,
                                       float_to_int_impl_type="ROUND" if round_average_pool else "FLOOR")
            self.flatten = nn.Flatten()
            self.fc = _dense(width, classes, bit_width)

        def forward(self, x):
            x = self.relu1(self.bn1(self.conv1(self.quant_in(x))))
            return self.fc(self.flatten(self.pool(self.blocks(x))))

    class Conv1dNet(nn.Module):
        def __init__(self, frame=CONV1D_FRAME, filters=16, stages=7, dense=(32, 32), classes=24, bit_width=4,
                     input_bits=8):
            super().__init__()
            c, length = frame
            layers = [_input_quant(input_bits, signed=True)]
            for _ in range(stages):
                layers += [QuantConv1d(c, filters, 3, padding=1, **_wq(bit_width)), nn.BatchNorm1d(filters),
                           _relu(bit_width), nn.MaxPool1d(2)]
                c, length = filters, length // 2
            layers.append(nn.Flatten())
            n = c * length
            for d in dense:
                layers += [_dense(n, d, bit_width, bias=False), nn.BatchNorm1d(d), _relu(bit_width)]
                n = d
            layers.append(_dense(n, classes, bit_width))
            self.layers = nn.Sequential(*layers)

        def forward(self, x):
            return self.layers(x)

    class HardswishNet(nn.Module):
        def __init__(self, frame=HARDSWISH_FRAME, channels=8, act="hardswish", bit_width=4, input_bits=4,
                     classes=10, out_bits=None):
            super().__init__()
            c, h, w = frame
            self.quant_in = _input_quant(input_bits)
            self.conv1 = QuantConv2d(c, channels, 3, padding=1, **_wq(bit_width, per_channel=False))
            self.bn1 = nn.BatchNorm2d(channels)
            self.pre = _signed(bit_width)
            self.act = {"hardswish": nn.Hardswish, "silu": nn.SiLU}[act]()
            self.post = _signed(out_bits or bit_width)
            self.conv2 = QuantConv2d(channels, 2 * channels, 3, padding=1, **_wq(bit_width, per_channel=False))
            self.bn2 = nn.BatchNorm2d(2 * channels)
            self.relu2 = _relu(bit_width)
            self.pool = nn.MaxPool2d(2)
            self.flatten = nn.Flatten()
            self.fc = _dense(2 * channels * (h // 2) * (w // 2), classes, bit_width)

        def forward(self, x):
            x = self.post(self.act(self.pre(self.bn1(self.conv1(self.quant_in(x))))))
            return self.fc(self.flatten(self.pool(self.relu2(self.bn2(self.conv2(x))))))

    return dict(DSCNN=DSCNN, Conv1dNet=Conv1dNet, HardswishNet=HardswishNet)


# ----------------------------------------------------------------------------- DS-CNN
def build_ds_cnn(seed: int = 0, width: int = 64, blocks: int = 4, classes: int = 12, bit_width: int = 4,
                 input_bits: int = 8, round_average_pool: bool = False, frame=DS_CNN_FRAME):
    """MLPerf Tiny KWS DS-CNN (TF: Conv2D(64, (10, 4), strides 2, 'same') -> 25x5 on 49x10):

    QuantIdentity(uint ``input_bits``); conv(1 -> width, 10x4, stride 2, pad (5, 1)) BN QuantReLU;
    ``blocks`` x [depthwise conv3x3 pad 1 BN QuantReLU, pointwise conv1x1 BN QuantReLU];
    ``TruncAvgPool2d(kernel (25, 5), stride 1, bit_width, FLOOR)`` over the whole map (it takes
    the last QuantReLU's QuantTensor); Flatten; QuantLinear(width -> classes, bias).
    Weights ``bit_width`` per-channel (the dense per-tensor), activations ``bit_width`` per-tensor;
    no dropout (inference)."""
    return _built("ds_cnn", frame, seed, lambda: _nn()["DSCNN"](
        frame=tuple(frame), width=width, blocks=blocks, classes=classes, bit_width=bit_width,
        input_bits=input_bits, round_average_pool=round_average_pool))


def ds_cnn(path, dynamo: bool = False, seed: int = 0, width: int = 64, blocks: int = 4, classes: int = 12,
           bit_width: int = 4, input_bits: int = 8, round_average_pool: bool = False, frame=DS_CNN_FRAME) -> Path:
    model = build_ds_cnn(seed, width, blocks, classes, bit_width, input_bits, round_average_pool, frame)
    return _export("ds_cnn", model, frame, path, dynamo, seed)


# ----------------------------------------------------------------------------- ESPCN
def build_espcn(seed: int = 0, size=ESPCN_FRAME[1:], num_channels: int = 3, upscale_factor: int = 2,
                bit_width: int = 4, channels=ESPCN_CHANNELS):
    """Brevitas' ``QuantESPCN(upscale_factor, num_channels, weight_bit_width=act_bit_width=bit_width,
    weight_quant=CommonIntWeightPerChannelQuant)`` (= the zoo's ``quant_espcn_x2_w4a4_base`` at
    upscale 2) on a ``num_channels x size`` input:

    relu(input); conv1 5x5 pad 2 (uint8 input quantizer, 8-bit per-channel weights, float bias) BN
    ReLU; conv2 3x3 pad 1 (uint ``bit_width`` input quantizer, per-channel weights, bias) BN ReLU;
    conv3 3x3 pad 1 (same) BN ReLU; conv4 3x3 pad 1 -> num_channels * upscale^2 (uint
    ``bit_width`` input quantizer, 8-bit per-tensor weights, no bias); PixelShuffle(upscale);
    QuantReLU(uint8, constant scale 1/255). The activation quantizers are the convolutions'
    ``input_quant`` s (calibrated here), the ReLUs plain ``nn.ReLU``.

    QuantESPCN hard-codes ``channels`` = (64, 64, 32): with any other value a subclass rebuilds
    conv1..conv4 and bn1..bn3 with Brevitas' own arguments at those widths.
    """
    from brevitas_examples.super_resolution.models import espcn as E

    channels = tuple(int(c) for c in channels)
    shape = (num_channels, *tuple(size))

    def make():
        kw = dict(upscale_factor=upscale_factor, num_channels=num_channels, weight_bit_width=bit_width,
                  act_bit_width=bit_width, weight_quant=E.CommonIntWeightPerChannelQuant)
        if channels == ESPCN_CHANNELS:
            return E.QuantESPCN(**kw)
        return _narrow_espcn(E, channels, **kw)

    return _built("espcn", shape, seed, make)


def _narrow_espcn(E, channels, upscale_factor, num_channels, weight_bit_width, act_bit_width, weight_quant,
                  acc_bit_width=32):
    import brevitas.nn as qnn
    from torch import nn

    c1, c2, c3 = channels
    net = E.QuantESPCN(upscale_factor=upscale_factor, num_channels=num_channels, weight_bit_width=weight_bit_width,
                       act_bit_width=act_bit_width, acc_bit_width=acc_bit_width, weight_quant=weight_quant)
    common = dict(stride=1, input_quant=E.CommonUintActQuant)
    net.conv1 = qnn.QuantConv2d(num_channels, c1, 5, padding=2, bias=True, input_bit_width=E.IO_DATA_BIT_WIDTH,
                                weight_bit_width=E.IO_DATA_BIT_WIDTH, weight_accumulator_bit_width=E.IO_ACC_BIT_WIDTH,
                                weight_quant=weight_quant, **common)
    net.conv2 = qnn.QuantConv2d(c1, c2, 3, padding=1, bias=True, input_bit_width=act_bit_width,
                                weight_bit_width=weight_bit_width, weight_accumulator_bit_width=acc_bit_width,
                                weight_quant=weight_quant, **common)
    net.conv3 = qnn.QuantConv2d(c2, c3, 3, padding=1, bias=True, input_bit_width=act_bit_width,
                                weight_bit_width=weight_bit_width, weight_accumulator_bit_width=acc_bit_width,
                                weight_quant=weight_quant, **common)
    net.conv4 = qnn.QuantConv2d(c3, num_channels * upscale_factor**2, 3, padding=1, bias=False,
                                input_bit_width=act_bit_width, weight_bit_width=E.IO_DATA_BIT_WIDTH,
                                weight_quant=E.CommonIntWeightPerChannelQuant, weight_scaling_per_output_channel=False,
                                **common)
    net.bn1, net.bn2, net.bn3 = nn.BatchNorm2d(c1), nn.BatchNorm2d(c2), nn.BatchNorm2d(c3)
    net.apply(E.weight_init)
    return net


def espcn(path, dynamo: bool = False, seed: int = 0, size=ESPCN_FRAME[1:], num_channels: int = 3,
          upscale_factor: int = 2, bit_width: int = 4, channels=ESPCN_CHANNELS) -> Path:
    model = build_espcn(seed, size, num_channels, upscale_factor, bit_width, channels)
    return _export("espcn", model, (num_channels, *tuple(size)), path, dynamo, seed)


# ----------------------------------------------------------------------------- 1-D conv net
def build_conv1d_net(seed: int = 0, length: int = 1024, channels: int = 2, filters: int = 16, stages: int = 7,
                     dense=(32, 32), classes: int = 24, bit_width: int = 4, input_bits: int = 8):
    """RadioML-VGG10-like (FINN's has 64 filters, dense 128-128, 24 classes):

    QuantIdentity(int ``input_bits``, signed: frames in [-1, 1]); ``stages`` x [QuantConv1d(k 3,
    pad 1, -> filters) BN1d QuantReLU MaxPool1d(2)] (1024 -> 8); Flatten (filters * 8);
    per ``dense`` width QuantLinear(no bias) BN1d QuantReLU; QuantLinear(-> classes, bias).
    Conv weights ``bit_width`` per-channel, dense per-tensor; activations ``bit_width`` per-tensor."""
    return _built("conv1d_net", (channels, length), seed, lambda: _nn()["Conv1dNet"](
        frame=(channels, length), filters=filters, stages=stages, dense=tuple(dense), classes=classes,
        bit_width=bit_width, input_bits=input_bits))


def conv1d_net(path, dynamo: bool = False, seed: int = 0, length: int = 1024, channels: int = 2,
               filters: int = 16, stages: int = 7, dense=(32, 32), classes: int = 24, bit_width: int = 4,
               input_bits: int = 8) -> Path:
    model = build_conv1d_net(seed, length, channels, filters, stages, dense, classes, bit_width, input_bits)
    return _export("conv1d_net", model, (channels, length), path, dynamo, seed)


# ----------------------------------------------------------------------------- HardSwish net
def build_hardswish_net(seed: int = 0, size: int = 16, channels: int = 8, act: str = "hardswish",
                        bit_width: int = 4, input_bits: int = 4, out_bits: int | None = None):
    """QuantIdentity(uint ``input_bits``); conv3x3(3 -> c, pad 1) BN; QuantIdentity(int4)
    ``nn.Hardswish()`` (``act="silu"``: ``nn.SiLU()``) QuantIdentity(int ``out_bits``, default
    ``bit_width``); conv3x3(c -> 2c, pad 1) BN QuantReLU(4); MaxPool2d(2); Flatten;
    QuantLinear(2c * (size/2)^2 -> 10, bias). Weights ``bit_width`` per-tensor.

    Both quantizers around the activation are calibrated; at equal bit widths they usually get the
    *same* scale (hardswish(x) = x above 3, and the positive side sets the abs-max statistic): pass
    ``out_bits`` (e.g. 5) for unequal input and output scales."""
    return _built("hardswish_net", (3, size, size), seed, lambda: _nn()["HardswishNet"](
        frame=(3, size, size), channels=channels, act=act, bit_width=bit_width, input_bits=input_bits,
        out_bits=out_bits))


def hardswish_net(path, dynamo: bool = False, seed: int = 0, size: int = 16, channels: int = 8,
                  act: str = "hardswish", bit_width: int = 4, input_bits: int = 4,
                  out_bits: int | None = None) -> Path:
    model = build_hardswish_net(seed, size, channels, act, bit_width, input_bits, out_bits)
    return _export("hardswish_net", model, (3, size, size), path, dynamo, seed)


# ----------------------------------------------------------------------------- by name
#: name -> (export function, build function, default frame shape)
OPS_MODELS = {
    "mobilenet_v1": (mobilenet_v1, build_mobilenet_v1, MOBILENET_V1_FRAME),
    "mobilenet_v1_vww": (mobilenet_v1_vww, build_mobilenet_v1_vww, MOBILENET_V1_VWW_FRAME),
    "ds_cnn": (ds_cnn, build_ds_cnn, DS_CNN_FRAME),
    "espcn": (espcn, build_espcn, ESPCN_FRAME),
    "conv1d_net": (conv1d_net, build_conv1d_net, CONV1D_FRAME),
    "hardswish_net": (hardswish_net, build_hardswish_net, HARDSWISH_FRAME),
}

#: name -> (low, high) of the input values each model was calibrated on.
INPUT_RANGE = {name: (0.0, 1.0) for name in OPS_MODELS}
INPUT_RANGE["conv1d_net"] = (-1.0, 1.0)


def export_ops_model(name: str, path, dynamo: bool = False, seed: int = 0, **kw) -> Path:
    """Export the model ``name`` of :data:`OPS_MODELS` (keyword options go to its function)."""
    return OPS_MODELS[name][0](path, dynamo=dynamo, seed=seed, **kw)


def build_ops_model(name: str, seed: int = 0, **kw):
    return OPS_MODELS[name][1](seed=seed, **kw)


def ops_frames(name: str, n: int, seed: int = 0, shape=None) -> np.ndarray:
    """``n`` frames for the model ``name`` (its default shape unless ``shape``), in its input range."""
    return _frames_for(name, shape or OPS_MODELS[name][2], n, seed)

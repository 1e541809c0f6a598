"""Hand-built branching test networks (residual Add, Concat): Brevitas, seeded random weights,
calibrated batch-norm, exported to QONNX.

Every Add / Concat that the compiler should accept has inputs quantized by one *shared* Brevitas
quantizer instance, so the exported Quant nodes in front of it carry identical scales:

* :func:`resnet8` -- the MLPerf Tiny image-classification ResNet-8 (CIFAR-10, 3x32x32) at W4A4 with
  an 8-bit unsigned input quantizer; a signed 4-bit ``QuantIdentity`` shared by both inputs of each
  Add, a 4-bit ``QuantReLU`` after it. ``size`` and ``filters`` shrink it for simulation.
* :func:`quant_resnet` -- Brevitas' own ``brevitas_examples.bnn_pynq.models.resnet.QuantResNet``
  (one block per stage: one identity skip, three downsampling skips), optionally narrower and on
  a smaller input, behind an 8-bit input quantizer; always exported by the legacy exporter.
* :func:`mobilenet_v2_block` -- a MobileNet-v2 inverted-residual block (expand 1x1, depthwise 3x3,
  linear 1x1 projection) whose skip and projection share one signed 4-bit quantizer.
* :func:`inception_block` -- three branches joined by a channel ``torch.cat``, all ending in one
  shared 4-bit ``QuantReLU``.

Negative models (for error tests), with constant (not calibrated) scales:

* :func:`add_unequal_scales` -- an Add of two signed 4-bit quantizers with scales 0.2 and 0.274
  (ratio 1.37);
* :func:`concat_unequal_scales` -- a Concat of two unsigned 4-bit quantizers with scales 0.1 and
  0.137.

Each ``<name>(path, dynamo=False, seed=0, ...)`` builds, checks the activation levels and exports,
returning ``path``; ``build_<name>(seed=0, ...)`` gives the torch model (eval mode, calibrated);
``GRAPH_MODELS`` / :func:`export_graph_model` reach them by name; ``<NAME>_FRAME`` are the default
input shapes (values in [0, 1], e.g. ``models_conv.random_frames``).
"""
from __future__ import annotations

import contextlib
import functools
from pathlib import Path

import numpy as np

from models import _calibrate_norms, _check_levels, _one_thread, export, quant_levels

RESNET8_FRAME = (3, 32, 32)
RESNET8_FILTERS = (16, 32, 64)
QUANT_RESNET_FRAME = (3, 16, 16)
MOBILENET_V2_FRAME = (3, 16, 16)
INCEPTION_FRAME = (3, 16, 16)
UNEQUAL_FRAME = (3, 8, 8)
ADD_UNEQUAL_SCALES = (0.2, 0.274)
CONCAT_UNEQUAL_SCALES = (0.1, 0.137)


def frame(size: int) -> tuple[int, int, int]:
    """A 3-channel square frame shape (for the ``size`` parameters)."""
    return (3, int(size), int(size))


# ----------------------------------------------------------------------------- quantizer helpers
def _w4(bits: int = 4):
    from brevitas.quant import Int8WeightPerTensorFloat

    return dict(weight_quant=Int8WeightPerTensorFloat, weight_bit_width=bits, bias=False)


def _relu(bits: int = 4):
    from brevitas.nn import QuantReLU

    return QuantReLU(bit_width=bits, return_quant_tensor=False)


def _signed(bits: int = 4, scale: float | None = None):
    """A signed per-tensor activation quantizer: calibrated, or with the constant ``scale``."""
    from brevitas.nn import QuantIdentity
    from brevitas.quant import Int8ActPerTensorFloat

    const = {} if scale is None else dict(scaling_impl_type="const", scaling_init=scale * 2 ** (bits - 1))
    return QuantIdentity(act_quant=Int8ActPerTensorFloat, bit_width=bits, return_quant_tensor=False, **const)


def _unsigned_relu(bits: int = 4, scale: float | None = None):
    from brevitas.nn import QuantReLU
    from brevitas.quant import Uint8ActPerTensorFloat

    const = {} if scale is None else dict(scaling_impl_type="const", scaling_init=scale * (2**bits - 1))
    return QuantReLU(act_quant=Uint8ActPerTensorFloat, bit_width=bits, return_quant_tensor=False, **const)


def _input_quant(bits: int):
    from brevitas.nn import QuantIdentity
    from brevitas.quant import Uint8ActPerTensorFloat

    return QuantIdentity(act_quant=Uint8ActPerTensorFloat, bit_width=bits, return_quant_tensor=False)


def _conv(cin, cout, k, stride=1, padding=0, groups=1, bits=4):
    from brevitas.nn import QuantConv2d

    return QuantConv2d(cin, cout, k, stride=stride, padding=padding, groups=groups, **_w4(bits))


def _dense(cin, cout, bits=4):
    from brevitas.nn import QuantLinear
    from brevitas.quant import Int8WeightPerTensorFloat

    return QuantLinear(cin, cout, weight_quant=Int8WeightPerTensorFloat, weight_bit_width=bits, bias=True)


def _head(cin, classes=10):
    """Global average pool, flatten, dense ``cin -> classes`` (float output)."""
    import torch

    return torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), _dense(cin, classes))


# ----------------------------------------------------------------------------- module classes
@functools.cache
def _nn():
    """The nn.Module classes, defined on first use (torch is imported lazily, as in models_conv)."""
    import torch
    from torch import nn

    class ResidualStack(nn.Module):
        """conv3x3(stride) BN QuantReLU conv3x3 BN -> q ; skip (identity or conv1x1(stride) BN) -> q ;
        Add ; QuantReLU. ``q`` is one signed quantizer applied to both Add inputs."""

        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = _conv(cin, cout, 3, stride=stride, padding=1)
            self.bn1 = nn.BatchNorm2d(cout)
            self.relu1 = _relu()
            self.conv2 = _conv(cout, cout, 3, padding=1)
            self.bn2 = nn.BatchNorm2d(cout)
            if stride != 1 or cin != cout:
                self.skip = nn.Sequential(_conv(cin, cout, 1, stride=stride), nn.BatchNorm2d(cout))
            else:
                self.skip = nn.Identity()
            self.add_quant = _signed()  # shared by both Add inputs
            self.relu_out = _relu()

        def forward(self, x):
            y = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
            return self.relu_out(self.add_quant(y) + self.add_quant(self.skip(x)))

    class ResNet8(nn.Module):
        def __init__(self, filters=RESNET8_FILTERS, input_bits=8, classes=10):
            super().__init__()
            f1, f2, f3 = filters
            self.quant_in = _input_quant(input_bits)
            self.stem = nn.Sequential(_conv(3, f1, 3, padding=1), nn.BatchNorm2d(f1), _relu())
            self.stack1 = ResidualStack(f1, f1, 1)
            self.stack2 = ResidualStack(f1, f2, 2)
            self.stack3 = ResidualStack(f2, f3, 2)
            self.head = _head(f3, classes)

        def forward(self, x):
            x = self.stem(self.quant_in(x))
            return self.head(self.stack3(self.stack2(self.stack1(x))))

    class MobileNetV2Block(nn.Module):
        def __init__(self, channels=8, expand=4, classes=10):
            super().__init__()
            c, e = channels, channels * expand
            self.quant_in = _input_quant(4)
            self.stem_conv = _conv(3, c, 3, padding=1)
            self.stem_bn = nn.BatchNorm2d(c)
            self.block_quant = _signed()  # block input and projection output: one quantizer
            self.expand = nn.Sequential(_conv(c, e, 1), nn.BatchNorm2d(e), _relu())
            self.depthwise = nn.Sequential(_conv(e, e, 3, padding=1, groups=e), nn.BatchNorm2d(e), _relu())
            self.project_conv = _conv(e, c, 1)
            self.project_bn = nn.BatchNorm2d(c)
            self.out_quant = _signed()
            self.head = _head(c, classes)

        def forward(self, x):
            x = self.block_quant(self.stem_bn(self.stem_conv(self.quant_in(x))))
            y = self.block_quant(self.project_bn(self.project_conv(self.depthwise(self.expand(x)))))
            return self.head(self.out_quant(x + y))

    class InceptionBlock(nn.Module):
        def __init__(self, stem=8, widths=(4, 6, 4), mid=4, out=16, pool_branch=False, classes=10):
            super().__init__()
            w1, w2, w3 = widths
            self.quant_in = _input_quant(4)
            self.stem = nn.Sequential(_conv(3, stem, 3, padding=1), nn.BatchNorm2d(stem), _relu())
            self.cat_act = _relu()  # ends every branch
            self.b1 = nn.Sequential(_conv(stem, w1, 1), nn.BatchNorm2d(w1))
            self.b2 = nn.Sequential(_conv(stem, mid, 1), nn.BatchNorm2d(mid), _relu(),
                                    _conv(mid, w2, 3, padding=1), nn.BatchNorm2d(w2))
            if pool_branch:  # a padded max-pool (the compiler takes unpadded ones only)
                self.b3 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), _conv(stem, w3, 1), nn.BatchNorm2d(w3))
            else:
                self.b3 = nn.Sequential(_conv(stem, w3, 3, padding=1), nn.BatchNorm2d(w3))
            cat = w1 + w2 + w3
            self.post = nn.Sequential(_conv(cat, out, 1), nn.BatchNorm2d(out), _relu())
            self.head = _head(out, classes)

        def forward(self, x):
            x = self.stem(self.quant_in(x))
            y = torch.cat([self.cat_act(self.b1(x)), self.cat_act(self.b2(x)), self.cat_act(self.b3(x))], dim=1)
            return self.head(self.post(y))

    class AddUnequal(nn.Module):
        def __init__(self, scales=ADD_UNEQUAL_SCALES, channels=8, classes=10):
            super().__init__()
            c = channels
            self.quant_in = _input_quant(4)
            self.stem = nn.Sequential(_conv(3, c, 3, padding=1), nn.BatchNorm2d(c), _relu())
            self.a = nn.Sequential(_conv(c, c, 1), nn.BatchNorm2d(c), _signed(scale=scales[0]))
            self.b = nn.Sequential(_conv(c, c, 3, padding=1), nn.BatchNorm2d(c), _signed(scale=scales[1]))
            self.relu_out = _relu()
            self.head = _head(c, classes)

        def forward(self, x):
            x = self.stem(self.quant_in(x))
            return self.head(self.relu_out(self.a(x) + self.b(x)))

    class ConcatUnequal(nn.Module):
        def __init__(self, scales=CONCAT_UNEQUAL_SCALES, channels=8, classes=10):
            super().__init__()
            c = channels
            self.quant_in = _input_quant(4)
            self.stem = nn.Sequential(_conv(3, c, 3, padding=1), nn.BatchNorm2d(c), _relu())
            self.a = nn.Sequential(_conv(c, 4, 1), nn.BatchNorm2d(4), _unsigned_relu(scale=scales[0]))
            self.b = nn.Sequential(_conv(c, 4, 3, padding=1), nn.BatchNorm2d(4), _unsigned_relu(scale=scales[1]))
            self.post = nn.Sequential(_conv(8, c, 1), nn.BatchNorm2d(c), _relu())
            self.head = _head(c, classes)

        def forward(self, x):
            x = self.stem(self.quant_in(x))
            return self.head(self.post(torch.cat([self.a(x), self.b(x)], dim=1)))

    return dict(ResNet8=ResNet8, MobileNetV2Block=MobileNetV2Block, InceptionBlock=InceptionBlock,
                AddUnequal=AddUnequal, ConcatUnequal=ConcatUnequal)


# ----------------------------------------------------------------------------- calibration
def _calib_inputs(shape, seed, n=64):
    import torch

    rng = np.random.default_rng(seed + 1)
    return torch.from_numpy((rng.integers(0, 256, size=(n, *shape)) / 255).astype(np.float32))


def _calibrate(model, shape, seed, float_flow=contextlib.nullcontext):
    """Batch-norm statistics on the float flow (quantization off), then the activation scales
    (brevitas ``calibration_mode``, which calibrates once) with those statistics in place, as
    ``models.build_mlp_4bit`` does. A shared quantizer sees both of its inputs while calibrating.
    ``float_flow()`` is entered around both (QuantResNet's QuantTensor asserts go off in it)."""
    import torch
    from brevitas.graph.calibrate import calibration_mode, quantization_status_manager

    x = _calib_inputs(shape, seed)
    model.eval()
    gen = torch.Generator().manual_seed(seed + 7)
    with float_flow(), quantization_status_manager(model, disable_act_quant=True, disable_weight_quant=True,
                                     disable_bias_quant=True, is_training=False):
        _calibrate_norms(model, x, gen)
    with float_flow(), torch.no_grad(), calibration_mode(model):
        model(x)
    model.eval()
    return model


def _built(cls_name, shape, seed, name, **kw):
    import torch

    with _one_thread(), torch.random.fork_rng():
        torch.manual_seed(seed)
        model = _nn()[cls_name](**kw)
        _calibrate(model, shape, seed)
        _check_levels(quant_levels(model, _calib_inputs(shape, seed + 2, 32)), name)
    return model


def _export(model, shape, path, dynamo, seed):
    x = _calib_inputs(shape, seed + 3, 1).numpy()
    with _one_thread():
        export(model, x, Path(path), dynamo)
    return Path(path)


# ----------------------------------------------------------------------------- ResNet-8
def build_resnet8(seed: int = 0, size: int = 32, filters=RESNET8_FILTERS, input_bits: int = 8):
    """MLPerf Tiny ResNet-8 at W4A4 (input ``3 x size x size``, stacks of ``filters``):

    QuantIdentity(uint ``input_bits``); conv3x3(3->f1, pad 1) BN QuantReLU(4);
    3 stacks (f1 stride 1 identity skip; f2, f3 stride 2 with a conv1x1 stride-2 + BN skip), each
    conv3x3(stride, pad 1) BN QuantReLU(4) conv3x3(pad 1) BN -> q, skip -> q, Add, QuantReLU(4)
    with ``q`` one signed 4-bit QuantIdentity per stack; AdaptiveAvgPool2d(1) Flatten
    QuantLinear(f3 -> 10, bias). Weights 4-bit per-tensor, no conv biases.
    """
    return _built("ResNet8", frame(size), seed, "resnet8", filters=tuple(filters), input_bits=input_bits)


def resnet8(path, dynamo: bool = False, seed: int = 0, size: int = 32, filters=RESNET8_FILTERS,
            input_bits: int = 8) -> Path:
    return _export(build_resnet8(seed, size, filters, input_bits), frame(size), path, dynamo, seed)


# ----------------------------------------------------------------------------- Brevitas QuantResNet
def build_quant_resnet(seed: int = 0, size: int = 16, width: int = 16, num_blocks=(1, 1, 1, 1),
                       bit_width: int = 4, input_bits: int = 8):
    """``QuantResNet(QuantBasicBlock, num_blocks, act_bit_width=weight_bit_width=bit_width)``
    behind a ``QuantIdentity`` (uint ``input_bits``; QuantResNet itself has no input quantizer).

    Stage widths are ``width * (1, 2, 4, 8)``. Brevitas hard-codes ``width`` = 64: ``width=64``
    builds its class untouched; any other width uses a subclass that scales the planes its
    ``_make_layer`` receives and rebuilds the stem conv/BN and the classifier with Brevitas' own
    constructors. Likewise the final ``TruncAvgPool2d`` is rebuilt with ``kernel_size = size // 8``
    unless ``size`` is 32 (Brevitas: kernel 4, for CIFAR's 32x32). ``width=64, size=32`` is thus
    Brevitas' QuantResNet exactly (4.9M weights at num_blocks (1, 1, 1, 1)).
    The stem and the classifier keep 8-bit weights (as in Brevitas). Layer 1 has the identity skip
    (its Add shares the stem's QuantReLU), layers 2-4 downsampling skips (conv1x1 stride 2, BN,
    QuantReLU shared with the main branch's last activation). Export with ``dynamo=False``.
    """
    from unittest import mock

    import torch
    from brevitas.nn import TruncAvgPool2d
    from brevitas_examples.bnn_pynq.models import resnet as R

    if size % 8 or size < 8:
        raise ValueError("quant_resnet: size must be a multiple of 8")

    class NarrowQuantResNet(R.QuantResNet):
        def _make_layer(self, block_impl, planes, *args):
            if planes == 64:  # first stage: the stem's width is ours too
                self.in_planes = width
            return super()._make_layer(block_impl, planes * width // 64, *args)

    shape = frame(size)
    with _one_thread(), torch.random.fork_rng():
        torch.manual_seed(seed)
        cls = R.QuantResNet if width == 64 else NarrowQuantResNet
        net = cls(R.QuantBasicBlock, list(num_blocks), act_bit_width=bit_width, weight_bit_width=bit_width)
        if width != 64:
            net.conv1 = R.make_quant_conv2d(3, width, kernel_size=3, stride=1, padding=1, weight_bit_width=8,
                                            weight_quant=R.Int8WeightPerChannelFloat)
            net.bn1 = torch.nn.BatchNorm2d(width)
            net.linear = net.linear.__class__(8 * width, net.linear.out_features, weight_bit_width=8, bias=True,
                                              bias_quant=R.Int32Bias, weight_quant=R.Int8WeightPerTensorFloat)
            torch.nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
        if size != 32:
            net.final_pool = TruncAvgPool2d(kernel_size=size // 8, trunc_quant=R.TruncTo8bit,
                                            float_to_int_impl_type="FLOOR")
        model = torch.nn.Sequential(_input_quant_tensor(input_bits), net)
        # Calibration runs the float flow (plain tensors), where QuantBasicBlock's
        # ``assert isinstance(out, QuantTensor)`` would fail: those asserts are off meanwhile.
        _calibrate(model, shape, seed, float_flow=lambda: mock.patch.object(R, "QuantTensor", object))
        _check_levels(quant_levels(model, _calib_inputs(shape, seed + 2, 32)), "quant_resnet")
    return model


def _input_quant_tensor(bits):
    from brevitas.nn import QuantIdentity
    from brevitas.quant import Uint8ActPerTensorFloat

    return QuantIdentity(act_quant=Uint8ActPerTensorFloat, bit_width=bits, return_quant_tensor=True)


def quant_resnet(path, dynamo: bool = False, seed: int = 0, size: int = 16, width: int = 16,
                 num_blocks=(1, 1, 1, 1), bit_width: int = 4, input_bits: int = 8) -> Path:
    """``dynamo`` is accepted for a uniform signature but ignored: torch's dynamo exporter fails on
    QuantResNet's QuantTensor asserts, the legacy exporter is always used."""
    model = build_quant_resnet(seed, size, width, num_blocks, bit_width, input_bits)
    return _export(model, frame(size), path, False, seed)


# ----------------------------------------------------------------------------- MobileNet-v2 block
def build_mobilenet_v2_block(seed: int = 0, size: int = 16, channels: int = 8, expand: int = 4):
    """QuantIdentity(uint4); conv3x3(3->c, pad 1) BN -> q (signed 4-bit QuantIdentity) = x;
    conv1x1(c->c*expand) BN QuantReLU(4); depthwise conv3x3(pad 1) BN QuantReLU(4);
    conv1x1(c*expand->c) BN -> q (the same instance); Add(x, .); QuantIdentity(int4);
    AdaptiveAvgPool2d(1) Flatten QuantLinear(c -> 10, bias)."""
    return _built("MobileNetV2Block", frame(size), seed, "mobilenet_v2_block", channels=channels, expand=expand)


def mobilenet_v2_block(path, dynamo: bool = False, seed: int = 0, size: int = 16, channels: int = 8,
                       expand: int = 4) -> Path:
    return _export(build_mobilenet_v2_block(seed, size, channels, expand), frame(size), path, dynamo, seed)


# ----------------------------------------------------------------------------- Inception block
def build_inception_block(seed: int = 0, size: int = 16, pool_branch: bool = False):
    """QuantIdentity(uint4); conv3x3(3->8, pad 1) BN QuantReLU(4) = x; branches
    b1 conv1x1(8->4) BN; b2 conv1x1(8->4) BN QuantReLU(4) conv3x3(4->6, pad 1) BN;
    b3 conv3x3(8->4, pad 1) BN (``pool_branch``: MaxPool(3, stride 1, pad 1) conv1x1(8->4) BN);
    each branch -> r (one shared QuantReLU(4) instance); Concat(channels, 14);
    conv1x1(14->16) BN QuantReLU(4); AdaptiveAvgPool2d(1) Flatten QuantLinear(16 -> 10, bias)."""
    return _built("InceptionBlock", frame(size), seed, "inception_block", pool_branch=pool_branch)


def inception_block(path, dynamo: bool = False, seed: int = 0, size: int = 16, pool_branch: bool = False) -> Path:
    return _export(build_inception_block(seed, size, pool_branch), frame(size), path, dynamo, seed)


# ----------------------------------------------------------------------------- negative models
def build_add_unequal_scales(seed: int = 0, size: int = 8, scales=ADD_UNEQUAL_SCALES):
    """QuantIdentity(uint4); conv3x3(3->8, pad 1) BN QuantReLU(4) = x;
    a = conv1x1(8->8) BN QuantIdentity(int4, const scale scales[0]);
    b = conv3x3(8->8, pad 1) BN QuantIdentity(int4, const scale scales[1]);
    Add(a, b) QuantReLU(4); AdaptiveAvgPool2d(1) Flatten QuantLinear(8 -> 10, bias)."""
    return _built("AddUnequal", frame(size), seed, "add_unequal_scales", scales=tuple(scales))


def add_unequal_scales(path, dynamo: bool = False, seed: int = 0, size: int = 8, scales=ADD_UNEQUAL_SCALES) -> Path:
    return _export(build_add_unequal_scales(seed, size, scales), frame(size), path, dynamo, seed)


def build_concat_unequal_scales(seed: int = 0, size: int = 8, scales=CONCAT_UNEQUAL_SCALES):
    """QuantIdentity(uint4); conv3x3(3->8, pad 1) BN QuantReLU(4) = x;
    a = conv1x1(8->4) BN QuantReLU(4, const scale scales[0]);
    b = conv3x3(8->4, pad 1) BN QuantReLU(4, const scale scales[1]);
    Concat(a, b) conv1x1(8->8) BN QuantReLU(4); AdaptiveAvgPool2d(1) Flatten QuantLinear(8 -> 10, bias)."""
    return _built("ConcatUnequal", frame(size), seed, "concat_unequal_scales", scales=tuple(scales))


def concat_unequal_scales(path, dynamo: bool = False, seed: int = 0, size: int = 8,
                          scales=CONCAT_UNEQUAL_SCALES) -> Path:
    return _export(build_concat_unequal_scales(seed, size, scales), frame(size), path, dynamo, seed)


# ----------------------------------------------------------------------------- by name
#: name -> (export function, build function, default frame shape)
GRAPH_MODELS = {
    "resnet8": (resnet8, build_resnet8, RESNET8_FRAME),
    "quant_resnet": (quant_resnet, build_quant_resnet, QUANT_RESNET_FRAME),
    "mobilenet_v2_block": (mobilenet_v2_block, build_mobilenet_v2_block, MOBILENET_V2_FRAME),
    "inception_block": (inception_block, build_inception_block, INCEPTION_FRAME),
    "add_unequal_scales": (add_unequal_scales, build_add_unequal_scales, UNEQUAL_FRAME),
    "concat_unequal_scales": (concat_unequal_scales, build_concat_unequal_scales, UNEQUAL_FRAME),
}


def export_graph_model(name: str, path, dynamo: bool = False, seed: int = 0, **kw) -> Path:
    """Export the model ``name`` of :data:`GRAPH_MODELS` (keyword options go to its function)."""
    return GRAPH_MODELS[name][0](path, dynamo=dynamo, seed=seed, **kw)


def build_graph_model(name: str, seed: int = 0, **kw):
    return GRAPH_MODELS[name][1](seed=seed, **kw)


def random_frames(shape, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, size=(n, *shape)) / 255).astype(np.float32)

"""Hand-built convolutional test networks (Brevitas, random weights, calibrated batch-norm).

* :func:`mobilenet_block` -- a MobileNet-v1 style depthwise-separable block at W4A4: 4-bit input
  quantizer, a regular 3x3 stem, a depthwise 3x3 convolution with stride 2 and padding 1, a
  pointwise 1x1, global average pooling and a dense classifier.
* :func:`odd_net` -- a network on a non-square (11 x 17) input with odd channel counts (3, 5, 7, 9),
  asymmetric stride, a max-pool and a dense layer after an NCHW flatten.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from models import _calibrate_norms, _check_levels, _one_thread, export, quant_levels

MOBILENET_FRAME = (3, 16, 16)
ODD_FRAME = (3, 11, 17)
WIDE_FRAME = (3, 8, 70)


def _build_mobilenet(seed: int):
    import torch
    from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear, QuantReLU
    from brevitas.quant import Int8WeightPerTensorFloat, Uint8ActPerTensorFloat

    w4 = dict(weight_quant=Int8WeightPerTensorFloat, weight_bit_width=4, bias=False)
    a4 = dict(bit_width=4, return_quant_tensor=False)
    torch.manual_seed(seed)
    m = torch.nn.Sequential(
        QuantIdentity(act_quant=Uint8ActPerTensorFloat, bit_width=4),
        QuantConv2d(3, 8, 3, padding=1, **w4), torch.nn.BatchNorm2d(8), QuantReLU(**a4),
        QuantConv2d(8, 8, 3, stride=2, padding=1, groups=8, **w4), torch.nn.BatchNorm2d(8), QuantReLU(**a4),
        QuantConv2d(8, 16, 1, **w4), torch.nn.BatchNorm2d(16), QuantReLU(**a4),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
        QuantLinear(16, 10, weight_quant=Int8WeightPerTensorFloat, weight_bit_width=4, bias=True),
    )
    return m


def _build_odd(seed: int):
    import torch
    from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear, QuantReLU
    from brevitas.quant import Int8WeightPerChannelFloat, Uint8ActPerTensorFloat

    w = dict(weight_quant=Int8WeightPerChannelFloat, weight_bit_width=3, bias=False)
    a = dict(bit_width=3, return_quant_tensor=False)
    torch.manual_seed(seed)
    m = torch.nn.Sequential(
        QuantIdentity(act_quant=Uint8ActPerTensorFloat, bit_width=5),
        QuantConv2d(3, 5, 3, padding=(1, 0), **w), torch.nn.BatchNorm2d(5), QuantReLU(**a),
        QuantConv2d(5, 7, (3, 5), stride=(1, 2), **w), torch.nn.BatchNorm2d(7), QuantReLU(**a),
        torch.nn.MaxPool2d(2),
        QuantConv2d(7, 9, 1, **w), torch.nn.BatchNorm2d(9), QuantReLU(**a),
        torch.nn.Flatten(),
        QuantLinear(9 * 4 * 3, 5, weight_quant=Int8WeightPerChannelFloat, weight_bit_width=3, bias=True),
    )
    return m


def _build_wide(seed: int):
    """A fully convolutional net on a wide input (for tiling): conv, stride-2 depthwise conv,
    pointwise conv, max-pool, and a conv with asymmetric (height-only) padding; its output is a
    quantized feature map."""
    import torch
    from brevitas.nn import QuantConv2d, QuantIdentity, QuantReLU
    from brevitas.quant import Int8WeightPerChannelFloat, Uint8ActPerTensorFloat

    w4 = dict(weight_quant=Int8WeightPerChannelFloat, weight_bit_width=4, bias=False)
    a4 = dict(bit_width=4, return_quant_tensor=False)
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        QuantIdentity(act_quant=Uint8ActPerTensorFloat, bit_width=4),
        QuantConv2d(3, 8, 3, padding=1, **w4), torch.nn.BatchNorm2d(8), QuantReLU(**a4),
        QuantConv2d(8, 8, 3, stride=2, padding=1, groups=8, **w4), torch.nn.BatchNorm2d(8), QuantReLU(**a4),
        QuantConv2d(8, 8, 1, **w4), torch.nn.BatchNorm2d(8), QuantReLU(**a4),
        torch.nn.MaxPool2d(2),
        QuantConv2d(8, 6, 3, padding=(1, 0), **w4), torch.nn.BatchNorm2d(6), QuantReLU(**a4),
    )


def _finish(model, frame, path, dynamo, seed, name):
    import torch
    from brevitas.graph.calibrate import calibration_mode

    rng = np.random.default_rng(seed + 1)
    x = torch.from_numpy((rng.integers(0, 256, size=(64, *frame)) / 255).astype(np.float32))
    model.eval()
    gen = torch.Generator().manual_seed(seed + 7)
    _calibrate_norms(model, x, gen)
    with torch.no_grad(), calibration_mode(model):
        model(x)
    model.eval()
    _check_levels(quant_levels(model, x[:32]), name)
    export(model, x[:1].numpy(), Path(path), dynamo)
    return Path(path)


def mobilenet_block(path, dynamo: bool = False, seed: int = 0) -> Path:
    with _one_thread():
        return _finish(_build_mobilenet(seed), MOBILENET_FRAME, path, dynamo, seed, "mobilenet_block")


def odd_net(path, dynamo: bool = False, seed: int = 0) -> Path:
    with _one_thread():
        return _finish(_build_odd(seed), ODD_FRAME, path, dynamo, seed, "odd_net")


def wide_net(path, dynamo: bool = False, seed: int = 0) -> Path:
    with _one_thread():
        return _finish(_build_wide(seed), WIDE_FRAME, path, dynamo, seed, "wide_net")


def random_frames(frame, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, size=(n, *frame)) / 255).astype(np.float32)

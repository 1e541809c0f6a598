"""Real model definitions with the operators beyond dense/conv/max-pool, end to end: each built
from its Brevitas definition (seeded random weights, calibrated batch-norm), compiled under two
foldings, simulated in Verilator with random input gaps and output back-pressure: every integer
equal to the reference, outputs equal to qonnx's executor, cycles per frame within 5%.

* Brevitas's own MobileNet-v1 (width 0.25, 64x64, 4-bit): per-channel activation scales on its
  pointwise layers, TruncAvgPool2d;
* a DS-CNN of the MLPerf Tiny keyword-spotting shape (49x10 input, 10x4 stride-2 first conv with
  padding (5, 1), four depthwise-separable blocks, average pool, 12 classes);
* Brevitas's own ESPCN (4-bit, 64 columns wide) ending in PixelShuffle, untiled and tiled;
* a 1-D convolutional network on a 2x1024 signal;
* a network with a HardSwish between two quantizers (a lookup table).
"""
from __future__ import annotations

import numpy as np
import pytest

from streamfold.compiler.folding import default_fold, fold_to_json
from streamfold.compiler.load import load_model
from streamfold.compiler.lower import lower

from flow import check_model
from models_ops import OPS_MODELS, export_ops_model, ops_frames


def _fold(path, lanes: int) -> dict:
    cm = lower(load_model(path), str(path))
    return fold_to_json(default_fold(cm.pipeline, lanes=lanes))


def _run(name, tmp_path, lanes, frames=3, shape=None, strip_width=None, **kw):
    path = export_ops_model(name, tmp_path / f"{name}.onnx", **kw)
    x = ops_frames(name, frames, seed=lanes, shape=shape)
    build = tmp_path / ("build" if strip_width is None else f"build_w{strip_width}")
    return check_model(path, build, fold=_fold(path, lanes), frames=frames, x=x, strip_width=strip_width)


def _kinds(out) -> set:
    return {u.kind for u in out["model"].pipeline.units}


@pytest.mark.slow
@pytest.mark.parametrize("lanes", [32, 128])
def test_mobilenet_v1(lanes, tmp_path):
    out = _run("mobilenet_v1", tmp_path, lanes, frames=2)
    assert {"vvau", "thresholds"} <= _kinds(out)


@pytest.mark.slow
@pytest.mark.parametrize("lanes", [16, 64])
def test_ds_cnn(lanes, tmp_path):
    """At width 16 in the fast profile (64, the MLPerf shape, in the slow one)."""
    out = _run("ds_cnn", tmp_path, lanes, width=16 if lanes == 16 else 64)
    first = out["model"].pipeline.units[0]
    assert first.kernel == (10, 4) and first.stride == (2, 2) and first.pads == (5, 1, 5, 1)


@pytest.mark.slow
@pytest.mark.parametrize("lanes", [16, 64])
def test_conv1d_net(lanes, tmp_path):
    out = _run("conv1d_net", tmp_path, lanes, frames=2)
    assert out["model"].pipeline.units[0].in_shape == (1, 1024, 2)


@pytest.mark.parametrize("lanes", [8, pytest.param(32, marks=pytest.mark.slow)])
def test_hardswish_net(lanes, tmp_path):
    out = _run("hardswish_net", tmp_path, lanes, out_bits=5)
    assert "lookup" in _kinds(out)


@pytest.mark.slow
@pytest.mark.parametrize("lanes", [16, 64])
def test_espcn(lanes, tmp_path):
    """ESPCN (widths 16/16/8, 64 columns) ends in DepthToSpace, done on the host after the stream;
    compiled untiled and in strips of 24 columns (4 strips, receptive field 11): the same
    integers, both equal to qonnx."""
    out = _run("espcn", tmp_path, lanes, frames=2, channels=(16, 16, 8))
    assert out["model"].host_out.ops[0].op_type == "DepthToSpace"
    tiled = _run("espcn", tmp_path, lanes, frames=2, channels=(16, 16, 8), strip_width=24)
    assert tiled["model"].tiling.strips == 4 and tiled["model"].tiling.width == 64
    np.testing.assert_array_equal(tiled["integers"], out["integers"])
    np.testing.assert_array_equal(tiled["outputs"], out["outputs"])

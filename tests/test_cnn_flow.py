"""Convolutional networks end to end: sliding windows, pooling, depthwise layers, bit-exact in
Verilator against the NumPy reference, and outputs equal to qonnx's executor of the model."""
from __future__ import annotations

import pytest

from streamfold.compiler.build import lower_file

from flow import check_model
from models_conv import MOBILENET_FRAME, ODD_FRAME, mobilenet_block, odd_net, random_frames


@pytest.mark.parametrize("name", ["cnv_1w1a", pytest.param("cnv_1w2a", marks=pytest.mark.slow), "cnv_2w2a"])
def test_cnv_bit_exact(name, qonnx_model, tmp_path):
    path = qonnx_model(name)
    out = check_model(path, tmp_path / "build", frames=4, name=name)
    kinds = [u.kind for u in out["model"].pipeline.units]
    assert kinds.count("swg") + kinds.count("swg_whole") == 6 and kinds.count("maxpool") == 2 and kinds.count("mvau") == 9


@pytest.mark.slow
@pytest.mark.parametrize("lanes", [8, 32])
def test_cnv_w1a1_more_folds(lanes, qonnx_model, tmp_path):
    """CNV-W1A1 at two more foldings (the default is the third): cycles within 5% of expected."""
    from streamfold.compiler.folding import default_fold

    path = qonnx_model("cnv_1w1a")
    cm = lower_file(path)
    fold = {u.name: u.folding() for u in default_fold(cm.pipeline, lanes=lanes).units if u.folding()}
    check_model(path, tmp_path / "build", fold=fold, frames=3, name="cnv_1w1a")


def test_mobilenet_block(tmp_path):
    """Depthwise-separable block at W4A4: depthwise 3x3 stride 2 with padding, pointwise 1x1, GAP."""
    path = mobilenet_block(tmp_path / "mb.onnx")
    out = check_model(path, tmp_path / "build", frames=6, x=random_frames(MOBILENET_FRAME, 6, seed=3))
    units = out["model"].pipeline.units
    dw = next(u for u in units if u.kind == "vvau")
    win = units[units.index(dw) - 1]
    assert win.kind == "swg" and win.depthwise and win.stride == (2, 2) and win.pads == (1, 1, 1, 1)
    assert any(u.kind == "gsumpool" for u in units)


def test_non_square_odd_channels(tmp_path):
    """11x17 input, 3/5/7/9 channels, a 3x5 kernel with stride (1, 2), asymmetric padding, max-pool,
    and a dense layer after an NCHW flatten."""
    path = odd_net(tmp_path / "odd.onnx")
    out = check_model(path, tmp_path / "build", frames=6, x=random_frames(ODD_FRAME, 6, seed=4))
    units = out["model"].pipeline.units
    assert units[0].in_shape == (11, 17, 3)
    assert any(u.kind in ("swg", "swg_whole") and u.kernel == (3, 5) and u.stride == (1, 2) for u in units)

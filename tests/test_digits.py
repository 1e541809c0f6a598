"""The shipped digits models: accuracy on the whole held-out split, from the hardware.

Every test image streams through the Verilog (C++ Verilator harness, random gaps and back-pressure);
the hardware's prediction must equal PyTorch's (recorded at export) and qonnx's, image by image.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from streamfold.compiler.build import lower_file, write_build
from streamfold.compiler.demo import qonnx_predictions
from streamfold.sim.simulate import simulate_build

from flow import SIM_CACHE

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "examples/models/digits_test.npz"


@pytest.mark.parametrize("variant", ["w2a2", pytest.param("w1a1", marks=pytest.mark.slow)])
def test_digits_accuracy_matches_pytorch_and_qonnx(variant, tmp_path):
    model = ROOT / f"examples/models/digits_{variant}.onnx"
    d = np.load(DATA)
    x, labels, torch_logits = d["x"].astype(np.float32), d["y"], d[f"logits_{variant}"]
    cm = lower_file(model)
    write_build(cm, tmp_path / "b")
    res = simulate_build(tmp_path / "b", x, engine="verilator", p_gap=0.1, p_stall=0.1, seed=3,
                         cache_dir=SIM_CACHE)
    assert res["report"]["bit_exact"], res["report"]["runs"]
    hw = res["outputs"].reshape(len(x), -1).argmax(1)
    q = qonnx_predictions(model, x).reshape(len(x), -1).argmax(1)
    pt = torch_logits.reshape(len(x), -1).argmax(1)
    np.testing.assert_array_equal(hw, q)
    np.testing.assert_array_equal(hw, pt)
    acc = float((hw == labels).mean())
    assert acc > (0.9 if variant == "w2a2" else 0.85), acc

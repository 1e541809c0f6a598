"""Fully-connected networks end to end: QONNX in, Verilog out, bit-exact in Verilator.

Each model compiles under three foldings (fully serial, the balanced default, and one with a
fully parallel layer) and is simulated on 8 frames with random gaps and back-pressure.
"""
from __future__ import annotations

import pytest

from streamfold.compiler.build import lower_file
from streamfold.compiler.ir import MatrixVectorUnit

from flow import check_model, fold_all

MODELS = ["tfc_1w1a", "tfc_2w2a", "sfc_1w2a", "mlp_4bit"]


def _parallel_fold(cm) -> dict:
    """Balanced default, with the smallest matrix-vector unit made fully parallel (PE=MH, SIMD=MW)."""
    fold = {u.name: u.folding() for u in cm.pipeline.units}
    mvaus = [u for u in cm.pipeline.units if isinstance(u, MatrixVectorUnit)]
    small = min(mvaus, key=lambda u: u.mh * u.mw)
    fold[small.name] = {"pe": small.mh, "simd": small.mw}
    return fold


# SFC's fully parallel layer (256x256 lanes) takes minutes to compile for cocotb: slow profile only
CASES = [pytest.param(n, f, marks=pytest.mark.slow) if (n, f) == ("sfc_1w2a", "parallel") else (n, f)
         for f in ("serial", "balanced", "parallel") for n in MODELS]


@pytest.mark.parametrize("name, folding", CASES)
def test_mlp_bit_exact(name, folding, qonnx_model, tmp_path):
    path = qonnx_model(name)
    cm = lower_file(path)  # balanced default
    fold = {"serial": lambda: fold_all(cm, pe=1, simd=1), "balanced": lambda: None,
            "parallel": lambda: _parallel_fold(cm)}[folding]()
    # the Python testbench (cocotb) takes the quick folding; the C++ harness the long ones
    engine = "cocotb" if folding == "parallel" else "verilator"
    out = check_model(path, tmp_path / "build", fold=fold, frames=8, engine=engine, name=name)
    units = out["model"].pipeline.units
    if folding == "serial":
        assert all(u.pe == 1 and u.simd == 1 for u in units)
    if folding == "parallel":
        assert any(u.pe == u.mh and u.simd == u.mw for u in units)


def test_both_exporters_give_the_same_design(qonnx_model):
    """dynamo's Gemm graph and the legacy Transpose+MatMul graph lower to identical units."""
    from streamfold.hw import emit_verilog

    a = lower_file(qonnx_model("tfc_2w2a", dynamo=True))
    b = lower_file(qonnx_model("tfc_2w2a", dynamo=False))
    assert emit_verilog(a.pipeline) == emit_verilog(b.pipeline)

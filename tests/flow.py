"""Compile a model file, simulate it in Verilator, and check it against two independent references.

* every output integer of the hardware against the NumPy reference of the unit pipeline, under
  random input gaps and random output back-pressure, then again at full rate;
* the simulated outputs, in the model's float space, against qonnx's ``execute_onnx`` of the
  original model file: equal where the model ends in a quantizer, else equal to float32 rounding
  with the same argmax;
* measured cycles per frame within 5% of the cost model's bottleneck figure.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from streamfold.compiler.build import lower_file, write_build
from streamfold.sim.simulate import simulate_build

from models import qonnx_reference, random_inputs

SIM_CACHE = os.environ.get("STREAMFOLD_SIM_CACHE")


def fold_all(cm, **knobs) -> dict:
    """The same knobs for every unit that has them (e.g. pe=1, simd=1: fully serial)."""
    out = {}
    for u in cm.pipeline.units:
        choices = u.fold_choices()
        out[u.name] = {k: v for k, v in knobs.items() if k in choices}
    return out


def check_model(model_path, build: Path, *, fold=None, frames=8, engine="verilator", name=None,
                seed=0, p_gap=0.3, p_stall=0.3, x=None, strip_width=None, topk=None) -> dict:
    """With ``strip_width`` the design is tiled into column strips; its integers are compared
    reassembled into whole frames. With ``topk`` it returns class indices, compared with the
    stable ranking of qonnx's scores."""
    cm = lower_file(model_path, fold, strip_width=strip_width, topk=topk)
    write_build(cm, build)
    if x is None:
        x = random_inputs(name or tuple(cm.input_shape[1:]), frames, seed=seed)
    res = simulate_build(build, x, engine=engine, p_gap=p_gap, p_stall=p_stall, seed=seed + 1,
                         cache_dir=SIM_CACHE)
    rep = res["report"]
    assert len(rep["runs"]) == 2, "expected a randomised run and a full-rate run"
    for run in rep["runs"]:
        assert not run["stalled"], run["stall_report"]
        assert run["tlast_ok"], "m_axis_tlast not on frame boundaries"
        assert run["mismatches"] == 0, f"hardware differs from the reference: {run['first_mismatch']}"
    got, want = res["hw_integers"], res["expected_integers"]
    out_shape = tuple(cm.pipeline.out_stream.shape)
    if cm.tiling is not None:
        out_shape = (out_shape[0], cm.tiling.out_width) + out_shape[2:]
        assert rep["strips_per_frame"] == cm.tiling.strips > 1
    assert got.shape == want.shape == (frames,) + out_shape
    np.testing.assert_array_equal(got, want)
    assert rep["bit_exact"] is True

    ii, exp = rep["measured_cycles_per_frame"], rep["expected_cycles_per_frame"]
    assert ii is not None and abs(ii - exp) <= 0.05 * exp, f"measured {ii} cycles/frame, expected {exp}"

    q = qonnx_reference(model_path, x)
    out = res["outputs"]
    if topk is not None:
        q = np.argsort(-q.reshape(frames, -1), axis=1, kind="stable")[:, :topk]
    assert out.shape == q.shape
    if cm.host_out.exact:
        np.testing.assert_array_equal(out, q)
    else:
        scale = float(np.abs(q).max()) or 1.0
        np.testing.assert_allclose(out, q, rtol=1e-5, atol=1e-5 * scale)
        np.testing.assert_array_equal(out.reshape(frames, -1).argmax(1), q.reshape(frames, -1).argmax(1))
    return {"model": cm, "report": rep, "outputs": out, "integers": got}

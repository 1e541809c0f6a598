"""FIFO sizing (``compiler/fifo_sizing.py``): the burst analysis itself, and the depths it picks,
measured in Verilator.

Fast tests check the analysis: the max-plus helpers, a matrix-vector pair whose FIFO peak has a
closed form, the unit schedules cycle by cycle against Amaranth's simulator (with random input
gaps), the consistency of the "as late as possible" schedules, and the sliding window's period
against the cost model. The Verilator tests compile the digits model and check that (1) it runs
at the bottleneck's cycles per frame (within 1%), (2) random gaps and back-pressure neither stall
nor corrupt it, and (3) one-frame-deep FIFOs (as good as unbounded) are no faster.
"""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest

from streamfold.compiler import fifo_sizing as fs
from streamfold.compiler.cost import pipeline_cycles, unit_cycles
from streamfold.compiler.ir import (BIPOLAR, DataType, GlobalSumPoolUnit, MatrixVectorUnit,
                                    MaxPoolUnit, DataflowGraph, VectorVectorUnit, WholeWindowUnit, window_unit)
from streamfold.compiler.units import sliding_window, whole_window

from unit_cases import needs_verilator

REPO = Path(__file__).resolve().parent.parent
DIGITS = REPO / "examples" / "models"
SIM_CACHE = os.environ.get("STREAMFOLD_SIM_CACHE") or str(REPO / "build" / "sim_cache")
INT4, UINT3 = DataType.int_type(4), DataType.uint_type(3)


def mvau(name, mw, mh, pe, simd, rows=(), dt=INT4, seed=0):
    """A matrix-vector unit with raw (accumulator) outputs."""
    rng = np.random.default_rng(seed)
    u = MatrixVectorUnit(name, rng.integers(-2, 2, (mh, mw)), INT4, dt, dt, rows_shape=rows,
                         pe=pe, simd=simd)
    u.out_dtype = u.acc_dtype
    return u


def mvau_pair(m, s, n):
    """A: one vector of S beats per frame, M neuron folds of S cycles; B: SF = M, NF = N."""
    a = mvau("a", s, m, 1, 1)
    return DataflowGraph([a, mvau("b", m, n, 1, 1, dt=a.out_dtype)])


def swg(shape, dt, k, s=(1, 1), pads=(0, 0, 0, 0), simd=1, depthwise=False):
    return window_unit(name="win", in_shape=tuple(shape), dtype=dt, kernel=tuple(k), stride=tuple(s),
                       pads=tuple(pads), simd=simd, depthwise=depthwise)


# ----------------------------------------------------------------------------- max-plus helpers
def test_chain_and_rchain_match_loops():
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = int(rng.integers(1, 50))
        e = rng.integers(0, 100, n)
        g = np.cumsum(rng.integers(0, 4, n))
        t, prev = [], None
        for k in range(n):
            v = max(e[k], g[k] + 5) if prev is None else max(prev + g[k] - g[k - 1], e[k])
            t.append(v)
            prev = v
        np.testing.assert_array_equal(fs.chain(e, g, 5), t)
        t, nxt = [0] * n, None
        for k in range(n - 1, -1, -1):
            t[k] = e[k] if nxt is None else min(nxt - (g[k + 1] - g[k]), e[k])
            nxt = t[k]
        np.testing.assert_array_equal(fs.rchain(e, g), t)


def test_occupancy_counts_beats_in_the_fifo():
    w = np.array([0, 1, 2, 3, 10, 11])
    r = np.array([2, 3, 5, 9, 12, 13])
    # write k finds the beats written before it and not yet read, plus itself
    assert fs.fifo_occupancy(w, r).tolist() == [1, 2, 3, 3, 1, 2]
    big = np.arange(0, 10 ** 7, 1000)  # the binary-search path
    assert fs.fifo_occupancy(big, big + 2500).max() == 3


# ----------------------------------------------------------------------------- known answer
@pytest.mark.parametrize("m,s,n", [(16, 4, 8), (10, 3, 5), (32, 2, 3), (20, 7, 9)])
def test_mvau_pair_peak_has_closed_form(m, s, n):
    """A (one vector per frame, ``M`` neuron folds of ``S`` cycles) trickles ``M`` beats, one every
    ``S`` cycles, into B (``SF = M``, ``NF = N > S``, the bottleneck). B reads greedily, falls
    ``L = (M-1)(S-1)`` cycles behind after the first frame and then stays there: at A's write ``j``
    the FIFO holds ``j + 1 - min(ceil((jS-2)/S), max(0, jS - 2 - L))`` beats (2: FIFO latency)."""
    p = mvau_pair(m, s, n)
    lag = (m - 1) * (s - 1)
    want = max(j + 1 - min(-(-(j * s - 2) // s) if j * s > 2 else 0, max(0, j * s - 2 - lag))
               for j in range(m))
    for reach in (0, None):  # earliest schedule only, and with the late ones
        an = fs.analyse_fifos(p, reach=reach)
        assert an.ii == m * n
        assert an.peaks == [0, want, 0]
        assert an.depths == [2, want + fs.MARGIN, 2]
        assert an.periods == [m * n, m * n]


def test_even_rates_need_no_buffer():
    """Rate-matched units without bursts (MVAU, NF = 1, into a max-pool) need the minimum."""
    a = mvau("a", 8, 4, 4, 8, rows=(4, 4), dt=DataType.uint_type(2))
    pool = MaxPoolUnit("p", (4, 4, 4), a.out_dtype, (2, 2), (2, 2), 4)
    an = fs.analyse_fifos(DataflowGraph([a, pool]))
    # one beat per clock, each read FIFO_LATENCY (2) cycles after its write: 3 beats in flight
    assert an.peaks == [0, 3, 0] and an.depths == [2, 3 + fs.MARGIN, 2]


# ----------------------------------------------------------------------------- schedules vs hardware
def _avail(in_cycles, n, p_valid, seed):
    """When :func:`streamfold.hw.simulate.run_stream`'s source offered each beat (replays its RNG)."""
    rng = random.Random(seed * 2 + 1)
    out, prev = [], -1
    for k in range(n):
        idle = 0
        while rng.random() >= p_valid:
            idle += 1
        out.append(prev + 1 + idle)
        prev = in_cycles[k]
    return np.array(out)


def _units():
    win = swg((6, 5, 6), BIPOLAR, (3, 3), (2, 2), (1, 1, 1, 1), 3, True)
    dw = VectorVectorUnit("dw", np.ones((6, 9), dtype=np.int64), BIPOLAR, BIPOLAR,
                          DataType.uint_type(4), rows_shape=win.out_hw, pe=3)
    dw.out_dtype = dw.acc_dtype
    return {
        "mvau_nf3_sf4": mvau("m", 12, 6, 2, 3, rows=(3,)),
        "mvau_nf1": mvau("m", 6, 6, 6, 2, rows=(2,)),
        "swg_k3_valid": swg((7, 9, 4), INT4, (3, 3), simd=2),
        "swg_k5_s2_pad_dw": swg((9, 7, 3), UINT3, (5, 5), (2, 2), (2, 1, 1, 2), 1, True),
        "swg_k3_same": swg((6, 5, 2), INT4, (3, 3), (1, 1), (1, 1, 1, 1), 1),
        "swg_parallel": swg((6, 5, 2), INT4, (3, 3), (1, 1), (1, 1, 1, 1), 18),
        "swg_parallel_wide_pads": swg((5, 6, 2), INT4, (3, 3), (2, 1), (3, 4, 3, 0), 18),
        "vvau": dw,
        "maxpool_overlap": MaxPoolUnit("mp", (7, 9, 4), INT4, (3, 3), (2, 2), 2),
        "gsumpool": GlobalSumPoolUnit("gp", (5, 4, 6), INT4, 2),
    }


@pytest.mark.parametrize("name", list(_units()))
def test_unit_schedule_is_cycle_exact(name):
    """The analysis' schedule of every unit kind, against Amaranth's simulator of its hardware
    with random input gaps: the same cycle for every input and every output beat."""
    from streamfold.hw.registry import build_unit
    from streamfold.hw.simulate import run_stream
    from streamfold.sim.streams import pack

    u = _units()[name]
    frames, p_valid, seed = 3, 0.6, 3
    rng = np.random.default_rng(seed)
    ins = u.in_stream
    lo, hi = (0, 1) if ins.dtype.bipolar else (ins.dtype.min, ins.dtype.max)
    x = rng.integers(lo, hi + 1, size=(frames,) + tuple(ins.shape))
    if ins.dtype.bipolar:
        x = 2 * x - 1
    beats = pack(x, ins)
    res = run_stream(build_unit(u), beats, frames * u.out_stream.beats_per_frame, p_valid=p_valid,
                     seed=seed)
    r, o = fs.unit_timeline(u, _avail(res.in_cycles, len(beats), p_valid, seed), frames)
    np.testing.assert_array_equal(r, res.in_cycles)
    np.testing.assert_array_equal(o, res.out_cycles)


PACED_CASES = {
    "mvau_sf1_split4": (lambda: mvau("m", 8, 8, 4, 8, rows=(6,)), 1),
    "mvau_sf3_split8": (lambda: mvau("m", 6, 8, 8, 2, rows=(4,)), 1),
    "swg_split4": (lambda: swg((5, 5, 4), INT4, (3, 3), simd=4), 1),
    "swg_parallel_split6": (lambda: swg((6, 5, 2), INT4, (3, 3), (1, 1), (1, 1, 1, 1), 18), 3),
    "swg_parallel_s2_split6": (lambda: swg((7, 6, 2), INT4, (3, 3), (2, 2), (1, 1, 1, 1), 18), 3),
    "vvau_k9_no_split": (lambda: _units()["vvau"], 3),
}


@pytest.mark.parametrize("name", list(PACED_CASES))
def test_paced_schedule_behind_a_splitter(name):
    """A unit followed by a splitting width converter, in Amaranth's simulator: the paced
    schedule gives the converter's output times exactly, and takes no input beat earlier than
    the hardware does (exactly when it does for the whole-window generator)."""
    from amaranth.hdl import Module
    from amaranth.lib import wiring

    from streamfold.hw.dwc import StreamDWC
    from streamfold.hw.registry import build_unit
    from streamfold.hw.simulate import run_stream

    make, b = PACED_CASES[name]
    u = make()

    class Chain(wiring.Component):
        def __init__(self):
            self.hw = build_unit(u)
            self.dwc = StreamDWC(u.out_stream.dtype.bits, u.out_stream.fold, b)
            super().__init__({"i": self.hw.signature.members["i"],
                              "o": self.dwc.signature.members["o"]})

        def elaborate(self, platform):
            m = Module()
            m.submodules.u, m.submodules.dwc = self.hw, self.dwc
            wiring.connect(m, wiring.flipped(self.i), self.hw.i)
            wiring.connect(m, self.hw.o, self.dwc.i)
            wiring.connect(m, self.dwc.o, wiring.flipped(self.o))
            return m

    frames, p_valid, seed = 2, 0.7, 1
    n_in = frames * u.in_stream.beats_per_frame
    n_out = frames * u.out_stream.elems_per_frame // b
    res = run_stream(Chain(), [k % 7 for k in range(n_in)], n_out, p_valid=p_valid, seed=seed)
    pace = -(-u.out_stream.fold // b)
    r, o = fs.unit_timeline(u, _avail(res.in_cycles, n_in, p_valid, seed), frames, pace)
    w, throttled = fs.dwc_timeline(o, u.out_stream.fold, b)
    assert throttled == 0
    np.testing.assert_array_equal(w, res.out_cycles)
    if u.kind == "swg_whole" or u.kind == "vvau":  # exact
        np.testing.assert_array_equal(r, res.in_cycles)
    else:  # a paced fold or window takes its input beats no earlier than the hardware
        assert np.all(r >= np.array(res.in_cycles))


def test_splitter_that_slows_a_unit_is_reported():
    """A whole-window generator (one window per clock) into an MVAU reading two elements per
    clock: the splitter between them takes a window every 9 cycles, 42 windows take 378 cycles,
    as many as the MVAU needs; but a frame's first window comes 21 scan steps after the one
    before (two rows of 9 and two columns), 4 more than the splitter's two windows can hide:
    the generator, not the MVAU the cost model names, sets the pace (382 cycles per frame, as
    Amaranth's simulator shows), and the analysis paces its source at that rate."""
    win = swg((8, 9, 2), INT4, (3, 3), simd=18)
    assert isinstance(win, WholeWindowUnit)
    p = DataflowGraph([win, mvau("m", 18, 4, 4, 2, rows=win.out_hw)])
    an = fs.analyse_fifos(p)
    assert an.cost_ii == pipeline_cycles(p)[0] == 42 * 9
    assert an.ii == 382 and an.slow_unit == "win"
    assert all(per == an.ii for per in an.periods)


@pytest.mark.parametrize("name", list(_units()))
def test_latest_schedule_is_consistent(name):
    """Latest reads for given output deadlines: never before the earliest, every output by its
    deadline, and a schedule the unit can run (its own earliest schedule given those reads
    reads them exactly then); for the sliding window every buffer constraint holds."""
    u = _units()[name]
    rng = np.random.default_rng(1)
    frames = 3
    n_in = frames * u.in_stream.beats_per_frame
    avail = np.cumsum(rng.integers(0, 3, n_in))
    r, o = fs.unit_timeline(u, avail, frames)
    dl = o + np.cumsum(rng.integers(0, 4, o.size))
    rl, ol = fs.unit_latest(u, dl, frames, r)
    assert np.all(rl >= r) and np.all(ol <= dl)
    if isinstance(u, WholeWindowUnit) and whole_window.scan_steps(u, 1)[3]:
        return  # padding steps before a frame's first pixel: kept at its earliest schedule
    r2, o2 = fs.unit_timeline(u, rl, frames)
    np.testing.assert_array_equal(r2, rl)
    assert np.all(o2 <= ol)
    if u.kind == "swg":
        sg = sliding_window.WindowFrames(u, frames)
        for reads, outs in ((r, o), (rl, ol)):
            assert sliding_window.schedule_ok(sg, reads, outs[::sg.wb] - sliding_window.SWG_LATENCY)


@pytest.mark.parametrize("name", [n for n in _units() if n.startswith("swg")])
def test_sliding_window_period_matches_cost_model(name):
    """With its input always there, the schedule's steady-state period is the cost model's."""
    u = _units()[name]
    frames = 5
    _, o = fs.unit_timeline(u, np.zeros(frames * u.in_stream.beats_per_frame, np.int64), frames)
    ob = u.out_stream.beats_per_frame
    assert o[-1] - o[-1 - ob] == unit_cycles(u)


# ----------------------------------------------------------------------------- whole pipelines
def _digits(stem="digits_w2a2", fold=None):
    from streamfold.compiler.build import lower_file

    return lower_file(DIGITS / f"{stem}.onnx", fold)


def test_digits_analysis_and_report():
    import time

    cm = _digits()
    p = cm.pipeline  # lower_file sizes the FIFOs
    t0 = time.monotonic()
    an = fs.analyse_fifos(p)
    assert time.monotonic() - t0 < 2.0
    assert p.fifo_depths == an.depths
    assert len(an.depths) == len(p.units) + 1
    assert an.depths[0] == an.depths[-1] == fs.MIN_DEPTH
    assert all(d >= fs.MIN_DEPTH for d in an.depths) and not any(an.capped)
    assert an.ii == an.cost_ii == pipeline_cycles(p)[0] and an.slow_unit is None
    assert all(per == an.ii for per in an.periods)  # every unit keeps the bottleneck's pace
    assert an.bits <= an.earliest_bits
    rows = fs.fifo_report(p, an)
    assert [r["depth"] for r in rows] == an.depths
    assert sum(r["bits"] for r in rows) == fs.fifo_bits(p) == an.bits
    assert rows[0]["feeds"] == p.units[0].name and rows[-1]["feeds"] == "output"
    assert all(r["bits"] == r["depth"] * r["width"] for r in rows)
    # the sizing is a pure function of the units
    assert fs.size_fifos(DataflowGraph(list(p.units))).fifo_depths == an.depths


# ----------------------------------------------------------------------------- Verilator


def deep_depths(p: DataflowGraph) -> list:
    """Every FIFO one frame of its stream deep: as good as unbounded."""
    return [max(2, u.in_stream.beats_per_frame) for u in p.units] + [max(2, p.out_stream.beats_per_frame)]


def _measure(cm, depths, build: Path, frames: int, p: float = 0.0) -> dict:
    from streamfold.compiler.build import write_build
    from streamfold.sim.simulate import simulate_build

    cm.pipeline = DataflowGraph(list(cm.pipeline.units), list(depths))
    write_build(cm, build)
    x = np.load(DIGITS / "digits_test.npz")["x"][:frames].astype(np.float32)
    rep = simulate_build(build, x, engine="verilator", p_gap=p, p_stall=p, seed=2,
                         cache_dir=SIM_CACHE)["report"]
    for run in rep["runs"]:
        assert not run["stalled"], run["stall_report"]
        assert run["mismatches"] == 0 and run["tlast_ok"]
    return rep


def check_digits(stem, fold, tmp_path, frames=16):
    cm = _digits(stem, fold)
    sized = list(cm.pipeline.fifo_depths)
    expected = pipeline_cycles(cm.pipeline)[0]
    # (1) the analysed depths reach the bottleneck's pace
    rep = _measure(cm, sized, tmp_path / "sized", frames)
    assert rep["expected_cycles_per_frame"] == expected
    ii = rep["measured_cycles_per_frame"]
    assert abs(ii - expected) <= 0.01 * expected, f"measured {ii} cycles/frame, expected {expected}"
    # (2) random gaps and back-pressure: no deadlock, bit-exact (same Verilog, cached model)
    _measure(cm, sized, tmp_path / "sized", min(frames, 8), p=0.3)
    # (3) nothing to gain from unbounded FIFOs
    deep = _measure(cm, deep_depths(cm.pipeline), tmp_path / "deep", frames)
    assert deep["measured_cycles_per_frame"] == ii
    return ii


@needs_verilator
def test_digits_w2a2_default_fold_in_verilator(tmp_path):
    check_digits("digits_w2a2", None, tmp_path)


@needs_verilator
def test_mvau_pair_needs_its_analysed_depth(tmp_path):
    """The closed-form pair in hardware: the analysed depth reaches B's pace; a FIFO a few beats
    shallower than the peak does not."""
    from unit_cases import check_pipeline

    m, s, n = 16, 4, 8
    p = fs.size_fifos(mvau_pair(m, s, n))
    rng = np.random.default_rng(0)
    got = check_pipeline(p, 10, rng, p_gap=0.0, p_stall=0.0)["measure"]
    assert got.ii == m * n
    short = DataflowGraph(p.units, [2, p.fifo_depths[1] - fs.MARGIN - 4, 2])
    got = check_pipeline(short, 10, rng, p_gap=0.0, p_stall=0.0)["measure"]
    assert got.ii > m * n


OTHER_FOLDS = {
    "serial-ish": {"conv0": {"pe": 2, "simd": 3}, "conv1": {"pe": 2, "simd": 8},
                   "conv2": {"pe": 1, "simd": 4}, "fc0": {"pe": 1, "simd": 1}},
    "fast": {"conv0_win": {"simd": 1}, "conv0": {"pe": 8, "simd": 3}, "conv1_win": {"simd": 8},
             "conv1": {"pe": 8, "simd": 16}, "pool0": {"pe": 2}, "conv2": {"pe": 4, "simd": 8},
             "fc0": {"pe": 2, "simd": 4}},
}


@needs_verilator
@pytest.mark.slow
@pytest.mark.parametrize("stem,fold", [("digits_w2a2", "serial-ish"), ("digits_w2a2", "fast"),
                                       ("digits_w1a1", None), ("digits_w1a1", "serial-ish"),
                                       ("digits_w1a1", "fast")])
def test_digits_other_folds_in_verilator(stem, fold, tmp_path):
    check_digits(stem, OTHER_FOLDS.get(fold), tmp_path)


@needs_verilator
def test_split_window_pace_is_what_reports_and_verilator_say(tmp_path):
    """Digits W2A2 on PYNQ-Z1 uses whole-window units whose output a width converter splits: the
    slowest unit needs 81 cycles/frame, but the schedule analysis paces the pipeline at 88. The
    report and the simulation's expectation use the analysed pace, and Verilator measures it."""
    from streamfold.boards import load_board
    from streamfold.compiler.build import lower_file, write_build
    from streamfold.sim.simulate import simulate_build

    cm = lower_file(DIGITS / "digits_w2a2.onnx", board=load_board("pynq-z1"))
    cost = pipeline_cycles(cm.pipeline)[0]
    pace, what = fs.expected_pace(cm.pipeline)
    assert pace > cost and what.endswith("+ width converter")
    report = write_build(cm, tmp_path / "b")
    t = report["totals"]
    assert (t["expected_cycles_per_frame"], t["slowest_unit_cycles_per_frame"]) == (pace, cost)
    x = np.load(DIGITS / "digits_test.npz")["x"][:16].astype(np.float32)
    rep = simulate_build(tmp_path / "b", x, engine="verilator", p_gap=0.2, p_stall=0.2, seed=4,
                         cache_dir=SIM_CACHE)["report"]
    assert rep["bit_exact"] and rep["expected_cycles_per_frame"] == pace
    assert abs(rep["measured_cycles_per_frame"] - pace) <= 0.02 * pace, rep["measured_cycles_per_frame"]


def test_target_rate_checks_the_analysed_pace():
    from streamfold.compiler.build import lower_file
    from streamfold.compiler.search import FoldSearchError

    with pytest.raises(FoldSearchError, match=r"allows 83 cycles per frame; the fastest fold found runs "
                                              r"at \d+ \(\S+ \+ width converter sets the pace\)"):
        lower_file(DIGITS / "digits_w2a2.onnx", target_fps=1_200_000, clock_mhz=100.0)

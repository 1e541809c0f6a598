"""Property-based tests (hypothesis): random units straight from the IR, bit-exact in Verilator, and
the compiler's threshold derivation against direct evaluation.

* Hardware (one Verilator build per example): chains of matrix-vector units with random shapes,
  bit widths 1..8 (signed, unsigned, bipolar), thresholds or raw accumulators, foldings (any
  divisors, so width converters appear), FIFO depths 0..4, random input gaps and output
  back-pressure; sliding windows (kernel, stride, padding, pad value, SIMD, depthwise) feeding a
  matrix-vector or vector-vector unit; max-pool and global sum-pool. Every output integer must
  equal :mod:`streamfold.sim.reference`, ``tlast`` must mark frames, no beat may follow.
* Thresholds (no hardware): random per-channel chains (Mul/Add/Sub/Div/BatchNormalization with
  random signs, Relu/Clip/Max/Min/Neg) and a Quant or BipolarQuant; the thresholds
  :func:`streamfold.compiler.thresholds.thresholds_for` derives must reproduce the chain on every
  accumulator value in range (or the compiler must refuse the chain with a CompileError when it
  is not monotone).

Profiles (tests/conftest.py, ``STREAMFOLD_HYPOTHESIS_PROFILE``): "fast" (default: 4 examples per
hardware test, derandomized so reruns reuse the cached Verilator builds) and "nightly" (200). The
threshold tests run 25x as many examples; ``STREAMFOLD_HYPOTHESIS_EXAMPLES`` sets the nightly count,
``--hypothesis-show-statistics`` reports how many ran. Failures hypothesis found are kept as
``@example`` s.
"""
from __future__ import annotations

import math
import os

import numpy as np
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from streamfold.compiler.errors import CompileError
from streamfold.compiler.ir import (BIPOLAR, DataType, GlobalSumPoolUnit, MatrixVectorUnit, MaxPoolUnit,
                                    DataflowGraph, VectorVectorUnit, divisors, window_unit)
from streamfold.compiler.ops import OpCall, quant_int, run_chain
from streamfold.compiler.thresholds import monotone_by_construction, thresholds_for

from unit_cases import needs_verilator, random_values as values

PROFILE = settings.default
HW_EXAMPLES = PROFILE.max_examples
SW_EXAMPLES = PROFILE.max_examples * 25


# ============================================================================= datatypes
def dtype_of(bits: int, kind: str) -> DataType:
    """kind: "signed", "unsigned" or "bipolar" (1 bit)."""
    if kind == "bipolar":
        return BIPOLAR
    return DataType(bits, kind == "signed")


dtypes = st.one_of(
    st.just(("bipolar", 1)),
    st.tuples(st.sampled_from(["signed", "unsigned"]), st.integers(1, 8)),
).map(lambda kb: dtype_of(kb[1], kb[0]))


# ============================================================================= thresholds (software)
def _const(draw, mh: int, lo: float, hi: float, nonzero: bool = False, signs: bool = True):
    """A float32 constant, scalar or per-channel (1, MH), magnitudes in [lo, hi], random signs."""
    n = draw(st.sampled_from([1, mh]))
    mags = draw(st.lists(st.floats(lo, hi), min_size=n, max_size=n))
    sg = draw(st.lists(st.sampled_from([-1.0, 1.0] if signs else [1.0]), min_size=n, max_size=n))
    v = np.array([m * s for m, s in zip(mags, sg)], dtype=np.float32)
    if nonzero:
        v[v == 0] = 1.0
    return v.reshape(()) if n == 1 and draw(st.booleans()) else v.reshape(1, n)


@st.composite
def chains(draw, mh: int):
    """Per-channel float ops with random signs (the node names say what each op is)."""
    ops = []
    for i in range(draw(st.integers(0, 5))):
        kind = draw(st.sampled_from(["Mul", "Add", "Sub", "SubFrom", "Div", "BatchNormalization",
                                     "Relu", "Neg", "Clip", "Max", "Min", "DivBy"]))
        name = f"op{i}_{kind}"
        if kind == "Mul":
            ops.append(OpCall("Mul", [None, _const(draw, mh, 1e-3, 1e3)], {}, name))
        elif kind in ("Add", "Sub"):
            ops.append(OpCall(kind, [None, _const(draw, mh, 0.0, 50.0)], {}, name))
        elif kind == "SubFrom":  # c - x: decreasing
            ops.append(OpCall("Sub", [_const(draw, mh, 0.0, 50.0), None], {}, name))
        elif kind == "Div":
            ops.append(OpCall("Div", [None, _const(draw, mh, 1e-2, 1e2, nonzero=True)], {}, name))
        elif kind == "DivBy":  # c / x: not monotone across 0
            ops.append(OpCall("Div", [_const(draw, mh, 1e-2, 1e2, nonzero=True), None], {}, name))
        elif kind == "BatchNormalization":
            gamma = _const(draw, mh, 0.1, 4.0).reshape(-1)
            beta = _const(draw, mh, 0.0, 5.0).reshape(-1)
            mean = _const(draw, mh, 0.0, 20.0).reshape(-1)
            var = np.abs(_const(draw, mh, 1e-3, 100.0, signs=False)).reshape(-1)
            full = lambda a: np.broadcast_to(a, (mh,)).astype(np.float32)  # noqa: E731
            ops.append(OpCall("BatchNormalization", [None, full(gamma), full(beta), full(mean),
                                                     full(var)], {"epsilon": 1e-5}, name))
        elif kind == "Clip":
            a, b = sorted(draw(st.lists(st.floats(-20, 20), min_size=2, max_size=2)))
            ops.append(OpCall("Clip", [None, np.float32(a), np.float32(b)], {}, name))
        elif kind in ("Max", "Min"):
            ops.append(OpCall(kind, [None, _const(draw, mh, 0.0, 20.0)], {}, name))
        else:
            ops.append(OpCall(kind, [None], {}, name))
    return ops


@st.composite
def quantizers(draw):
    if draw(st.integers(0, 9)) == 0:
        return OpCall("BipolarQuant", [None, np.float32(draw(st.sampled_from([1.0, 0.5, 2.0])))], {}, "q")
    bits = draw(st.integers(1, 8))
    signed = draw(st.integers(0, 1))
    narrow = draw(st.integers(0, 1)) if signed and bits > 1 else 0
    scale = np.float32(draw(st.one_of(st.sampled_from([2.0 ** k for k in range(-6, 4)]),
                                      st.floats(1e-3, 10.0))))
    mode = draw(st.sampled_from(["ROUND", "ROUND", "FLOOR", "CEIL", "HALF_UP", "HALF_DOWN", "UP",
                                 "DOWN"]))
    return OpCall("Quant", [None, scale, np.float32(0.0), np.float32(bits)],
                  {"signed": signed, "narrow": narrow, "rounding_mode": mode}, "q")


@st.composite
def threshold_cases(draw):
    mh = draw(st.integers(1, 6))
    mw = draw(st.integers(1, 12))
    wdt, idt = draw(dtypes), draw(dtypes)
    seed = draw(st.integers(0, 2**32 - 1))
    pre = np.array([draw(st.floats(1e-3, 4.0)) * draw(st.sampled_from([-1, 1])) for _ in range(mh)])
    return {"mh": mh, "mw": mw, "wdt": wdt, "idt": idt, "seed": seed, "pre": pre,
            "chain": draw(chains(mh)), "quantizer": draw(quantizers())}


def model_levels(case, unit, c: int, accs: np.ndarray) -> np.ndarray:
    """What the model computes for channel ``c`` at model accumulator values ``accs``: the chain
    and the quantizer evaluated directly (no thresholds)."""
    x = np.zeros((len(accs), unit.mh))
    x[:, c] = accs * case["pre"][c]
    with np.errstate(all="ignore"):
        v = run_chain(case["chain"], x)
        q = case["quantizer"]
        if q.op_type == "BipolarQuant":
            return np.where(v[:, c] >= 0, 1, -1)
        scale, zp, bits = q.inputs[1:4]
        if int(bits) == 1 and q.attrs["signed"]:
            return np.where(v[:, c] >= 0, 1, -1)
        return quant_int(v, scale, zp, bits, q.attrs["signed"], q.attrs["narrow"],
                         q.attrs["rounding_mode"])[:, c]


def check_thresholds(case) -> str:
    rng = np.random.default_rng(case["seed"])
    mh, mw, wdt, idt = case["mh"], case["mw"], case["wdt"], case["idt"]
    w = values(rng, wdt, (mh, mw))
    unit = MatrixVectorUnit("fc", w, wdt, idt, BIPOLAR)
    try:
        thr, out_bias, sign = thresholds_for(unit, case["pre"], case["chain"], case["quantizer"],
                                             lambda n: (n, -1))
    except CompileError as e:
        # only a chain that is not monotone by construction (a division by the accumulator) or
        # that gives NaN may be refused
        assert not monotone_by_construction(case["chain"]) or "NaN" in str(e), str(e)
        return "refused"
    q = case["quantizer"]
    bipolar_out = q.op_type == "BipolarQuant" or (int(q.inputs[3]) == 1 and q.attrs["signed"])
    for c in range(mh):
        if unit.binary:
            p = np.arange(mw + 1)
            accs = 2 * p - mw
            hw = p if sign[c] > 0 else mw - p  # popcount of the (negated) row
        else:
            a, b = w[c] * idt.min, w[c] * idt.max
            accs = np.arange(np.minimum(a, b).sum(), np.maximum(a, b).sum() + 1)
            hw = accs * sign[c]
        want = model_levels(case, unit, c, accs)
        count = (hw[:, None] >= thr[c][None, :]).sum(1)
        got = 2 * count - 1 if bipolar_out else out_bias + count
        bad = np.nonzero(got != want)[0]
        assert bad.size == 0, (f"channel {c}: accumulator {accs[bad[0]]} -> model level {want[bad[0]]}, "
                               f"thresholds give {got[bad[0]]} (thresholds {thr[c].tolist()}, sign "
                               f"{sign[c]})")
    return "exact"


@settings(max_examples=SW_EXAMPLES)
@given(case=threshold_cases())
def test_thresholds_match_direct_evaluation(case):
    check_thresholds(case)


def test_thresholds_catch_a_single_spike():
    """c / (acc - 5) quantized is 0 except at accumulator values 5 and 6 of a wide range: checking
    every accumulator value refuses it (random samples would almost surely miss it)."""
    w = np.full((1, 64), 127)
    unit = MatrixVectorUnit("fc", w, DataType(8, True), DataType(8, False), BIPOLAR)
    chain = [OpCall("Sub", [None, np.float32(5.0)], {}, "sub"),
             OpCall("Div", [np.float32(1.0), None], {}, "div")]
    q = OpCall("Quant", [None, np.float32(1.0), np.float32(0.0), np.float32(4.0)],
               {"signed": 0, "narrow": 0, "rounding_mode": "ROUND"}, "q")
    assert not monotone_by_construction(chain)
    with pytest.raises(CompileError, match="not monotone"):
        thresholds_for(unit, np.ones(1), chain, q, lambda n: (n, -1))


# ============================================================================= hardware
def _simulate(pipeline: DataflowGraph, case: dict) -> None:
    from unit_cases import check_pipeline

    rng = np.random.default_rng(case["seed"] + 1)
    check_pipeline(pipeline, case["frames"], rng, p_gap=case["p_gap"], p_stall=case["p_stall"],
                   seed=case["seed"] & 0xFFFF)


probabilities = st.sampled_from([0.0, 0.1, 0.3, 0.5, 0.8])


def _thresholded(rng, u, out_dtype: DataType, style: str):
    """Thresholds for ``u`` (an MVAU or VVAU): random in range, clustered at the range's ends,
    repeated values, or beyond the range."""
    lo, hi = u.acc_range
    n = 1 if out_dtype.bipolar else out_dtype.max - out_dtype.min
    rows = u.weights.shape[0]
    if style == "random":
        t = rng.integers(lo - 1, hi + 2, size=(rows, n))
    elif style == "edges":
        t = rng.choice([lo - 1, lo, lo + 1, hi - 1, hi, hi + 1], size=(rows, n))
    elif style == "repeated":
        t = np.repeat(rng.integers(lo, hi + 1, size=(rows, 1)), n, axis=1)
    else:  # beyond the range on both sides
        t = rng.choice([lo - 1000, hi + 1000], size=(rows, n))
    u.thresholds = np.sort(t, axis=1).astype(np.int64)
    u.out_dtype = out_dtype
    u.out_bias = 0 if out_dtype.bipolar else out_dtype.min
    return u


out_types = st.one_of(st.none(), st.just(BIPOLAR),
                      st.tuples(st.integers(1, 4), st.booleans()).map(lambda t: DataType(t[0], t[1])))


@st.composite
def mvau_chains(draw):
    """1 or 2 matrix-vector units in a row, FIFO depths 0..4."""
    n = draw(st.integers(1, 2))
    layers = []
    in_dtype = draw(dtypes)
    mw = draw(st.integers(1, 24))
    rows_shape = draw(st.sampled_from([(), (2,), (2, 3)]))
    for i in range(n):
        mh = draw(st.integers(1, 12))
        out = draw(out_types)  # None: the raw accumulator (a wide input for the next layer)
        layers.append({"mw": mw, "mh": mh, "wdt": draw(dtypes), "out": out,
                       "pe": draw(st.sampled_from(divisors(mh))),
                       "simd": draw(st.sampled_from(divisors(mw))),
                       "thr": draw(st.sampled_from(["random", "edges", "repeated", "beyond"]))})
        mw = mh
    return {"in_dtype": in_dtype, "rows_shape": rows_shape, "layers": layers,
            "fifos": draw(st.lists(st.integers(0, 4), min_size=n + 1, max_size=n + 1)),
            "seed": draw(st.integers(0, 2**31 - 1)), "frames": draw(st.integers(1, 4)),
            "p_gap": draw(probabilities), "p_stall": draw(probabilities)}


def build_mvau_chain(case) -> DataflowGraph:
    rng = np.random.default_rng(case["seed"])
    units, idt = [], case["in_dtype"]
    for i, L in enumerate(case["layers"]):
        w = values(rng, L["wdt"], (L["mh"], L["mw"]))
        u = MatrixVectorUnit(f"fc{i}", w, L["wdt"], idt, BIPOLAR, rows_shape=case["rows_shape"],
                             pe=L["pe"], simd=L["simd"])
        if L["out"] is None:
            u.out_dtype = u.acc_dtype
        else:
            _thresholded(rng, u, L["out"], L["thr"])
        units.append(u)
        idt = u.out_dtype
    p = DataflowGraph(units, list(case["fifos"]))
    p.check()
    return p


@needs_verilator
@settings(max_examples=HW_EXAMPLES)
@given(case=mvau_chains())
def test_mvau_chain_bit_exact(case):
    _simulate(build_mvau_chain(case), case)


@st.composite
def window_cases(draw):
    """A sliding window (any kernel, stride, padding, pad value, SIMD; depthwise or not) feeding a
    matrix-vector unit (or a vector-vector unit when depthwise)."""
    dt = draw(dtypes)
    h, w, c = draw(st.integers(1, 7)), draw(st.integers(1, 7)), draw(st.integers(1, 6))
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    pads = tuple(draw(st.integers(0, k)) for k in (kh, kw, kh, kw))  # (top, left, bottom, right)
    assume(h + pads[0] + pads[2] >= kh and w + pads[1] + pads[3] >= kw)
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    pad_value = int(draw(st.sampled_from([dt.min, dt.max, 0 if dt.contains(0) else dt.max])))
    depthwise = draw(st.booleans())
    simd = draw(st.sampled_from(divisors(c)))
    consumer = draw(st.sampled_from(["none", "mvau"] if not depthwise else ["none", "vvau"]))
    return {"dtype": dt, "in_shape": (h, w, c), "kernel": (kh, kw), "stride": stride, "pads": pads,
            "pad_value": pad_value, "depthwise": depthwise, "simd": simd, "consumer": consumer,
            "wdt": draw(dtypes), "mh": draw(st.integers(1, 6)), "out": draw(out_types),
            "thr": draw(st.sampled_from(["random", "edges"])), "pe_pick": draw(st.integers(0, 10)),
            "seed": draw(st.integers(0, 2**31 - 1)), "frames": draw(st.integers(1, 3)),
            "p_gap": draw(probabilities), "p_stall": draw(probabilities),
            "fifos": draw(st.integers(0, 4))}


def build_window(case) -> DataflowGraph:
    rng = np.random.default_rng(case["seed"])
    win = window_unit(name="win", in_shape=case["in_shape"], dtype=case["dtype"], kernel=case["kernel"],
                      stride=case["stride"], pads=case["pads"], pad_value=case["pad_value"],
                      simd=case["simd"], depthwise=case["depthwise"])
    units = [win]
    if case["consumer"] == "mvau":
        mw = win.out_stream.shape[-1]
        mh = case["mh"]
        dv = divisors(mh)
        u = MatrixVectorUnit("conv", values(rng, case["wdt"], (mh, mw)), case["wdt"], case["dtype"],
                             BIPOLAR, rows_shape=win.out_hw, pe=dv[case["pe_pick"] % len(dv)],
                             simd=divisors(mw)[case["pe_pick"] % len(divisors(mw))])
        units.append(u)
    elif case["consumer"] == "vvau":
        c, k = case["in_shape"][2], case["kernel"][0] * case["kernel"][1]
        u = VectorVectorUnit("dw", values(rng, case["wdt"], (c, k)), case["wdt"], case["dtype"], BIPOLAR,
                             rows_shape=win.out_hw, pe=win.simd)
        units.append(u)
    if len(units) == 2:
        if case["out"] is None:
            units[1].out_dtype = units[1].acc_dtype
        else:
            _thresholded(rng, units[1], case["out"], case["thr"])
    p = DataflowGraph(units, [case["fifos"]] * (len(units) + 1))
    p.check()
    return p


@needs_verilator
@settings(max_examples=HW_EXAMPLES)
@given(case=window_cases())
def test_window_bit_exact(case):
    _simulate(build_window(case), case)


@st.composite
def pool_cases(draw):
    dt = draw(dtypes)
    h, w, c = draw(st.integers(1, 8)), draw(st.integers(1, 8)), draw(st.integers(1, 6))
    k = (draw(st.integers(1, h)), draw(st.integers(1, w)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    return {"dtype": dt, "in_shape": (h, w, c), "kernel": k, "stride": stride,
            "pe": draw(st.sampled_from(divisors(c))), "gsum": draw(st.booleans()),
            "gsum_pe": draw(st.sampled_from(divisors(c))), "seed": draw(st.integers(0, 2**31 - 1)),
            "frames": draw(st.integers(1, 3)), "p_gap": draw(probabilities),
            "p_stall": draw(probabilities), "fifos": draw(st.integers(0, 4))}


def build_pool(case) -> DataflowGraph:
    mp = MaxPoolUnit("mp", case["in_shape"], case["dtype"], case["kernel"], case["stride"], case["pe"])
    units = [mp]
    if case["gsum"]:
        units.append(GlobalSumPoolUnit("gp", mp.out_hw + (case["in_shape"][2],), case["dtype"],
                                       case["gsum_pe"]))
    p = DataflowGraph(units, [case["fifos"]] * (len(units) + 1))
    p.check()
    return p


@needs_verilator
@settings(max_examples=HW_EXAMPLES)
@given(case=pool_cases())
# found by hypothesis: nothing clocked (a 1x1 max-pool between direct FIFOs, one beat per frame)
# gave a top module without clk/rst ports, which the harness could not drive
@example(case={"dtype": BIPOLAR, "in_shape": (1, 1, 1), "kernel": (1, 1), "stride": (1, 1), "pe": 1,
               "gsum": False, "gsum_pe": 1, "seed": 0, "frames": 1, "p_gap": 0.0, "p_stall": 0.0,
               "fifos": 0})
def test_pool_bit_exact(case):
    _simulate(build_pool(case), case)


def test_profile_is_known():
    assert os.environ.get("STREAMFOLD_HYPOTHESIS_PROFILE", "fast") in ("fast", "nightly")
    assert PROFILE.deadline is None
    assert math.isfinite(HW_EXAMPLES) and HW_EXAMPLES >= 1

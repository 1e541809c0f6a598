"""The table activation (kind ``lookup``) and the top-k label selection (kind ``topk``).

* references against direct NumPy (topk also against ``np.argsort(-x, kind="stable")[:k]`` and
  against the insertion the hardware does, in Python, on inputs full of ties);
* the checks that refuse what the hardware cannot build, one line naming the layer;
* Amaranth's simulator, several configurations of each (pe 1 and > 1, shared and per-channel
  tables, signed/unsigned/bipolar/narrow, k = 1 and k > 1, k above the beats per vector, ties):
  every output equals the reference under random input gaps and output back-pressure, and with
  no back-pressure every read and every output beat is in the cycle the kind's ``timeline``
  says; the ``latest`` schedule is consistent; ``cycles`` is the steady-state period;
* Verilator, through the top level (``unit_cases.check_pipeline``): a one-unit graph and a
  lookup -> topk chain.

The kinds are not in the registry yet: an autouse fixture registers them for every test.
"""
from __future__ import annotations

import numpy as np
import pytest

from streamfold.compiler import fifo_sizing as fs
from streamfold.compiler.ir import BIPOLAR, DataflowGraph, DataType, FoldError
from streamfold.compiler.topology import run_unit
from streamfold.compiler.units import KINDS, kind_of, lookup, topk
from streamfold.compiler.units.lookup import MAX_LOOKUP_BITS, LookupUnit
from streamfold.compiler.units.topk import TopKUnit

from test_fifo_sizing import _avail
from test_join_units import simulate
from unit_cases import check_pipeline, needs_verilator, random_values

INT3, INT4, INT8 = DataType.int_type(3), DataType.int_type(4), DataType.int_type(8)
UINT2, UINT3, UINT4 = DataType.uint_type(2), DataType.uint_type(3), DataType.uint_type(4)
INT4N = DataType.int_type(4, narrow=True)


@pytest.fixture(autouse=True)
def registered(monkeypatch):
    for k in (lookup.KIND, topk.KIND):
        monkeypatch.setitem(KINDS, k.name, k)


# ----------------------------------------------------------------------------- configurations
def _levels(dt):
    return np.array([-1, 1]) if dt.bipolar else np.arange(dt.min, dt.max + 1)


def lookup_unit(shape, idt, odt, pe=1, per_channel=False, seed=0, fn=None):
    """A lookup of a random table (or ``fn`` of the input values, clipped to ``odt``)."""
    rng = np.random.default_rng(seed)
    n = len(_levels(idt))
    rows = shape[-1] if per_channel else None
    if fn is not None:
        t = np.clip(fn(_levels(idt)), odt.min, odt.max).astype(np.int64)
        t = np.stack([np.roll(t, c % 3) for c in range(rows)]) if rows else t
    else:
        t = random_values(rng, odt, (rows, n) if rows else (n,))
    return LookupUnit("lut", tuple(shape), idt, odt, t, pe=pe)


def hardswish(x):  # an integer HardSwish: x * relu6(x + 3) / 6, non-monotone below zero
    return (x * np.clip(x + 3, 0, 6)) // 6


def _cases():
    return {
        "lookup_int4_shared_pe1": lookup_unit((3, 2, 4), INT4, INT4, fn=hardswish),
        "lookup_uint3_shared_pe4": lookup_unit((2, 8), UINT3, INT3, pe=4, seed=1),
        "lookup_int4_perchan_pe2": lookup_unit((2, 2, 6), INT4, UINT3, pe=2, per_channel=True, seed=2),
        "lookup_int3_perchan_bipolar_out_pe1": lookup_unit((3, 3), INT3, BIPOLAR, per_channel=True, seed=3),
        "lookup_bipolar_in_pe3": lookup_unit((2, 6), BIPOLAR, INT3, pe=3, seed=4),
        "lookup_int4n_perchan_pe6": lookup_unit((3, 6), INT4N, INT4, pe=6, per_channel=True, seed=5),
        "topk_int4_k1_pe1": TopKUnit("tk", (7,), INT4, k=1),
        "topk_uint2_k3_pe2_ties": TopKUnit("tk", (10,), UINT2, k=3, pe=2),
        "topk_int3_k5_pe5_bubble": TopKUnit("tk", (10,), INT3, k=5, pe=5),  # k > C/pe: a bubble
        "topk_bipolar_k4_pe4": TopKUnit("tk", (8,), BIPOLAR, k=4, pe=4),
        "topk_uint3_vectors_k6_pe1": TopKUnit("tk", (2, 6), UINT3, k=6, pe=1),  # k = C
        "topk_int8_k16_pe4": TopKUnit("tk", (16,), INT8, k=16, pe=4),
    }


CASES = list(_cases())


# ----------------------------------------------------------------------------- references
@pytest.mark.parametrize("name", [n for n in CASES if n.startswith("lookup")])
def test_lookup_reference_is_the_table(name):
    u = _cases()[name]
    rng = np.random.default_rng(0)
    x = random_values(rng, u.in_dtype, (4,) + u.shape)
    y = run_unit(u, x)
    t = np.asarray(u.table)
    lv = (x + 1) // 2 if u.in_dtype.bipolar else x - u.in_dtype.min
    want = np.empty_like(x)
    for pos in np.ndindex(x.shape):
        want[pos] = t[lv[pos]] if t.ndim == 1 else t[pos[-1], lv[pos]]
    np.testing.assert_array_equal(y, want)
    assert u.out_dtype.contains(y)


def _insertion(x, k):
    """The hardware's algorithm in Python: a sorted list of k (value, index) entries, empty ones
    at the end, each value inserted before the first entry it is strictly greater than."""
    top = []
    for i, v in enumerate(x):
        j = next((j for j, (w, _) in enumerate(top) if v > w), len(top))
        top.insert(j, (v, i))
        del top[k:]
    return [i for _, i in top]


@pytest.mark.parametrize("dt", [UINT2, INT3, BIPOLAR, DataType.int_type(12)])
def test_topk_reference_is_the_stable_argsort(dt):
    rng = np.random.default_rng(1)
    for c, k in [(1, 1), (5, 1), (10, 3), (10, 10), (33, 16)]:
        x = random_values(rng, dt, (20, 2, c))  # two vectors per frame, many ties
        u = TopKUnit("tk", (2, c), dt, k=k)
        y = run_unit(u, x)
        assert y.shape == (20, 2, k)
        np.testing.assert_array_equal(y, np.argsort(-x, axis=-1, kind="stable")[..., :k])
        for v, got in zip(x.reshape(-1, c), y.reshape(-1, k)):
            assert list(got) == _insertion(list(v), k)
            assert list(got) == sorted(range(c), key=lambda i: (-v[i], i))[:k]
        assert u.out_dtype == DataType.uint_type(max(1, (c - 1).bit_length()))


def test_checks_name_the_layer():
    idt = DataType.int_type(MAX_LOOKUP_BITS + 1)
    u = LookupUnit("act3", (4,), idt, INT4, np.zeros(1 << idt.bits, dtype=np.int64))
    with pytest.raises(FoldError, match=r"^layer act3: .* at most 10 bits, its input INT11 is 11 "
                                        r"bits wide$"):
        u.check_folding()
    with pytest.raises(FoldError, match=r"layer act3: the table must have shape \(16,\) or \(4, 16\)"):
        LookupUnit("act3", (4,), INT4, INT4, np.zeros((3, 16), dtype=np.int64)).check_folding()
    with pytest.raises(FoldError, match="do not fit its output UINT2"):
        LookupUnit("act3", (4,), INT4, UINT2, np.full(16, 4)).check_folding()
    with pytest.raises(FoldError, match="PE=3 does not divide"):
        LookupUnit("act3", (4,), INT4, INT4, np.zeros(16, dtype=np.int64), pe=3).check_folding()
    LookupUnit("ok", (4,), DataType.uint_type(10), INT4, np.zeros(1024, dtype=np.int64)).check_folding()
    with pytest.raises(FoldError, match=r"layer sel: top-k needs 1 <= k <= min\(C, 16\) = 4, got k=5"):
        TopKUnit("sel", (4,), INT4, k=5).check_folding()
    with pytest.raises(FoldError, match="PE=3 does not divide its 10 values"):
        TopKUnit("sel", (10,), INT4, k=2, pe=3).check_folding()


# ----------------------------------------------------------------------------- Amaranth simulator
@pytest.mark.parametrize("name", CASES)
def test_outputs_match_reference_under_gaps_and_backpressure(name):
    u = _cases()[name]
    for seed, (pv, pr) in enumerate([(0.6, 0.5), (0.9, 0.3)]):
        simulate(u, 3, p_valid=pv, p_ready=pr, seed=seed)


@pytest.mark.parametrize("name", CASES)
def test_timeline_is_cycle_exact(name):
    """No back-pressure, random input gaps (and, at full rate, none)."""
    u = _cases()[name]
    frames = 3
    for p_valid in (0.6, 1.0):
        res, seeds = simulate(u, frames, p_valid=p_valid, p_ready=1.0, seed=5)
        avail = _avail(res["in_cycles"][0], len(res["in_cycles"][0]), p_valid, seeds[0])
        r, o = kind_of(u).timeline(u, avail, frames)
        np.testing.assert_array_equal(r, res["in_cycles"][0])
        np.testing.assert_array_equal(o, res["out_cycles"][0])


@pytest.mark.parametrize("name", CASES)
def test_cycles_and_latest_schedule(name):
    """``cycles`` is the period at full rate; the latest reads meet every deadline, never come
    before the earliest, and are a schedule the unit runs as given."""
    u = _cases()[name]
    frames = 4
    n_in = frames * u.in_stream.beats_per_frame
    _, o = fs.unit_timeline(u, np.zeros(n_in, np.int64), frames)
    ob = u.out_stream.beats_per_frame
    assert o[-1] - o[-1 - ob] == kind_of(u).cycles(u)
    rng = np.random.default_rng(2)
    for _ in range(5):
        avail = np.cumsum(rng.integers(0, 3, n_in))
        r, o = fs.unit_timeline(u, avail, frames)
        dl = o + np.cumsum(rng.integers(0, 4, o.size))
        dl[-ob:] = fs.BIG  # the tail has no deadline
        rl, ol = fs.unit_latest(u, dl, frames, r)
        assert np.all(rl >= r) and np.all(ol <= dl)
        r2, o2 = fs.unit_timeline(u, rl, frames)
        np.testing.assert_array_equal(r2, rl)
        assert np.all(o2 <= dl)


def test_topk_next_vector_streams_in_at_once():
    """C/pe >= k: a vector's first beat is taken right after the previous vector's last."""
    u = _cases()["topk_uint2_k3_pe2_ties"]
    res, _ = simulate(u, 3, p_valid=1.0, p_ready=1.0, seed=0)
    np.testing.assert_array_equal(np.diff(res["in_cycles"][0]), 1)
    assert res["out_cycles"][0][0] == res["in_cycles"][0][4] + 2  # latency 2 after the last read


# ----------------------------------------------------------------------------- resources
def test_memories_and_features():
    small = lookup_unit((4, 4), INT4, INT4, pe=2)
    big = lookup_unit((4, 4), DataType.int_type(10), INT8, pe=2)
    assert [(m.depth, m.width) for m in lookup.memories(small)] == [(16, 4)] * 2
    per = lookup_unit((2, 6), INT4, INT4, pe=2, per_channel=True)
    assert [(m.depth, m.width) for m in lookup.memories(per)] == [(48, 4)] * 2
    for fam in ("xc7", "ecp5"):
        f = lookup.features(small, fam)
        assert f["exact"]["BRAM"] == 0 and f["LUT"]["rom"] > 0
        t = topk.features(_cases()["topk_int8_k16_pe4"], fam)
        assert t["exact"]["BRAM"] == 0 and t["FF"]["list"] == 16 * (8 + 4 + 1)
    # a 1024-word table: soft logic on xc7 (libmap's cost: 128 LUTs beat a RAMB18), one block
    # RAM per lane on ECP5 (Yosys did the same)
    assert lookup.features(big, "xc7")["exact"]["BRAM"] == 0
    assert lookup.features(big, "ecp5")["exact"]["BRAM"] == 2


def _act_table(idt, odt, fn, s_in, s_out):
    y = np.round(fn(_levels(idt) * s_in) / s_out)
    return np.clip(y, odt.min, odt.max).astype(np.int64)


def _silu(v):
    return v / (1 + np.exp(-v))


def _hswish(v):
    return v * np.clip(v + 3, 0, 6) / 6


def _gelu(v):
    return 0.5 * v * (1 + np.tanh(0.79788456 * (v + 0.044715 * v ** 3)))


def _synthesised():
    """Units synthesised alone with Yosys 0.70 (``synth_xilinx -flatten -noiopad -family xc7``,
    ``synth_ecp5`` with LUTs mapped for area, as ``streamfold synth`` runs it) and their resources: {name: (unit, {family: (LUT, FF, BRAM)})}."""
    def lk(shape, idt, odt, fn, pe, per_channel=False):
        s_in, s_out = 8.0 / (idt.max - idt.min + 1), 4.0 / odt.max
        if per_channel:
            t = np.stack([_act_table(idt, odt, fn, s_in * (0.5 + c / shape[-1]), s_out)
                          for c in range(shape[-1])])
        else:
            t = _act_table(idt, odt, fn, s_in, s_out)
        return LookupUnit("lk", shape, idt, odt, t, pe=pe)

    return {
        "lookup_int10_silu_pe2": (lk((8, 8, 16), DataType.int_type(10), INT8, _gelu, 2),
                                  {"xc7": (152, 17, 0), "ecp5": (2, 1, 2)}),
        "lookup_int3_hswish_perchan_pe8": (lk((4, 4, 32), INT3, INT4, _hswish, 8, True),
                                           {"xc7": (36, 35, 0), "ecp5": (68, 35, 0)}),
        "lookup_uint6_gelu_perchan_pe1": (lk((8, 8, 8), DataType.uint_type(6), DataType.int_type(6),
                                             _gelu, 1, True), {"xc7": (66, 9, 0), "ecp5": (5, 4, 1)}),
        "topk_c10_int8_k5": (TopKUnit("tk", (10,), INT8, k=5), {"xc7": (141, 101, 0), "ecp5": (186, 101, 0)}),
        "topk_c64_uint4_k16_pe4": (TopKUnit("tk", (64,), UINT4, k=16, pe=4),
                                   {"xc7": (1341, 299, 0), "ecp5": (1562, 299, 0)}),
    }


@pytest.mark.parametrize("name", list(_synthesised()))
def test_fitted_coefficients_against_yosys(name):
    """The kinds' ``YOSYS_FIT`` coefficients (``default_coef`` is the xc7 one) on their
    features, against what Yosys gave: BRAM exact, FF within one, LUT within the fit's error."""
    u, got = _synthesised()[name]
    k = kind_of(u)
    fit = (lookup if u.kind == "lookup" else topk).YOSYS_FIT
    assert k.default_coef == fit["xc7"]
    for fam, (lut, ff, bram) in got.items():
        f = k.features(u, fam)
        est = {r: sum(fit[fam][r][n] * v for n, v in f[r].items()) for r in ("LUT", "FF")}
        assert abs(est["FF"] - ff) <= 1 and f["exact"]["BRAM"] == bram
        assert abs(est["LUT"] - lut) <= 0.55 * lut + 2, (fam, est["LUT"], lut)


# ----------------------------------------------------------------------------- Verilator
@needs_verilator
@pytest.mark.parametrize("which", ["lookup_int10_perchan_files", "lookup_then_topk"])
def test_in_verilator(which):
    """Through the top level, random gaps and back-pressure: a per-channel 10-bit table whose
    ROMs are ``$readmemh`` files; a classifier's last activation (HardSwish, many ties) into a
    width converter (2 -> 5 elements) and its label selection (k = 3 > 2 beats per vector: the
    bubble)."""
    rng = np.random.default_rng(3)
    if which == "lookup_int10_perchan_files":  # 2 lanes x 2 groups x 1024 words
        u = lookup_unit((3, 4), DataType.int_type(10), DataType.int_type(7), pe=2,
                        per_channel=True, seed=7)
        g, rom = DataflowGraph([u]), "file"
    else:
        act = lookup_unit((10,), INT4, INT4, pe=2, fn=hardswish)
        g, rom = DataflowGraph([act, TopKUnit("sel", (10,), INT4, k=3, pe=5)]), "auto"
    res = check_pipeline(g, 16, rng, p_gap=0.3, p_stall=0.3, rom=rom)
    if rom == "file":
        assert len(res["design"].files) == 2  # one memory file per lane


@needs_verilator
def test_verilog_lints(tmp_path):
    from unit_cases import lint_units

    lint_units({n: _cases()[n] for n in CASES}, tmp_path)

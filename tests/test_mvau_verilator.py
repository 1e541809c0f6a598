"""The matrix-vector unit alone, in Verilator: random shapes, bit widths 1..8 (signed, unsigned,
bipolar), thresholds or raw output, and foldings, under random gaps and back-pressure."""
from __future__ import annotations

import numpy as np
import pytest

from streamfold.compiler.cost import unit_cycles
from streamfold.compiler.ir import DataflowGraph

from unit_cases import check_pipeline, random_mvau

CASES = [
    # (seed, knobs)
    (1, dict(wbits=1, wsigned=True, ibits=1, isigned=True, out_bits=1)),        # XNOR-popcount, bipolar out
    (2, dict(wbits=1, wsigned=True, ibits=1, isigned=True, raw=True)),          # popcount raw
    (3, dict(wbits=8, wsigned=True, ibits=8, isigned=False, out_bits=4)),       # widest
    (4, dict(wbits=2, wsigned=True, ibits=3, isigned=True, pe=1, simd=1)),      # fully serial
    (5, dict(mw=12, mh=6, wbits=4, wsigned=False, ibits=1, isigned=True, pe=6, simd=12)),  # fully parallel
    (6, dict(wbits=5, wsigned=True, ibits=2, isigned=False, raw=True, rows_shape=(3,))),
    (7, dict(wbits=1, wsigned=True, ibits=4, isigned=False, out_bits=3, rows_shape=(2, 2))),
    (8, dict(wbits=7, wsigned=False, ibits=6, isigned=True, out_bits=2)),
    # one weight per lane: products built as shifts and adds of constants (hw/elements.py)
    (9, dict(mw=16, mh=8, wbits=6, wsigned=True, ibits=5, isigned=True, pe=8, simd=16, out_bits=3)),
    (10, dict(mw=9, mh=4, wbits=8, wsigned=False, ibits=8, isigned=False, pe=4, simd=9, raw=True)),
    (11, dict(mw=10, mh=5, wbits=1, wsigned=True, ibits=4, isigned=False, pe=5, simd=10, out_bits=2)),
    (12, dict(mw=12, mh=3, wbits=8, wsigned=True, ibits=3, isigned=False, pe=3, simd=12, raw=True)),
]


@pytest.mark.parametrize("seed,knobs", CASES, ids=[f"case{c[0]}" for c in CASES])
def test_mvau_random(seed, knobs):
    rng = np.random.default_rng(seed)
    unit = random_mvau(rng, **knobs)
    pipe = DataflowGraph([unit], [2, 2])
    out = check_pipeline(pipe, frames=6, rng=rng, seed=seed)
    # full rate: the unit's own cycle count per frame
    full = check_pipeline(pipe, frames=6, rng=rng, p_gap=0.0, p_stall=0.0, seed=seed)
    assert full["measure"].ii == unit_cycles(unit)
    assert out["result"].cycles >= full["result"].cycles


def test_signed_digits_rebuild_every_weight():
    """The shift-and-add form of a constant weight: exact, non-adjacent, as short as binary."""
    from streamfold.compiler.units.dot_product import signed_digits
    for w in range(-(1 << 9), 1 << 9):
        d = signed_digits(w)
        assert sum(s << k for k, s in d) == w
        shifts = [k for k, _ in d]
        assert all(b - a >= 2 for a, b in zip(shifts, shifts[1:]))
        assert len(d) <= bin(abs(w)).count("1")
    assert signed_digits(0) == [] and signed_digits(-128) == [(7, -1)] and signed_digits(7) == [(0, -1), (3, 1)]


#: register stages (``tree_stages`` in the adder tree, ``out_stages`` in the threshold compares
#: and their count): (seed, knobs, tree_stages, out_stages); some ask for more registers than the
#: tree has levels, which the hardware adds at the tree's end
STAGED = [
    (21, dict(mw=24, mh=8, wbits=3, wsigned=True, ibits=4, isigned=False, pe=4, simd=12, out_bits=3), 2, 1),
    (22, dict(mw=32, mh=4, wbits=1, wsigned=True, ibits=1, isigned=True, pe=2, simd=32, out_bits=1), 3, 2),
    (23, dict(mw=16, mh=6, wbits=5, wsigned=True, ibits=3, isigned=True, pe=6, simd=16, raw=True), 1, 2),
    (24, dict(mw=4, mh=4, wbits=2, wsigned=False, ibits=2, isigned=False, pe=2, simd=2, out_bits=4), 4, 3),
]
#: with registered copies of the input word for the fan-out to the PEs (one more clock edge):
#: (seed, knobs, tree_stages, out_stages, input_copies)
COPIES = [
    (25, dict(mw=32, mh=8, wbits=1, wsigned=True, ibits=1, isigned=True, pe=8, simd=32, out_bits=1), 2, 1, 4),
    (26, dict(mw=16, mh=6, wbits=4, wsigned=True, ibits=3, isigned=False, pe=3, simd=8, out_bits=2), 0, 0, 3),
    (27, dict(mw=12, mh=4, wbits=3, wsigned=False, ibits=4, isigned=True, pe=4, simd=12, raw=True), 1, 0, 2),
]
#: decoupled: free-running registers, an output buffer with credits (seed, knobs, tree, out, copies)
DECOUPLED = [
    (28, dict(mw=32, mh=8, wbits=1, wsigned=True, ibits=1, isigned=True, pe=8, simd=32, out_bits=1), 2, 1, 4),
    (29, dict(mw=16, mh=6, wbits=4, wsigned=True, ibits=3, isigned=False, pe=3, simd=4, out_bits=2), 0, 0, 0),
    (30, dict(mw=12, mh=4, wbits=3, wsigned=False, ibits=4, isigned=True, pe=4, simd=12, raw=True), 1, 2, 2),
    (35, dict(mw=8, mh=8, wbits=2, wsigned=True, ibits=2, isigned=True, pe=8, simd=8, out_bits=2), 3, 0, 8),
]


#: products in soft logic (res_type "lut": shifted partial products in the adder tree), signed and
#: unsigned weights and inputs, with the weights in a ROM (more than one word) so they are not constants
SOFT = [
    (31, dict(mw=16, mh=8, wbits=8, wsigned=True, ibits=8, isigned=False, pe=2, simd=4, out_bits=3)),
    (32, dict(mw=12, mh=6, wbits=5, wsigned=False, ibits=7, isigned=True, pe=3, simd=6, raw=True)),
    (33, dict(mw=9, mh=4, wbits=8, wsigned=True, ibits=8, isigned=True, pe=1, simd=3, raw=True)),
    (34, dict(mw=8, mh=8, wbits=3, wsigned=True, ibits=2, isigned=False, pe=4, simd=2, out_bits=2)),
]


@pytest.mark.parametrize("seed,knobs", SOFT, ids=[f"lut{c[0]}" for c in SOFT])
def test_mvau_products_in_soft_logic(seed, knobs):
    rng = np.random.default_rng(seed)
    unit = random_mvau(rng, **knobs).replace(res_type="lut")
    pipe = DataflowGraph([unit], [2, 2])
    check_pipeline(pipe, frames=5, rng=rng, seed=seed)
    full = check_pipeline(pipe, frames=4, rng=rng, p_gap=0.0, p_stall=0.0, seed=seed)
    assert full["measure"].ii == unit_cycles(unit)


def _latencies(units, rng, seed, frames=3):
    """Per unit, at full rate in Verilator: (measured latency, the schedule's latency), after
    checking the measured cycles per frame against the cost model."""
    from streamfold.compiler.fifo_sizing import unit_timeline
    from streamfold.sim.run import measure

    out = []
    for u in units:
        r = check_pipeline(DataflowGraph([u], [2, 2]), frames=frames, rng=rng, p_gap=0.0, p_stall=0.0, seed=seed)
        m = measure(r["result"])
        assert m.ii == unit_cycles(u)
        reads, outs = unit_timeline(u, np.zeros(frames * u.in_stream.beats_per_frame, dtype=np.int64), frames)
        out.append((m.latency, int(outs[u.out_stream.beats_per_frame - 1] - reads[0])))
    return out


@pytest.mark.parametrize("seed,knobs,tree,out,copies,decoupled",
                         [c + (0, 0) for c in STAGED] + [c + (0,) for c in COPIES] + [c + (1,) for c in DECOUPLED],
                         ids=[f"stages{c[0]}" for c in STAGED + COPIES] + [f"decoupled{c[0]}" for c in DECOUPLED])
def test_mvau_register_stages(seed, knobs, tree, out, copies, decoupled):
    """Bit-exact under gaps and back-pressure with the stages in; at full rate the same cycles
    per frame, and the latency grows by exactly the registers added, as the schedule predicts."""
    from streamfold.compiler.units.dot_product import DECOUPLED_LATENCY

    rng = np.random.default_rng(seed)
    plain = random_mvau(rng, **knobs)
    staged = plain.replace(tree_stages=tree, out_stages=out, input_copies=copies, decoupled=decoupled)
    check_pipeline(DataflowGraph([staged], [2, 2]), frames=5, rng=rng, seed=seed)
    (m0, s0), (m1, s1) = _latencies([plain, staged], rng, seed, frames=4)
    extra = tree + out + (copies > 1) + DECOUPLED_LATENCY * decoupled
    assert m1 - m0 == extra and s1 - s0 == extra


#: narrow-range types (Brevitas' default weights: INT2N is -1..1): the products keep only the
#: bits their range needs (hw.elements.product), in a ROM (several words per lane), a soft
#: multiplier and a DSP-sized one; thresholds and raw sums
NARROW = [
    (41, "INT2N", "INT2N", 3, 4, 3),
    (42, "INT2N", "UINT2", 2, 4, 0),
    (43, "INT4N", "INT3N", 1, 6, 2),
    (44, "INT8N", "UINT8", 3, 2, 0),
]


@pytest.mark.parametrize("seed,wdt,idt,pe,simd,out_bits", NARROW, ids=[f"narrow{c[0]}" for c in NARROW])
def test_mvau_narrow_range_products(seed, wdt, idt, pe, simd, out_bits):
    from streamfold.compiler.ir import DataType, MatrixVectorUnit

    from unit_cases import random_values
    rng = np.random.default_rng(seed)
    wd, xd = DataType.parse(wdt), DataType.parse(idt)
    u = MatrixVectorUnit("mvau", random_values(rng, wd, (6, 12)), wd, xd, wd, pe=pe, simd=simd)
    if out_bits:
        lo, hi = u.acc_range
        odt = DataType(out_bits, False)
        u.thresholds = np.sort(rng.integers(lo - 1, hi + 2, size=(6, odt.max)), axis=1)
        u.out_dtype, u.out_bias = odt, 0
    else:
        u.out_dtype = u.acc_dtype
    assert wd.min == -wd.max  # narrow: the most negative code never occurs
    check_pipeline(DataflowGraph([u], [2, 2]), frames=5, rng=rng, seed=seed)


#: lane-local weight registers (``local_weights``): the few-word weight ROM read into one register
#: per weight bit, with register stages, input copies and the decoupled mode around it
#: (seed, knobs, tree, copies, decoupled)
LOCAL_WEIGHTS = [
    (51, dict(mw=32, mh=8, wbits=1, wsigned=True, ibits=1, isigned=True, pe=4, simd=16, out_bits=1), 1, 2, 1),
    (52, dict(mw=16, mh=6, wbits=3, wsigned=True, ibits=2, isigned=False, pe=3, simd=8, out_bits=2), 2, 0, 0),
    (53, dict(mw=12, mh=4, wbits=2, wsigned=True, ibits=3, isigned=True, pe=2, simd=4, raw=True), 0, 2, 0),
]


@pytest.mark.parametrize("seed,knobs,tree,copies,decoupled", LOCAL_WEIGHTS, ids=[f"local{c[0]}" for c in LOCAL_WEIGHTS])
def test_mvau_local_weight_registers(seed, knobs, tree, copies, decoupled):
    """Bit-exact under gaps and back-pressure; the same cycles per frame and latency as the ROM
    read it replaces (one register either way)."""
    from streamfold.compiler.rom_images import mvau_weight_image

    rng = np.random.default_rng(seed)
    base = random_mvau(rng, **knobs).replace(tree_stages=tree, input_copies=copies, decoupled=decoupled)
    assert mvau_weight_image(base).in_rom and mvau_weight_image(base).depth > 1
    local = base.replace(local_weights=1)
    check_pipeline(DataflowGraph([local], [2, 2]), frames=5, rng=rng, seed=seed)
    (m0, s0), (m1, s1) = _latencies([base, local], rng, seed)
    assert m1 == m0 and s1 == s0


#: a weight address per PE lane (``lane_addresses``): the few-word ROM stays logic of the address,
#: each lane reading its own copy; with partial products in soft logic (the demo's conv1 at 100
#: MHz), stages, input copies and the decoupled mode: (seed, knobs, tree, copies, decoupled, res_type)
LANE_ADDRESSES = [
    (71, dict(mw=32, mh=8, wbits=2, wsigned=True, ibits=2, isigned=False, pe=4, simd=16, out_bits=2), 2, 2, 1, "lut"),
    (72, dict(mw=16, mh=6, wbits=3, wsigned=True, ibits=2, isigned=False, pe=3, simd=8, out_bits=2), 1, 0, 0, "lut"),
    (74, dict(mw=24, mh=4, wbits=2, wsigned=True, ibits=2, isigned=False, pe=2, simd=6, out_bits=2), 2, 2, 0, "lut"),
    (73, dict(mw=32, mh=8, wbits=1, wsigned=True, ibits=1, isigned=True, pe=4, simd=8, out_bits=1), 0, 0, 0, "auto"),
]


@pytest.mark.parametrize("seed,knobs,tree,copies,decoupled,res_type", LANE_ADDRESSES,
                         ids=[f"laneaddr{c[0]}" for c in LANE_ADDRESSES])
def test_mvau_lane_addresses(seed, knobs, tree, copies, decoupled, res_type):
    """Bit-exact under gaps and back-pressure; the same cycles per frame and latency as the ROM
    read it replaces (one register either way)."""
    from streamfold.compiler.rom_images import mvau_weight_image

    rng = np.random.default_rng(seed)
    base = random_mvau(rng, **knobs).replace(tree_stages=tree, input_copies=copies, decoupled=decoupled,
                                             res_type=res_type)
    assert mvau_weight_image(base).in_rom and mvau_weight_image(base).depth > 1
    # one copy per lane, or (seed 74) four per lane over its six SIMD elements (groups of 1 and 2)
    lanes = base.replace(lane_addresses=4 if seed == 74 else 1)
    check_pipeline(DataflowGraph([lanes], [2, 2]), frames=5, rng=rng, seed=seed)
    (m0, s0), (m1, s1) = _latencies([base, lanes], rng, seed)
    assert m1 == m0 and s1 == s0


#: a register after the weight memory's read, the input word delayed to match (``weight_register``),
#: alone and with stages, input copies and the decoupled mode: (seed, knobs, tree, copies, decoupled)
WEIGHT_REGISTER = [
    (61, dict(mw=16, mh=8, wbits=3, wsigned=True, ibits=2, isigned=False, pe=2, simd=4, out_bits=2), 0, 0, 0),
    (62, dict(mw=32, mh=8, wbits=1, wsigned=True, ibits=1, isigned=True, pe=4, simd=8, out_bits=1), 2, 2, 0),
    (63, dict(mw=12, mh=6, wbits=4, wsigned=False, ibits=3, isigned=True, pe=3, simd=4, raw=True), 1, 0, 1),
]


@pytest.mark.parametrize("seed,knobs,tree,copies,decoupled", WEIGHT_REGISTER,
                         ids=[f"wreg{c[0]}" for c in WEIGHT_REGISTER])
def test_mvau_weight_register(seed, knobs, tree, copies, decoupled):
    """Bit-exact under gaps and back-pressure; the same cycles per frame; one clock edge more
    latency than without (none more when input copies already add theirs), as the schedule says."""
    rng = np.random.default_rng(seed)
    base = random_mvau(rng, **knobs).replace(tree_stages=tree, input_copies=copies, decoupled=decoupled)
    reg = base.replace(weight_register=1)
    check_pipeline(DataflowGraph([reg], [2, 2]), frames=5, rng=rng, seed=seed)
    (m0, s0), (m1, s1) = _latencies([base, reg], rng, seed)
    extra = 0 if copies > 1 else 1
    assert m1 - m0 == extra and s1 - s0 == extra

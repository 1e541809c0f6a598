"""The join units' hardware (``hw/fork.py``, ``hw/add.py``, ``hw/concat.py``) and the standalone
threshold unit (``hw/thresholding.py``) in Amaranth's simulator.

For several configurations of each kind (folds 1 and > 1; signed, unsigned and bipolar data; an
add with and without thresholds, its threshold ROM, scale factors other than 1; concats of 2 and
3 inputs; forks of 2 and 3 outputs):

* random valid gaps on every input and random back-pressure on every output: every output
  integer is the kind's reference (:func:`streamfold.compiler.topology.run_unit`), every frame,
  nothing lost or duplicated;
* random input gaps, no back-pressure: the cycle every input beat is taken and every output beat
  leaves is the one the kind's ``timeline`` predicts (the FIFO sizing's schedule);
* the Verilog of each component lints in Verilator.
"""
from __future__ import annotations

import gc
import random
import warnings

import numpy as np
import pytest

from streamfold.compiler.ir import BIPOLAR, AddUnit, ConcatUnit, DataType, ForkUnit, ThresholdUnit
from streamfold.compiler.topology import run_unit
from streamfold.compiler.units import kind_of
from streamfold.sim.streams import pack, unpack

from test_fifo_sizing import _avail
from unit_cases import needs_verilator, random_values

INT2, INT3, INT4 = (DataType.int_type(b) for b in (2, 3, 4))
UINT1, UINT2, UINT3, UINT4 = (DataType.uint_type(b) for b in (1, 2, 3, 4))


# ----------------------------------------------------------------------------- configurations
def add_unit(shape, a, b, a_mul=1, b_mul=1, pe=1, n_thr=None, out=None, seed=0):
    """An add; ``n_thr`` thresholds per channel (None: the raw sum, in the narrowest type that
    holds it), drawn a little beyond the sum's range; ``out``: the thresholded output type
    (default: the one ``n_thr`` steps need, biased to start at its minimum)."""
    u = AddUnit("add", tuple(shape), a, b, BIPOLAR, a_mul=a_mul, b_mul=b_mul, pe=pe)
    lo, hi = u.acc_range
    if n_thr is None:
        u.out_dtype = DataType.for_range(lo, hi)
        return u
    rng = np.random.default_rng(seed)
    u.thresholds = np.sort(rng.integers(lo - 2, hi + 3, size=(shape[-1], n_thr)), axis=1)
    if out is None:
        out = BIPOLAR if n_thr == 1 else DataType.for_range(-(n_thr // 2), n_thr - n_thr // 2)
    u.out_dtype, u.out_bias = out, (0 if out.bipolar else out.min)
    return u


def threshold_unit(shape, dt, pe=1, n_thr=3, out=None, seed=0):
    """A threshold unit with ``n_thr`` thresholds per channel a little beyond ``dt``'s range."""
    rng = np.random.default_rng(seed)
    out = out or (BIPOLAR if n_thr == 1 else DataType.for_range(-(n_thr // 2), n_thr - n_thr // 2))
    thr = np.sort(rng.integers(dt.min - 1, dt.max + 2, size=(shape[-1], n_thr)), axis=1)
    return ThresholdUnit("thr", tuple(shape), dt, out, thr, 0 if out.bipolar else out.min, pe=pe)


def _cases():
    return {
        "thr_int4_rom_pe2": threshold_unit((3, 2, 6), INT4, pe=2, n_thr=7, seed=5),
        "thr_uint3_const_pe4": threshold_unit((2, 4), UINT3, pe=4, n_thr=3, seed=6),
        "thr_bipolar_out_pe1": threshold_unit((2, 2, 3), INT2, pe=1, n_thr=1, seed=7),
        "fork2_int4_pe1": ForkUnit("f", (3, 2, 4), INT4, 2, pe=1),
        "fork3_uint3_pe2": ForkUnit("f", (2, 3, 6), UINT3, 3, pe=2),
        "fork2_bipolar_pe4": ForkUnit("f", (5, 8), BIPOLAR, 2, pe=4),
        "add_int4_int4_pe1": add_unit((3, 3, 4), INT4, INT4),
        "add_uint3x3_int2x-2_pe2": add_unit((2, 3, 6), UINT3, INT2, 3, -2, pe=2),
        "add_int3x-5_uint2x7_pe3": add_unit((2, 2, 6), INT3, UINT2, -5, 7, pe=3),
        "add_bipolar_int3_pe2": add_unit((4, 4), BIPOLAR, INT3, 2, 1, pe=2),
        "add_thr_rom_pe2": add_unit((3, 2, 6), INT4, UINT2, 1, 2, pe=2, n_thr=3, seed=1),
        "add_thr_rom_pe1_mul-1": add_unit((2, 2, 3), INT3, INT3, -1, 3, pe=1, n_thr=6, seed=2),
        "add_thr_const_pe4": add_unit((3, 3, 4), UINT2, INT2, 2, 1, pe=4, n_thr=7, seed=3),
        "add_bipolar_out_rom": add_unit((2, 2, 8), BIPOLAR, BIPOLAR, 1, -1, pe=2, n_thr=1, seed=4),
        "add_no_thresholds_per_channel": add_unit((3, 4), INT2, INT2, pe=2, n_thr=0,
                                                  out=DataType.int_type(2)),
        "concat2_int3_uint2_pe1": ConcatUnit("c", (2, 3), (2, 3), (INT3, UINT2), DataType.int_type(5)),
        "concat3_pe2": ConcatUnit("c", (3,), (4, 2, 6), (UINT2, INT4, UINT4), DataType.int_type(5), pe=2),
        "concat2_bipolar_pe4": ConcatUnit("c", (2, 2), (4, 8), (BIPOLAR, BIPOLAR), BIPOLAR, pe=4),
        "concat3_vector_pe3": ConcatUnit("c", (), (3, 6, 3), (INT2, INT3, UINT1), INT4, pe=3),
    }


CASES = list(_cases())


# ----------------------------------------------------------------------------- multi-port runner
def _ports(dut, direction: str, n: int) -> list:
    from streamfold.hw.registry import port

    return [port(dut, direction, k) for k in range(n)]


def run_ports(dut, in_beats: list, n_out: list, *, p_valid: float, p_ready: float, seeds: list,
              max_cycles: int = 20_000, drain: int = 16) -> dict:
    """Amaranth simulation of a multi-port component: input port ``j`` is fed ``in_beats[j]``
    exactly as :func:`streamfold.hw.simulate.run_stream` feeds its source with seed
    ``seeds[j]`` (so ``test_fifo_sizing._avail`` replays when each beat was offered); output port
    ``q`` is ready with probability ``p_ready`` until it has ``n_out[q]`` beats, then stays
    ready for ``drain`` cycles and counts any further beat. Returns ``out``, ``in_cycles``,
    ``out_cycles`` (per port) and ``extra`` (per output port)."""
    from amaranth.hdl import ClockDomain, Module
    from amaranth.sim import Simulator

    from streamfold.hw.rom import inline_roms

    srcs, sinks = _ports(dut, "i", len(in_beats)), _ports(dut, "o", len(n_out))
    res = {"out": [[] for _ in sinks], "in_cycles": [[] for _ in srcs],
           "out_cycles": [[] for _ in sinks], "extra": [0] * len(sinks)}

    def producer(j):
        async def run(ctx):
            s, rng, cycle = srcs[j], random.Random(seeds[j] * 2 + 1), 0
            for beat in in_beats[j]:
                while rng.random() >= p_valid:
                    ctx.set(s.valid, 0)
                    await ctx.tick()
                    cycle += 1
                ctx.set(s.payload, int(beat))
                ctx.set(s.valid, 1)
                while True:
                    _, _, r = await ctx.tick().sample(s.ready)
                    cycle += 1
                    if r:
                        res["in_cycles"][j].append(cycle - 1)
                        break
            ctx.set(s.valid, 0)
        return run

    def consumer(q):
        async def run(ctx):
            s, rng, cycle = sinks[q], random.Random(seeds[0] * 2 + 2 + 1000 * q), 0
            while len(res["out"][q]) < n_out[q]:
                if cycle >= max_cycles:
                    raise TimeoutError(f"output {q}: {len(res['out'][q])} of {n_out[q]} beats "
                                       f"in {max_cycles} cycles")
                r = rng.random() < p_ready
                ctx.set(s.ready, r)
                _, _, v, d = await ctx.tick().sample(s.valid, s.payload)
                if v and r:
                    res["out"][q].append(int(d))
                    res["out_cycles"][q].append(cycle)
                cycle += 1
            ctx.set(s.ready, 1)
            for _ in range(drain):
                _, _, v = await ctx.tick().sample(s.valid)
                res["extra"][q] += int(bool(v))
        return run

    top = Module()
    top.domains.sync = ClockDomain()
    top.submodules.dut = dut
    with inline_roms():
        sim = Simulator(top)
    sim.add_clock(1e-8)
    for j in range(len(srcs)):
        sim.add_testbench(producer(j))
    for q in range(len(sinks)):
        sim.add_testbench(consumer(q))
    sim.run()
    return res


def simulate(u, frames: int, *, p_valid: float, p_ready: float, seed: int):
    """Random frames through ``u``'s hardware; asserts every output equals the reference and
    nothing extra comes out. Returns the run and the input seeds."""
    from streamfold.hw.registry import build_unit

    rng = np.random.default_rng(seed)
    ins, outs = u.input_streams(), u.output_streams()
    xs = [random_values(rng, s.dtype, (frames,) + tuple(s.shape)) for s in ins]
    want = run_unit(u, *xs)
    want = want if isinstance(want, tuple) else (want,)
    seeds = [seed * 10 + j for j in range(len(ins))]
    res = run_ports(build_unit(u), [pack(x, s) for x, s in zip(xs, ins)],
                    [frames * s.beats_per_frame for s in outs], p_valid=p_valid, p_ready=p_ready,
                    seeds=seeds)
    for q, (s, w) in enumerate(zip(outs, want)):
        assert res["extra"][q] == 0, f"output {q}: {res['extra'][q]} beats too many"
        assert len(res["out"][q]) == frames * s.beats_per_frame
        np.testing.assert_array_equal(unpack(res["out"][q], s), w, err_msg=f"output {q}")
    for j, s in enumerate(ins):
        assert len(res["in_cycles"][j]) == frames * s.beats_per_frame
    return res, seeds


# ----------------------------------------------------------------------------- tests
@pytest.mark.parametrize("name", CASES)
def test_outputs_match_reference_under_gaps_and_backpressure(name):
    u = _cases()[name]
    for seed, (pv, pr) in enumerate([(0.6, 0.5), (0.9, 0.3)]):
        simulate(u, 3, p_valid=pv, p_ready=pr, seed=seed)


@pytest.mark.parametrize("name", CASES)
def test_timeline_is_cycle_exact(name):
    """No back-pressure, random input gaps: every input beat is taken and every output beat
    leaves in the cycle the kind's ``timeline`` says."""
    u = _cases()[name]
    frames, p_valid = 3, 0.6
    res, seeds = simulate(u, frames, p_valid=p_valid, p_ready=1.0, seed=5)
    avails = [_avail(c, len(c), p_valid, s) for c, s in zip(res["in_cycles"], seeds)]
    k = kind_of(u)
    if k.multiport:
        reads, outs = k.timeline(u, avails, frames)
    else:
        r, o = k.timeline(u, avails[0], frames)
        reads, outs = [r], [o]
    assert len(reads) == len(avails) and len(outs) == len(res["out_cycles"])
    for j, (r, got) in enumerate(zip(reads, res["in_cycles"])):
        np.testing.assert_array_equal(r, got, err_msg=f"input {j}")
    for q, (o, got) in enumerate(zip(outs, res["out_cycles"])):
        np.testing.assert_array_equal(o, got, err_msg=f"output {q}")


def test_fork_slow_consumer_sets_the_pace():
    """One output never ready for a while: the other output takes one copy, then the input
    waits; nothing is lost or duplicated when the slow consumer comes back."""
    u = ForkUnit("f", (4,), UINT3, 2, pe=1)
    res, _ = simulate(u, 2, p_valid=1.0, p_ready=0.1, seed=7)
    # every input beat is taken after (or when) its last copy leaves
    last = np.maximum(*[np.array(c) for c in res["out_cycles"]])
    np.testing.assert_array_equal(np.array(res["in_cycles"][0]), last)


def test_hardware_refuses_what_it_cannot_build():
    from streamfold.hw.registry import build_unit

    u = add_unit((2, 4), INT2, INT2, n_thr=2, out=BIPOLAR)
    with warnings.catch_warnings():  # the half-built component is never elaborated
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="exactly 1 threshold"):
            build_unit(u)
        gc.collect()


@needs_verilator
def test_verilog_lints(tmp_path):
    from unit_cases import lint_units

    lint_units({n: _cases()[n] for n in CASES}, tmp_path)

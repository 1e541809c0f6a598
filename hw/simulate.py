"""Drive stream components in Amaranth's built-in simulator (unit tests of small designs).

:func:`run_stream` feeds a list of beats into a valid/ready source port and collects beats from
a sink port, with random valid gaps and random ready, and reports when each beat moved. It is
slow (a few thousand cycles per second): meant for tiny components, not networks.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

from amaranth.hdl import ClockDomain, Module
from amaranth.sim import Simulator

from .rom import inline_roms


@dataclass
class StreamRun:
    """What :func:`run_stream` observed. Cycle numbers count clock edges from 0."""

    out: list = field(default_factory=list)         # output beats (ints), in order
    in_cycles: list = field(default_factory=list)   # edge at which each input beat moved
    out_cycles: list = field(default_factory=list)  # edge at which each output beat moved
    extra_out: int = 0                              # beats offered after the expected ones
    sideband: list = field(default_factory=list)    # values of ``sideband`` signals per output beat


def run_stream(dut, in_beats, n_out: int, *, src=None, sink=None, p_valid: float = 1.0,
               p_ready: float = 1.0, seed: int = 0, max_cycles: int = 100_000,
               drain: int = 16, sideband=(), vcd: str | None = None) -> StreamRun:
    """Simulate ``dut``: push ``in_beats`` into ``src``, take ``n_out`` beats from ``sink``.

    ``src``/``sink`` are ``(payload, valid, ready)`` signal triples; by default ``dut.i`` and
    ``dut.o``. Each cycle the source offers a beat with probability ``p_valid`` (once offered, a
    beat stays until taken, as AXI-Stream requires) and the sink is ready with probability
    ``p_ready``. After the last expected beat the sink stays ready for ``drain`` cycles and counts
    any further beat in ``extra_out``. The ``sideband`` signals (e.g. a ``tlast``) are sampled
    with every output beat into ``sideband``. Raises ``TimeoutError`` after ``max_cycles``.
    """
    if src is None:
        src = (dut.i.payload, dut.i.valid, dut.i.ready)
    if sink is None:
        sink = (dut.o.payload, dut.o.valid, dut.o.ready)
    in_beats = [int(b) for b in in_beats]
    rng_in = random.Random(seed * 2 + 1)
    rng_out = random.Random(seed * 2 + 2)
    res = StreamRun()

    async def producer(ctx):
        payload, valid, ready = src
        cycle = 0
        for beat in in_beats:
            while rng_in.random() >= p_valid:
                ctx.set(valid, 0)
                await ctx.tick()
                cycle += 1
            ctx.set(payload, beat)
            ctx.set(valid, 1)
            while True:
                _, _, r = await ctx.tick().sample(ready)
                cycle += 1
                if r:
                    res.in_cycles.append(cycle - 1)
                    break
        ctx.set(valid, 0)

    async def consumer(ctx):
        payload, valid, ready = sink
        cycle = 0
        while len(res.out) < n_out:
            if cycle >= max_cycles:
                raise TimeoutError(f"got {len(res.out)} of {n_out} beats in {max_cycles} cycles")
            r = rng_out.random() < p_ready
            ctx.set(ready, r)
            _, _, v, d, *side = await ctx.tick().sample(valid, payload, *sideband)
            if v and r:
                res.out.append(int(d))
                res.sideband.append(tuple(int(x) for x in side))
                res.out_cycles.append(cycle)
            cycle += 1
        ctx.set(ready, 1)
        for _ in range(drain):
            _, _, v = await ctx.tick().sample(valid)
            res.extra_out += int(bool(v))

    top = Module()  # own the sync domain, so purely combinational DUTs simulate too
    top.domains.sync = ClockDomain()
    top.submodules.dut = dut
    with inline_roms():  # Amaranth's simulator cannot run the file-ROM Verilog module
        sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    return res

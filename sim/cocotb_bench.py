"""cocotb test module: stream frames through a design over AXI4-Stream, as ``sim/harness.cpp`` does.

Run by :func:`streamfold.sim.run.simulate_stream` (``engine="cocotb"``) through
``cocotb_tools.runner``; not a pytest module. Files are named by environment variables:

* ``STREAMFOLD_SIM_CONFIG``: JSON ``{in_bpf, expect_out, p_gap, p_stall, seed, stall_limit,
  max_cycles, reset_cycles, tail_cycles, timeout}``
* ``STREAMFOLD_SIM_IN``: input beats, hex text, one beat per line
* ``STREAMFOLD_SIM_OUT``: the JSON result written here (output beats, tlast, cycles, status, ...)

The bench is a protocol description in four parts:

* :class:`FrameDriver`: a cocotbext-axi ``AxiStreamSource`` on ``s_axis_*``. Each input frame
  (``in_bpf`` beats) is one AXI-Stream frame, so ``s_axis_tlast`` is high on its last beat; one
  beat per transfer (``byte_lanes=1``, any ``tdata`` width). Random valid gaps: a seeded pause
  generator (the source holds a presented beat until it is accepted, and only pauses between beats).
* :class:`BackPressureSink`: a cocotbext-axi ``AxiStreamSink`` on ``m_axis_*``; random
  ``m_axis_tready=0`` cycles from a second seeded pause generator, released once the run completed.
* :class:`HandshakeMonitor`: our own, because the library stamps frames with sim time only and
  delivers beats only at ``tlast``: it samples both handshakes once per cycle (ReadOnly phase) and
  records every beat that moved with its cycle number and ``tlast`` (also beats of an output frame
  whose ``tlast`` never comes), the cycle of each input frame's first beat, idle cycles (stall
  detection) and the AXI rule on the design's output (a waiting beat stays valid and unchanged).
* :class:`Scoreboard`: asserts that the design accepted exactly the input beats, in order, with
  ``tlast`` per frame, that the sink's frames are the monitor's beats, and that the output obeyed
  the AXI rule. Its findings go into the result (``scoreboard_errors``) before it asserts, so
  :mod:`streamfold.sim.run` reports them. Comparing outputs with a model is the caller's job.

Cycle numbering matches the C++ harness: ``reset_cycles`` clock edges with ``rst=1``; cycle 0 is
the first cycle after reset; a beat moves in cycle ``c`` when tvalid and tready are both high
during it, and is transferred on the rising edge that ends cycle ``c``. The run completes when
every input beat was accepted and ``expect_out`` output beats arrived, then runs ``tail_cycles``
more cycles to catch extra beats; it stops early after ``stall_limit`` cycles in which no beat
moved, after ``max_cycles``, or after ``timeout`` seconds of wall clock. Without gaps and
back-pressure the two engines agree cycle for cycle; with them the random patterns differ (the
pause generators draw once per cycle, the C++ harness once per beat presented), and the sink's
back-pressure ends one cycle after completion instead of at once.
"""
from __future__ import annotations

import itertools
import json
import logging
import os
import random
import time
import warnings
from dataclasses import dataclass

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge
from cocotbext.axi import AxiStreamBus, AxiStreamSink, AxiStreamSource

ENV_CONFIG = "STREAMFOLD_SIM_CONFIG"
ENV_IN = "STREAMFOLD_SIM_IN"
ENV_OUT = "STREAMFOLD_SIM_OUT"
MAX_REPORTED_ERRORS = 20

# cocotbext-axi 0.1 still calls APIs cocotb 2 deprecates (setimmediatevalue, Task.kill): not ours
warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"cocotbext\.axi")


def read_hex_beats(path: str) -> list[int]:
    with open(path) as f:
        return [int(line, 16) for line in f if line.strip()]


@dataclass(frozen=True)
class BenchConfig:
    in_bpf: int
    expect_out: int
    p_gap: float
    p_stall: float
    seed: int
    stall_limit: int
    max_cycles: int
    reset_cycles: int
    tail_cycles: int
    timeout: float  # seconds of wall clock for the cycle loop, 0 = none

    @classmethod
    def from_file(cls, path: str) -> "BenchConfig":
        with open(path) as f:
            cfg = json.load(f)
        return cls(
            in_bpf=max(1, int(cfg.get("in_bpf", 1))),
            expect_out=int(cfg.get("expect_out", 0)),
            p_gap=float(cfg.get("p_gap", 0.0)),
            p_stall=float(cfg.get("p_stall", 0.0)),
            seed=int(cfg.get("seed", 0)),
            stall_limit=max(1, int(cfg.get("stall_limit", 100_000))),
            max_cycles=int(cfg.get("max_cycles") or (1 << 62)),
            reset_cycles=max(1, int(cfg.get("reset_cycles", 4))),
            tail_cycles=int(cfg.get("tail_cycles", 16)),
            timeout=float(cfg.get("timeout") or 0.0),
        )


def chance(p: float, rng: random.Random):
    """Endless pause pattern: True (pause this cycle) with probability ``p``, independently."""
    return (rng.random() < p for _ in itertools.count())


def _quiet(dut, prefix: str) -> None:
    """cocotbext-axi logs every frame at INFO: keep its per-bus logger to warnings."""
    logging.getLogger(f"cocotb.{dut._name}.{prefix}").setLevel(logging.WARNING)


class FrameDriver:
    """Drives the input frames into ``s_axis_*``, with random valid gaps when ``p_gap > 0``."""

    def __init__(self, dut, beats: list[int], cfg: BenchConfig):
        self.beats = beats
        _quiet(dut, "s_axis")
        self.source = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis"), dut.clk,
                                      byte_lanes=1)
        if cfg.p_gap > 0.0:
            rng = random.Random(f"streamfold-gap-{cfg.seed}")
            self.source.set_pause_generator(chance(cfg.p_gap, rng))
        for k in range(0, len(beats), cfg.in_bpf):
            self.source.send_nowait(beats[k:k + cfg.in_bpf])  # one frame: tlast on its last beat


class BackPressureSink:
    """Takes the output stream from ``m_axis_*``, with random ``tready=0`` when ``p_stall > 0``."""

    def __init__(self, dut, cfg: BenchConfig):
        _quiet(dut, "m_axis")
        self.sink = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis"), dut.clk, byte_lanes=1)
        if cfg.p_stall > 0.0:
            rng = random.Random(f"streamfold-stall-{cfg.seed}")
            self.sink.set_pause_generator(chance(cfg.p_stall, rng))

    def release(self) -> None:
        """Always ready from the next cycle on (the tail that catches extra beats)."""
        self.sink.clear_pause_generator()
        self.sink.pause = False

    def frames(self) -> list[list[int]]:
        """Frames the sink delivered (each ended by ``m_axis_tlast``), as lists of beats."""
        out = []
        while not self.sink.empty():
            out.append(list(self.sink.recv_nowait(compact=False).tdata))
        return out


class HandshakeMonitor:
    """Samples both AXI-Stream handshakes once per cycle and stamps every beat with its cycle."""

    def __init__(self, dut, in_bpf: int):
        self.edge = RisingEdge(dut.clk)
        self.s_data, self.s_valid, self.s_ready, self.s_last = (
            dut.s_axis_tdata, dut.s_axis_tvalid, dut.s_axis_tready, dut.s_axis_tlast)
        self.m_data, self.m_valid, self.m_ready, self.m_last = (
            dut.m_axis_tdata, dut.m_axis_tvalid, dut.m_axis_tready, dut.m_axis_tlast)
        self.in_bpf = in_bpf
        self.cycle = 0  # the cycle the next sample() observes
        self.idle = 0  # cycles since a beat last moved on either side
        self.in_beats: list[int] = []  # beats the design accepted, with their tlast
        self.in_last: list[bool] = []
        self.frame_starts: list[int] = []
        self.out_beats: list[int] = []
        self.out_last: list[bool] = []
        self.out_cycles: list[int] = []
        self.handshake = (0, 0, 0, 0)  # s tvalid, s tready, m tvalid, m tready of the last cycle
        self.protocol_errors: list[str] = []
        self._waiting = None  # (tdata, tlast) of an output beat that was valid but not taken

    async def step(self) -> tuple[bool, bool]:
        """Observe the current cycle (after every driver has set it) and move to the next one."""
        await ReadOnly()
        sv, sr = int(self.s_valid.value), int(self.s_ready.value)
        mv, mr = int(self.m_valid.value), int(self.m_ready.value)
        in_fire, out_fire = bool(sv and sr), bool(mv and mr)
        c = self.cycle
        if mv:
            beat = (int(self.m_data.value), bool(int(self.m_last.value)))
            if self._waiting is not None and beat != self._waiting:
                self._error(f"cycle {c}: m_axis_tdata/tlast changed while the beat waited for tready")
            self._waiting = None if out_fire else beat
            if out_fire:
                self.out_beats.append(beat[0])
                self.out_last.append(beat[1])
                self.out_cycles.append(c)
        elif self._waiting is not None:
            self._error(f"cycle {c}: m_axis_tvalid dropped before its beat was accepted")
            self._waiting = None
        if in_fire:
            if len(self.in_beats) % self.in_bpf == 0:
                self.frame_starts.append(c)
            self.in_beats.append(int(self.s_data.value))
            self.in_last.append(bool(int(self.s_last.value)))
        self.handshake = (sv, sr, mv, mr)
        await self.edge
        self.cycle += 1
        self.idle = 0 if (in_fire or out_fire) else self.idle + 1
        return in_fire, out_fire

    def _error(self, msg: str) -> None:
        if len(self.protocol_errors) < MAX_REPORTED_ERRORS:
            self.protocol_errors.append(msg)


class Scoreboard:
    """What the bench can know without a model of the design: the input side went in as sent, the
    output side the sink saw is the one the monitor saw, and the design kept the AXI rule."""

    def __init__(self, beats: list[int], in_bpf: int):
        self.beats, self.in_bpf = beats, in_bpf

    def check(self, mon: HandshakeMonitor, sink_frames: list[list[int]]) -> list[str]:
        errors = list(mon.protocol_errors)
        n = len(mon.in_beats)
        if mon.in_beats != self.beats[:n]:
            i = next(i for i, (a, b) in enumerate(zip(mon.in_beats, self.beats)) if a != b)
            errors.append(f"input beat {i} entered as {mon.in_beats[i]:x}, sent {self.beats[i]:x}")
        want_last = [i % self.in_bpf == self.in_bpf - 1 for i in range(n)]
        if mon.in_last != want_last:
            i = next(i for i, (a, b) in enumerate(zip(mon.in_last, want_last)) if a != b)
            errors.append(f"input beat {i} entered with s_axis_tlast={int(mon.in_last[i])}")
        # the sink delivers frames at tlast: they must be the monitor's beats up to the last tlast
        ends = [i for i, last in enumerate(mon.out_last) if last]
        framed = mon.out_beats[:ends[-1] + 1] if ends else []
        if [b for f in sink_frames for b in f] != framed or \
                [len(f) for f in sink_frames] != [b - a for a, b in zip([-1] + ends, ends)]:
            errors.append(f"the AXI-Stream sink's {len(sink_frames)} frames differ from the "
                          f"{len(mon.out_beats)} output beats the monitor saw")
        return errors[:MAX_REPORTED_ERRORS]


@cocotb.test()
async def stream(dut):
    cfg = BenchConfig.from_file(os.environ[ENV_CONFIG])
    beats = read_hex_beats(os.environ[ENV_IN])
    n_in = len(beats)
    in_width, out_width = len(dut.s_axis_tdata), len(dut.m_axis_tdata)
    for i, b in enumerate(beats):
        if b >> in_width:
            raise ValueError(f"input beat {i} is wider than s_axis_tdata ({in_width} bits)")

    # reset: rst=1 for reset_cycles edges. The source and sink start one edge before its end, so
    # the first beat is offered, and tready driven, in cycle 0 (as in the C++ harness).
    dut.rst.value = 1
    dut.s_axis_tvalid.value = 0
    dut.s_axis_tlast.value = 0
    dut.s_axis_tdata.value = 0
    dut.m_axis_tready.value = 0
    Clock(dut.clk, 10, unit="ns").start()
    for _ in range(cfg.reset_cycles - 1):
        await RisingEdge(dut.clk)
    driver = FrameDriver(dut, beats, cfg)
    sink = BackPressureSink(dut, cfg)
    monitor = HandshakeMonitor(dut, cfg.in_bpf)
    scoreboard = Scoreboard(driver.beats, cfg.in_bpf)
    await RisingEdge(dut.clk)
    dut.rst.value = 0

    completed = False
    done_cycle = tail_left = extra = 0
    status = "running"
    t0 = time.perf_counter()
    c0 = time.process_time()
    while True:
        cyc = monitor.cycle
        if not completed:
            if len(monitor.in_beats) >= n_in and len(monitor.out_beats) >= cfg.expect_out:
                completed = True
                done_cycle = cyc
                tail_left = cfg.tail_cycles
                sink.release()
            elif monitor.idle >= cfg.stall_limit:
                status = "stall"
                break
            elif cyc >= cfg.max_cycles:
                status = "cycle_limit"
                break
            elif cfg.timeout and not cyc & 1023 and time.perf_counter() - t0 > cfg.timeout:
                status = "timeout"
                break
        if completed:
            if tail_left == 0:
                status = "done"
                break
            tail_left -= 1
        _, out_fire = await monitor.step()
        if out_fire and completed:
            extra += 1
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0

    errors = scoreboard.check(monitor, sink.frames())
    cyc = monitor.cycle
    sv, sr, mv, mr = monitor.handshake
    result = {
        "status": status,
        "cycles": done_cycle if completed else cyc,
        "cycles_run": cyc,
        "in_beats": n_in,
        "in_accepted": len(monitor.in_beats),
        "out_count": len(monitor.out_beats),
        "extra_out_beats": extra,
        "idle_cycles": monitor.idle,
        "s_axis_tvalid": sv,
        "s_axis_tready": sr,
        "m_axis_tvalid": mv,
        "m_axis_tready": mr,
        "in_width": in_width,
        "out_width": out_width,
        "wall_s": wall,
        "cpu_s": cpu,
        "out_beats": [format(b, "x") for b in monitor.out_beats],
        "out_last": monitor.out_last,
        "out_cycles": monitor.out_cycles,
        "in_frame_start_cycles": monitor.frame_starts,
        "scoreboard_errors": errors,
    }
    tmp = os.environ[ENV_OUT] + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f)
    os.replace(tmp, os.environ[ENV_OUT])
    assert not errors, "scoreboard: " + "; ".join(errors)

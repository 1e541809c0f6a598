"""cocotb test module: stream beats through a design, the same way ``sim/harness.cpp`` does.

Run by :func:`streamfold.sim.run.simulate_stream` (``engine="cocotb"``) through
``cocotb_tools.runner``; not a pytest module. Files are named by environment variables:

* ``STREAMFOLD_SIM_CONFIG``: JSON ``{in_bpf, expect_out, p_gap, p_stall, seed, stall_limit,
  max_cycles, reset_cycles, tail_cycles, timeout}``
* ``STREAMFOLD_SIM_IN``: input beats, hex text, one beat per line
* ``STREAMFOLD_SIM_OUT``: the JSON result written here (output beats, tlast, cycles, status, ...)

Cycle numbering matches the C++ harness: cycle 0 is the first cycle after reset; a beat moves in
cycle ``c`` when tvalid and tready are both high during it (sampled in the ReadOnly phase), and is
transferred on the rising edge that ends cycle ``c``. Random valid gaps and back-pressure come from
two seeded ``random.Random`` generators (so cycle numbers differ from the C++ engine's when gaps or
stalls are on; without them the two engines agree cycle for cycle).
"""
from __future__ import annotations

import json
import os
import random
import time

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

ENV_CONFIG = "STREAMFOLD_SIM_CONFIG"
ENV_IN = "STREAMFOLD_SIM_IN"
ENV_OUT = "STREAMFOLD_SIM_OUT"


def read_hex_beats(path: str) -> list[int]:
    with open(path) as f:
        return [int(line, 16) for line in f if line.strip()]


@cocotb.test()
async def stream(dut):
    with open(os.environ[ENV_CONFIG]) as f:
        cfg = json.load(f)
    beats = read_hex_beats(os.environ[ENV_IN])
    n_in = len(beats)
    in_bpf = max(1, int(cfg.get("in_bpf", 1)))
    expect_out = int(cfg.get("expect_out", 0))
    p_gap = float(cfg.get("p_gap", 0.0))
    p_stall = float(cfg.get("p_stall", 0.0))
    seed = int(cfg.get("seed", 0))
    stall_limit = max(1, int(cfg.get("stall_limit", 100_000)))
    max_cycles = int(cfg.get("max_cycles") or (1 << 62))
    reset_cycles = int(cfg.get("reset_cycles", 4))
    tail_cycles = int(cfg.get("tail_cycles", 16))
    wall_limit = float(cfg.get("timeout") or 0.0)  # seconds of cycle loop, 0 = none
    rng_gap = random.Random(f"streamfold-gap-{seed}")
    rng_stall = random.Random(f"streamfold-stall-{seed}")

    clk = dut.clk
    s_data, s_valid_h, s_ready_h, s_last_h = (dut.s_axis_tdata, dut.s_axis_tvalid,
                                              dut.s_axis_tready, dut.s_axis_tlast)
    m_data, m_valid_h, m_ready_h, m_last_h = (dut.m_axis_tdata, dut.m_axis_tvalid,
                                              dut.m_axis_tready, dut.m_axis_tlast)
    in_width, out_width = len(s_data), len(m_data)
    for i, b in enumerate(beats):
        if b >> in_width:
            raise ValueError(f"input beat {i} is wider than s_axis_tdata ({in_width} bits)")

    # reset
    dut.rst.value = 1
    s_valid_h.value = 0
    s_last_h.value = 0
    m_ready_h.value = 0
    s_data.value = 0
    Clock(clk, 10, unit="ns").start()
    for _ in range(max(1, reset_cycles)):
        await RisingEdge(clk)
    dut.rst.value = 0

    out_beats: list[int] = []
    out_last: list[bool] = []
    out_cycles: list[int] = []
    frame_starts: list[int] = []
    cyc = idle = done_cycle = tail_left = extra = 0
    idx = 0
    s_valid = completed = False
    cur_valid, cur_ready = 0, 0  # values currently driven (write only on change)
    st = (0, 0, 0, 0)
    status = "running"
    t0 = time.perf_counter()
    c0 = time.process_time()

    while True:
        if not completed:
            if idx >= n_in and len(out_beats) >= expect_out:
                completed = True
                done_cycle = cyc
                tail_left = tail_cycles
            elif idle >= stall_limit:
                status = "stall"
                break
            elif cyc >= max_cycles:
                status = "cycle_limit"
                break
            elif wall_limit and not cyc & 1023 and time.perf_counter() - t0 > wall_limit:
                status = "timeout"
                break
        if completed:
            if tail_left == 0:
                status = "done"
                break
            tail_left -= 1

        # drive (AXI: once valid, hold the beat until accepted)
        if not s_valid and idx < n_in and not (p_gap > 0.0 and rng_gap.random() < p_gap):
            s_valid = True
            s_data.value = beats[idx]
            s_last_h.value = 1 if idx % in_bpf == in_bpf - 1 else 0
        ready = 1 if (completed or not (p_stall > 0.0 and rng_stall.random() < p_stall)) else 0
        if s_valid != cur_valid:
            cur_valid = int(s_valid)
            s_valid_h.value = cur_valid
        if ready != cur_ready:
            cur_ready = ready
            m_ready_h.value = ready

        await ReadOnly()
        s_ready = int(s_ready_h.value)
        m_valid = int(m_valid_h.value)
        in_fire = s_valid and s_ready
        out_fire = m_valid and ready
        if out_fire:
            out_beats.append(int(m_data.value))
            out_last.append(bool(int(m_last_h.value)))
            out_cycles.append(cyc)
            if completed:
                extra += 1
        if in_fire:
            if idx % in_bpf == 0:
                frame_starts.append(cyc)
            idx += 1
            s_valid = False
        st = (1 if (s_valid or in_fire) else 0, s_ready, m_valid, ready)

        await RisingEdge(clk)
        cyc += 1
        idle = 0 if (in_fire or out_fire) else idle + 1

    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0
    result = {
        "status": status,
        "cycles": done_cycle if completed else cyc,
        "cycles_run": cyc,
        "in_beats": n_in,
        "in_accepted": idx,
        "out_count": len(out_beats),
        "extra_out_beats": extra,
        "idle_cycles": idle,
        "s_axis_tvalid": st[0],
        "s_axis_tready": st[1],
        "m_axis_tvalid": st[2],
        "m_axis_tready": st[3],
        "in_width": in_width,
        "out_width": out_width,
        "wall_s": wall,
        "cpu_s": cpu,
        "out_beats": [format(b, "x") for b in out_beats],
        "out_last": out_last,
        "out_cycles": out_cycles,
        "in_frame_start_cycles": frame_starts,
    }
    tmp = os.environ[ENV_OUT] + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f)
    os.replace(tmp, os.environ[ENV_OUT])

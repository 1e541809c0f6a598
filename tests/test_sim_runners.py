"""The simulation runners (streamfold.sim.run) on hand-written stand-in designs (tests/data).

Built models are cached in ``$STREAMFOLD_SIM_CACHE`` or ``<repo>/build/sim_cache`` (git-ignored),
so only the first run pays for the Verilator builds (3 harness + 1 cocotb model).
"""
from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import pytest

from streamfold.sim.run import measure, simulate_stream
from streamfold.sim.verilator_build import build_model, tool_env

DATA = Path(__file__).parent / "data"
STANDIN = DATA / "standin_stream.v"
REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(
    shutil.which("verilator", path=tool_env()["PATH"]) is None, reason="verilator not installed")


@pytest.fixture(scope="module")
def cache() -> Path:
    d = Path(os.environ.get("STREAMFOLD_SIM_CACHE") or REPO / "build" / "sim_cache")
    d.mkdir(parents=True, exist_ok=True)
    return d


def wide_model(x: int) -> int:  # sf_standin_wide: 200 -> 130 bits, y = 3x + 5
    return (3 * x + 5) % (1 << 130)


def wide_beats(n: int, seed: int = 1) -> list[int]:
    r = random.Random(seed)
    beats = [r.getrandbits(200) for _ in range(n)]
    beats[0] = (1 << 200) - 1  # all ones: the top bits of every 32-bit word matter
    beats[1] = 0
    return beats


def run_wide(cache, beats, **kw):
    return simulate_stream(STANDIN, "sf_standin_wide", beats, 200, 130, out_beats_per_frame=3,
                           in_beats_per_frame=3, build_dir=cache, **kw)


def test_engines_agree_on_wide_beats(cache):
    beats = wide_beats(3 * 20)
    expected = [wide_model(x) for x in beats]
    res = {eng: run_wide(cache, beats, engine=eng) for eng in ("verilator", "cocotb")}
    for eng, r in res.items():
        assert r.complete and not r.stalled and r.status == "done", (eng, r.stall)
        assert r.out_beats == expected, eng
        assert r.tlast_errors() == [], eng
        assert r.extra_out_beats == 0
        m = measure(r)
        assert (m.ii, m.ii_steady, m.latency, m.frames) == (3.0, 3.0, 3, 20), eng
    a, b = res["verilator"], res["cocotb"]
    # no gaps, no back-pressure: the two benches agree cycle for cycle
    assert a.out_cycles == b.out_cycles
    assert a.in_frame_start_cycles == b.in_frame_start_cycles == list(range(0, 60, 3))
    assert a.cycles == b.cycles == 61


@pytest.mark.parametrize("engine,seeds", [("verilator", (1, 2, 3, 4)), ("cocotb", (5,))])
def test_gaps_and_backpressure_keep_outputs(cache, engine, seeds):
    beats = wide_beats(3 * 30, seed=7)
    expected = [wide_model(x) for x in beats]
    base = run_wide(cache, beats, engine=engine)
    for seed in seeds:
        for p_gap, p_stall in ((0.5, 0.0), (0.0, 0.5), (0.3, 0.6)):
            r = run_wide(cache, beats, engine=engine, p_gap=p_gap, p_stall=p_stall, seed=seed)
            assert r.complete, r.stall
            assert r.out_beats == expected
            assert r.tlast_errors() == []
            assert r.cycles > base.cycles
            assert len(r.in_frame_start_cycles) == 30
    # same seed, same run
    r1 = run_wide(cache, beats, engine=engine, p_gap=0.3, p_stall=0.3, seed=11)
    r2 = run_wide(cache, beats, engine=engine, p_gap=0.3, p_stall=0.3, seed=11)
    assert r1.out_cycles == r2.out_cycles


def test_qdata_ports(cache):
    # 40-bit in, 64-bit out (Verilator QData), y = 7x + 1 mod 2^64, frames of 5 beats
    r = random.Random(3)
    beats = [r.getrandbits(40) for _ in range(50)] + [(1 << 40) - 1] * 5
    res = simulate_stream(STANDIN, "sf_standin_q64", beats, 40, 64, 5, 5, build_dir=cache,
                          p_gap=0.2, p_stall=0.2, seed=9)
    assert res.complete
    assert res.out_beats == [(7 * x + 1) % (1 << 64) for x in beats]
    assert res.tlast_errors() == []


def test_deadlocked_design_reports_stall(cache):
    beats = list(range(8))
    r = simulate_stream(STANDIN, "sf_standin_deadlock", beats, 8, 8, 4, 4, build_dir=cache,
                        stall_limit=1000)
    # ended by the no-progress limit (counted in cycles), not by running on: no wall-clock bound,
    # which a loaded machine breaks
    assert r.cycles_run <= 1000 + 100
    assert r.stalled and not r.complete and r.status == "stall"
    assert r.out_beats == [] and r.in_accepted == 8
    assert r.cycles_run == 8 + 1000
    assert "no beat moved" in r.stall and "m_axis_tvalid=0" in r.stall and "8/8 input" in r.stall
    # a cycle limit also ends the run
    r = simulate_stream(STANDIN, "sf_standin_deadlock", beats, 8, 8, 4, 4, build_dir=cache,
                        stall_limit=10**9, max_cycles=5000)
    assert r.stalled and r.status == "cycle_limit" and r.cycles_run == 5000


@pytest.mark.parametrize("engine", ["verilator", "cocotb"])
def test_sink_never_ready_reports_stall(cache, engine):
    beats = wide_beats(3 * 4)
    r = run_wide(cache, beats, engine=engine, p_stall=1.0, stall_limit=500)
    assert r.stalled and r.status == "stall"
    assert r.out_beats == []
    assert r.in_accepted == 2  # the 2-deep skid buffer filled, then input stopped
    assert r.handshake == {"s_axis_tvalid": 1, "s_axis_tready": 0,
                           "m_axis_tvalid": 1, "m_axis_tready": 0}
    assert "s_axis_tvalid=1 s_axis_tready=0 m_axis_tvalid=1 m_axis_tready=0" in r.stall


def test_build_is_cached(cache):
    m = build_model(STANDIN, "sf_standin_wide", "harness", cache)
    assert m.cached and m.build_seconds == 0.0 and m.executable.exists()


def test_wrong_widths_and_bad_beats_are_rejected(cache):
    with pytest.raises(ValueError, match="port widths"):
        simulate_stream(STANDIN, "sf_standin_wide", [1, 2, 3], 100, 130, 3, 3, build_dir=cache)
    with pytest.raises(ValueError, match="does not fit"):
        simulate_stream(STANDIN, "sf_standin_wide", [1 << 200, 0, 0], 200, 130, 3, 3,
                        build_dir=cache)
    with pytest.raises(ValueError, match="whole frames"):
        simulate_stream(STANDIN, "sf_standin_wide", [1, 2], 200, 130, 3, 3, build_dir=cache)


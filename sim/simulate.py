"""``streamfold simulate``: stream frames through a build's Verilog and check every integer.

The float inputs go through the model's host-side input steps, stream through the generated
hardware in Verilator, and every output integer is compared with the NumPy reference of the unit
pipeline. With random valid gaps or back-pressure requested, a second full-rate run measures the
initiation interval and latency (gaps would otherwise be measured too); both runs are checked.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from streamfold.compiler.build_folder import TOP_NAME, VERILOG_FILE, read_design
from streamfold.compiler.errors import BuildError, SimulationError
from streamfold.compiler.ir import dumps
from streamfold.compiler.model import CompiledModel

from .reference import run_pipeline
from .streams import pack, unpack

ENGINES = ("auto", "verilator", "cocotb")


def axis_width(bits: int) -> int:
    """AXI4-Stream tdata width: the beat rounded up to whole bytes."""
    return max(8, -(-bits // 8) * 8)


@dataclass
class RunCheck:
    engine: str
    p_gap: float
    p_stall: float
    seed: int
    cycles: int
    mismatches: int
    first_mismatch: dict | None
    tlast_ok: bool
    stalled: bool
    stall_report: str = ""
    frame_end_cycles: list = field(default_factory=list)
    first_in_cycles: list = field(default_factory=list)
    stall_diagnosis: dict | None = None  # streams and FIFO levels of a stalled run (sim/stall.py)


def _check_run(res, cm: CompiledModel, expected: np.ndarray, frames: int, engine, p_gap, p_stall, seed):
    out = cm.pipeline.out_stream
    mask = (1 << out.beat_bits) - 1
    n_beats = frames * out.beats_per_frame
    beats = [int(b) & mask for b in res.out_beats[:n_beats]]
    mism, first = 0, None
    got = None
    if len(beats) == n_beats:
        got = unpack(beats, out)
        diff = got != expected
        mism = int(diff.sum())
        if mism:
            idx = np.argwhere(diff)[0]
            first = {"frame": int(idx[0]), "index": [int(i) for i in idx[1:]],
                     "expected": int(expected[tuple(idx)]), "got": int(got[tuple(idx)])}
    else:
        mism = int(expected.size)
        first = {"missing_beats": n_beats - len(beats)}
    lasts = list(res.out_last[:n_beats])
    want_last = [(i + 1) % out.beats_per_frame == 0 for i in range(n_beats)]
    ends = [c for c, last in zip(res.out_cycles, res.out_last) if last]
    return got, RunCheck(engine, p_gap, p_stall, seed, int(res.cycles), mism, first,
                         lasts == want_last, bool(res.stalled), res.stall or "",
                         [int(c) for c in ends], [int(c) for c in res.in_frame_start_cycles])


def measure_timing(check: RunCheck, strips: int = 1) -> tuple[float | None, int | None]:
    """Initiation interval (median gap between frame ends over the later half) and first-frame
    latency. A tiled build streams ``strips`` strips per frame: the interval is per strip times
    ``strips``, and the first frame ends with its last strip."""
    ends = check.frame_end_cycles
    ii = None
    if len(ends) >= 2:
        gaps = np.diff(ends)
        ii = float(np.median(gaps[len(gaps) // 2:])) * strips
    lat = None
    if len(ends) >= strips and check.first_in_cycles:
        lat = int(ends[strips - 1] - check.first_in_cycles[0] + 1)
    return ii, lat


def simulate_build(build, x: np.ndarray, *, engine: str = "auto", p_gap: float = 0.2,
                   p_stall: float = 0.2, seed: int = 1, log=None, stall_limit: int | None = None,
                   cache_dir=None) -> dict:
    """Simulate ``x`` (float inputs, batch first) on the build; return the sim report.

    Verilator models are cached in ``cache_dir`` (default ``$STREAMFOLD_SIM_CACHE``, else
    ``BUILD/sim_build``), keyed by the Verilog and its memory files, so simulating the same design
    again does not rebuild. The report holds the hardware's outputs ("outputs", model float space), its integers
    ("hw_integers"), and the figures that go to ``sim.json``.
    """
    from .run import simulate_stream

    build = Path(build)
    if not (0.0 <= p_gap < 1.0):
        raise SimulationError(f"gap probability {p_gap} (--gaps) must be in [0, 1): at 1 no beat "
                              "would ever be offered")
    if not (0.0 <= p_stall <= 1.0):
        raise SimulationError(f"back-pressure probability {p_stall} (--stalls) must be in [0, 1]")
    cm = CompiledModel.load(build)
    vfile = build / VERILOG_FILE
    if not vfile.exists():
        raise BuildError(f"{build}: no {VERILOG_FILE}; compile again with `streamfold compile`")
    _, data_files = read_design(build)  # the memory files of large ROMs, next to the Verilog
    xin = cm.to_strips(cm.quantize_input(x))  # a tiled build streams each frame as its strips
    per = cm.strips_per_frame
    frames = xin.shape[0]
    if frames < 1:
        raise SimulationError("the input holds no frames")
    expected = run_pipeline(cm.pipeline, xin)
    ins, outs = cm.pipeline.in_stream, cm.pipeline.out_stream
    beats = pack(xin, ins)
    from streamfold.compiler.fifo_sizing import expected_pace
    cycles_expected, bottleneck = expected_pace(cm.pipeline)
    if engine == "auto":
        engine = "verilator" if frames > 4 else "cocotb"
    if engine not in ENGINES:
        raise SimulationError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    limit = stall_limit or max(10_000, 20 * cycles_expected)
    runs = [(p_gap, p_stall)] if (p_gap, p_stall) == (0.0, 0.0) else [(p_gap, p_stall), (0.0, 0.0)]

    def cycle_bound(pg: float, ps: float) -> int:
        """A run ends within this many cycles even if beats keep trickling (a livelock): 50x the
        expected time at the requested gap and back-pressure rates, plus the stall limit."""
        rate = (1.0 - pg) * max(1e-3, 1.0 - ps)
        return int(limit + 50 * (frames + 2) * (cycles_expected + outs.beats_per_frame) / rate)
    import os

    cache = Path(cache_dir or os.environ.get("STREAMFOLD_SIM_CACHE") or build / "sim_build")
    checks, got = [], None
    for pg, ps in runs:
        t0 = time.monotonic()
        res = simulate_stream(vfile, TOP_NAME, beats, axis_width(ins.beat_bits), axis_width(outs.beat_bits),
                              outs.beats_per_frame, ins.beats_per_frame, engine=engine, p_gap=pg,
                              p_stall=ps, seed=seed, build_dir=cache, stall_limit=limit,
                              max_cycles=cycle_bound(pg, ps), data_files=data_files)
        g, chk = _check_run(res, cm, expected, frames, engine, pg, ps, seed)
        if got is None and g is not None:
            got = g
        checks.append(chk)
        if log:
            what = "stalled" if chk.stalled else "bit-exact" if chk.mismatches == 0 else \
                f"{chk.mismatches} mismatches"
            log(f"{engine}: {frames if per == 1 else f'{frames} strips of {frames // per}'} frames, {res.cycles} cycles (gaps {pg}, back-pressure {ps}) in "
                f"{time.monotonic() - t0:.1f} s: {what}")
        if res.stalled:
            diag = _diagnose_stall(cm, res, frames, vfile, beats, dict(
                in_width=axis_width(ins.beat_bits), out_width=axis_width(outs.beat_bits),
                out_bpf=outs.beats_per_frame, in_bpf=ins.beats_per_frame, p_gap=pg, p_stall=ps,
                seed=seed, build_dir=cache, stall_limit=limit, max_cycles=cycle_bound(pg, ps),
                data_files=data_files), log)
            chk.stall_report, chk.stall_diagnosis = diag.text, diag.to_json()
    timing = checks[-1]
    ii, lat = measure_timing(timing, per)
    exact = all(c.mismatches == 0 and c.tlast_ok and not c.stalled for c in checks)
    cycles_expected *= per
    report = {
        "frames": frames // per,
        "engine": engine,
        "bit_exact": exact,
        "expected_cycles_per_frame": cycles_expected,
        "bottleneck": bottleneck,
        "measured_cycles_per_frame": ii,
        "ii_error": None if ii is None else round(ii / cycles_expected - 1, 4),
        "latency_cycles": lat,
        "runs": [c.__dict__ | {"frame_end_cycles": c.frame_end_cycles[:64],
                               "first_in_cycles": c.first_in_cycles[:64]} for c in checks],
    }
    if per > 1:
        report["strips_per_frame"] = per
        report["expected_cycles_per_strip"] = cycles_expected // per
        if got is not None:
            got = cm.from_strips(got)
        expected = cm.from_strips(expected)
    outputs = cm.dequantize_output(got) if got is not None else None
    return {"report": report, "outputs": outputs, "hw_integers": got, "expected_integers": expected,
            "model": cm}


def _diagnose_stall(cm: CompiledModel, res, frames: int, vfile, beats, kw: dict, log):
    """Re-run a stalled simulation with a probing harness (same design, seed and limits, so the
    same state) and explain it (:mod:`streamfold.sim.stall`); without probes when that fails."""
    from .run import PROBE_BUILD, simulate_stream
    from .stall import diagnose

    probed = res
    if not res.probes:
        if log:
            log("the design stalled: re-running it with internal probes to find the stuck stream")
        try:
            probed = simulate_stream(vfile, TOP_NAME, beats, kw["in_width"], kw["out_width"],
                                     kw["out_bpf"], kw["in_bpf"], engine="verilator",
                                     p_gap=kw["p_gap"], p_stall=kw["p_stall"], seed=kw["seed"],
                                     build_dir=kw["build_dir"], stall_limit=kw["stall_limit"],
                                     max_cycles=kw["max_cycles"], data_files=kw["data_files"],
                                     **PROBE_BUILD)
            if not probed.stalled:  # another engine's random pattern did not reproduce it
                probed = res
        except Exception as e:  # the diagnosis must never hide the stall itself
            if log:
                log(f"probing the stall failed ({type(e).__name__}: {e}); reporting the top level only")
            probed = res
    return diagnose(cm.pipeline, probed, TOP_NAME, frames)


def write_sim_json(build, report: dict) -> Path:
    p = Path(build) / "sim.json"
    p.write_text(dumps(report))
    return p


def load_input(path) -> np.ndarray:
    from streamfold.compiler.errors import StreamfoldError

    p = Path(path)
    if not p.exists():
        raise StreamfoldError(f"{p}: no such input file")
    if p.is_dir():
        raise StreamfoldError(f"{p}: is a folder, expected a .npy file of inputs")
    try:
        with open(p, "rb") as f:
            head = f.read(6)
    except OSError as e:
        raise StreamfoldError(f"{p}: cannot read ({e.strerror or e})") from None
    if head[:2] == b"PK":
        raise StreamfoldError(f"{p}: is an .npz archive; pass one array saved with numpy.save")
    if head != b"\x93NUMPY":
        raise StreamfoldError(f"{p}: not a NumPy .npy file (no .npy header); save the inputs with "
                              "numpy.save")
    try:
        return np.load(p, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        why = "it holds Python objects, not numbers" if "pickle" in str(e) else \
            str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
        raise StreamfoldError(f"{p}: not a readable NumPy .npy array ({why})") from None


def read_sim_json(build) -> dict:
    return json.loads((Path(build) / "sim.json").read_text())

"""Stream frames of beats through a Verilog design: one API, two engines.

* ``engine="verilator"`` (default): the plain C++ harness (``sim/harness.cpp``) compiled with the
  design; no Python per cycle (millions of cycles per second).
* ``engine="cocotb"``: the cocotb test module ``streamfold.sim.cocotb_bench`` on a Verilator build,
  run through ``cocotb_tools.runner`` (tens of thousands of cycles per second; an independent
  second bench, and the place to add cocotb-side checks). It drives and sinks the streams with
  cocotbext-axi; its scoreboard also checks the AXI-Stream rule on ``m_axis`` (a beat waiting for
  tready stays valid and unchanged): a violation raises :class:`SimulationError`.

The design must have the streamfold port contract: ``clk``, ``rst`` (active-high synchronous),
``s_axis_tdata/tvalid/tready/tlast`` and ``m_axis_tdata/tvalid/tready/tlast``, any widths.

Both engines share these rules:

* ``reset_cycles`` cycles with ``rst=1``, then cycle 0.
* The source presents beat after beat; before presenting a beat it idles one cycle with
  probability ``p_gap`` (repeatedly), and once ``s_axis_tvalid`` is high it holds the beat until it
  is accepted (AXI-Stream rule). ``s_axis_tlast`` is high on every ``in_beats_per_frame``-th beat.
* The sink drives ``m_axis_tready=0`` in a cycle with probability ``p_stall`` (``p_stall=1``: never
  ready, to provoke a stall).
* A beat moves in cycle ``c`` when tvalid and tready are both high during cycle ``c``.
* The run completes when every input beat was accepted and ``frames * out_beats_per_frame``
  output beats arrived; ``tail_cycles`` more cycles (ready high) catch beats beyond that
  (``extra_out_beats``, also appended to ``out_beats``). It stops early, with ``stalled=True``,
  when no beat moved on either side for ``stall_limit`` cycles, or after ``max_cycles``.
"""
from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

# the one SimulationError (a StreamfoldError: the CLI prints it as one line); also importable
# from here, as before
from streamfold.compiler.errors import SimulationError

from .verilator_build import (DataFiles, Model, VerilogSource, build_model, default_build_dir,
                              link_data_files)

ENGINES = ("verilator", "cocotb")
COCOTB_TEST_MODULE = "streamfold.sim.cocotb_bench"
DEFAULT_STALL_LIMIT = 100_000
#: build options of a harness that reports internal stream handshakes and FIFO levels in its
#: summary ("probes"): pass as simulate_stream(..., **PROBE_BUILD); a separate cached build
PROBE_BUILD = {"verilator_args": ("--public-flat-rw",), "cflags": "-std=c++17 -DSTREAMFOLD_PROBES"}
#: files of a run directory (the simulator's working directory, which also holds the memory files)
_RUN_FILES = frozenset({"in.hex", "out.txt", "frames.txt", "summary.json", "config.json",
                        "result.json", "sim.log", "results.xml"})


@dataclass
class StreamResult:
    """What came out of the design, and when."""

    out_beats: list  # output beats (Python ints), in order, including any extra beats
    out_last: list  # m_axis_tlast of each output beat
    out_cycles: list  # cycle in which each output beat moved
    in_frame_start_cycles: list  # cycle in which each input frame's first beat was accepted
    cycles: int  # cycles from the end of reset until the last expected output beat (inclusive)
    stalled: bool  # True when the run ended without completing (stall or cycle limit)
    stall: str  # description of why it stopped ("" when complete)
    status: str  # "done" | "stall" | "cycle_limit" | "finish" ($finish) | "timeout" (cocotb)
    engine: str
    in_beats_per_frame: int
    out_beats_per_frame: int
    in_beats_total: int
    in_accepted: int
    expected_out_beats: int
    extra_out_beats: int = 0
    sim_seconds: float = 0.0  # wall time of the cycle loop alone
    sim_cpu_seconds: float = 0.0  # CPU time of the cycle loop (simulator process)
    run_seconds: float = 0.0  # wall time of the whole simulation call (without building)
    build_seconds: float = 0.0  # time spent building now (0 when the cached model was reused)
    cycles_run: int = 0  # all cycles simulated after reset (includes the tail)
    handshake: dict = field(default_factory=dict)  # s/m tvalid/tready in the last cycle simulated
    #: [scope, signal, value] of internal handshakes and FIFO levels at the end (harness built
    #: with PROBE_BUILD, see streamfold.sim.simulate's stall diagnosis), else empty
    probes: list = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.stalled

    @property
    def frames_in(self) -> int:
        return self.in_beats_total // self.in_beats_per_frame

    @property
    def frames_out(self) -> int:
        """Complete output frames received (counted in beats, not from tlast)."""
        return len(self.out_beats) // self.out_beats_per_frame

    @property
    def frame_end_cycles(self) -> list:
        """Cycle of the last beat of each complete output frame (counted in beats)."""
        n = self.out_beats_per_frame
        return [self.out_cycles[k * n + n - 1] for k in range(self.frames_out)]

    @property
    def cycles_per_second(self) -> float:
        return self.cycles_run / self.sim_seconds if self.sim_seconds > 0 else float("nan")

    def tlast_errors(self) -> list:
        """Where ``m_axis_tlast`` disagrees with ``out_beats_per_frame`` (empty list = correct)."""
        n = self.out_beats_per_frame
        return [(i, bool(last)) for i, last in enumerate(self.out_last)
                if bool(last) != (i % n == n - 1)]

    def frames(self) -> list:
        """Output beats grouped into frames (an incomplete last frame is dropped)."""
        n = self.out_beats_per_frame
        return [self.out_beats[k * n:(k + 1) * n] for k in range(self.frames_out)]


@dataclass
class Measurement:
    """Timing figures of a run (see :func:`measure`)."""

    ii: float | None  # median cycles between successive output-frame ends
    ii_steady: float | None  # mean of those differences over the later frames
    latency: int | None  # first frame: cycles from its first input beat accepted to its last output beat
    frames: int
    frame_end_cycles: list


def measure(result: StreamResult, steady_from: float = 0.5) -> Measurement:
    """Initiation interval and latency of a run.

    * ``ii``: median of the differences between successive output-frame end cycles.
    * ``ii_steady``: mean of the differences over frames from ``steady_from`` (a fraction) of the
      run onward, i.e. after the pipeline filled.
    * ``latency``: for the first frame, ``last output beat cycle - first input beat accepted cycle``
      (a beat that enters in cycle c and leaves in cycle c+1 has latency 1). Meaningful when run
      without gaps and back-pressure.

    Needs at least two complete output frames for the II (else ``None``).
    """
    ends = result.frame_end_cycles
    diffs = [b - a for a, b in zip(ends, ends[1:])]
    ii = float(statistics.median(diffs)) if diffs else None
    ii_steady = None
    if diffs:
        start = min(int(len(diffs) * steady_from), len(diffs) - 1)
        tail = diffs[start:]
        ii_steady = sum(tail) / len(tail)
    latency = None
    if ends and result.in_frame_start_cycles:
        latency = ends[0] - result.in_frame_start_cycles[0]
    return Measurement(ii, ii_steady, latency, len(ends), ends)


def initiation_interval(result: StreamResult) -> float | None:
    return measure(result).ii


def latency(result: StreamResult) -> int | None:
    return measure(result).latency


# ----------------------------------------------------------------------------- helpers
def _port_bytes(width: int) -> int:
    """Bytes Verilator uses for a port of this width (CData/SData/IData/QData/VlWide)."""
    if width <= 8:
        return 1
    if width <= 16:
        return 2
    if width <= 32:
        return 4
    if width <= 64:
        return 8
    return 4 * ((width + 31) // 32)


def _check_beats(in_beats: Sequence[int], in_width: int) -> list:
    beats = list(map(int, in_beats))
    top = 1 << in_width
    if beats and (min(beats) < 0 or max(beats) >= top):
        i, b = next((i, b) for i, b in enumerate(beats) if b < 0 or b >= top)
        raise ValueError(f"input beat {i} = {b} does not fit in {in_width} unsigned bits")
    return beats


def _stall_text(status: str, s: dict, in_total: int, expect_out: int, n_out: int,
                stall_limit: int, max_cycles) -> str:
    if status == "done":
        return ""
    why = {
        "stall": f"no beat moved on either side for {stall_limit} cycles",
        "cycle_limit": f"cycle limit {max_cycles} reached",
        "finish": "the design called $finish",
        "timeout": "wall-clock timeout reached",
    }.get(status, status)
    return (f"{why} (stopped at cycle {s.get('cycles_run')}): {s.get('in_accepted')}/{in_total} "
            f"input beats accepted, {n_out}/{expect_out} output beats received; last cycle "
            f"s_axis_tvalid={s.get('s_axis_tvalid')} s_axis_tready={s.get('s_axis_tready')} "
            f"m_axis_tvalid={s.get('m_axis_tvalid')} m_axis_tready={s.get('m_axis_tready')}")


def _tail(path: Path, n: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


def _sim_error(message: str, details: str = "") -> SimulationError:
    """A :class:`SimulationError` whose message is one line (the CLI prints it as is); the
    simulator's output goes into a note, which tracebacks (``--debug``, pytest) show."""
    e = SimulationError(" ".join(message.split()))
    details = details.strip()
    if details and hasattr(e, "add_note"):  # Python 3.11+
        e.add_note(details)
    return e


# ----------------------------------------------------------------------------- API
def simulate_stream(
    verilog: VerilogSource,
    top: str,
    in_beats: Sequence[int],
    in_width: int,
    out_width: int,
    out_beats_per_frame: int,
    in_beats_per_frame: int,
    *,
    engine: str = "verilator",
    p_gap: float = 0.0,
    p_stall: float = 0.0,
    seed: int = 0,
    build_dir: str | Path | None = None,
    stall_limit: int = DEFAULT_STALL_LIMIT,
    max_cycles: int | None = None,
    reset_cycles: int = 4,
    tail_cycles: int = 16,
    timeout: float | None = None,
    keep_files: bool = False,
    quiet_build: bool = False,
    cflags: str = "-std=c++17",
    verilator_args: Sequence[str] = (),
    data_files: DataFiles | None = None,
) -> StreamResult:
    """Stream ``in_beats`` (whole input frames) through ``top`` and collect the output stream.

    ``verilog``: a file path, Verilog text, a sequence of either, or a
    :class:`streamfold.hw.VerilogDesign` (its ``verilog`` text and its memory ``files``).
    ``data_files``: memory files the design reads with ``$readmemh`` (bare file name -> text or
    bytes; e.g. ``emit_design(...).files``); files a Verilog *file* names are also picked up from
    its folder, and a referenced file found nowhere raises ``FileNotFoundError``. They are part of
    the model's cache hash, and both engines run with the per-run directory, which holds them, as
    working directory (``$readmemh`` resolves names there). ``build_dir``: where built
    models are cached (default ``$STREAMFOLD_SIM_CACHE`` or ``~/.cache/streamfold/sim``).
    ``timeout``: wall-clock seconds (a last resort; the cycle and no-progress limits normally end
    a stuck run): the C++ harness process is killed and :class:`SimulationError` raised; the cocotb
    bench stops its loop and returns with ``status="timeout"``. ``keep_files``: keep the per-run directory
    (inputs, outputs, logs) under ``build_dir/runs`` and report it on stderr. ``cflags`` (C++
    compiler) and ``verilator_args`` (extra Verilator options) go to the build, and into its hash.
    """
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}: one of {ENGINES}")
    if in_beats_per_frame < 1 or out_beats_per_frame < 1:
        raise ValueError("beats per frame must be at least 1")
    if not (0.0 <= p_gap < 1.0):
        raise ValueError("p_gap must be in [0, 1)")
    if not (0.0 <= p_stall <= 1.0):
        raise ValueError("p_stall must be in [0, 1] (1: the sink is never ready)")
    if in_width < 1 or out_width < 1:
        raise ValueError("widths must be at least 1 bit")
    beats = _check_beats(in_beats, in_width)
    if len(beats) % in_beats_per_frame:
        raise ValueError(f"{len(beats)} input beats are not whole frames of {in_beats_per_frame}")
    frames = len(beats) // in_beats_per_frame
    expect_out = frames * out_beats_per_frame

    if hasattr(verilog, "verilog") and hasattr(verilog, "files"):  # a VerilogDesign
        data_files = {**verilog.files, **(data_files or {})}
        verilog = verilog.verilog
    clash = sorted(set(data_files or ()) & _RUN_FILES)
    if clash:
        raise ValueError(f"memory file name {clash[0]!r} is reserved for the simulation run")
    build_dir = Path(build_dir) if build_dir is not None else default_build_dir()
    model = build_model(verilog, top, "harness" if engine == "verilator" else "cocotb", build_dir,
                        quiet=quiet_build, cflags=cflags, extra_args=verilator_args,
                        data_files=data_files)
    runs = build_dir.resolve() / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    rundir = Path(tempfile.mkdtemp(prefix=f"{engine}-{top[:40]}-", dir=runs))
    cfg = dict(in_bpf=in_beats_per_frame, expect_out=expect_out, p_gap=p_gap, p_stall=p_stall,
               seed=seed, stall_limit=stall_limit, max_cycles=max_cycles,
               reset_cycles=reset_cycles, tail_cycles=tail_cycles, timeout=timeout)
    t0 = time.monotonic()
    try:
        (rundir / "in.hex").write_text("\n".join(map("{:x}".format, beats)) + "\n")
        link_data_files(model, rundir)  # $readmemh reads them from the working directory
        if engine == "verilator":
            s, outs, lasts, ocycles, fstarts = _run_harness(model, rundir, cfg, in_width, out_width,
                                                            timeout)
        else:
            s, outs, lasts, ocycles, fstarts = _run_cocotb(model, rundir, cfg, in_width, out_width,
                                                           timeout)
    finally:
        if keep_files:
            print(f"streamfold: simulation files kept in {rundir}", file=sys.stderr)
        else:
            shutil.rmtree(rundir, ignore_errors=True)
    run_seconds = time.monotonic() - t0

    status = s["status"]
    return StreamResult(
        out_beats=outs,
        out_last=lasts,
        out_cycles=ocycles,
        in_frame_start_cycles=fstarts,
        cycles=int(s["cycles"]),
        stalled=status != "done",
        stall=_stall_text(status, s, len(beats), expect_out, len(outs), stall_limit, max_cycles),
        status=status,
        engine=engine,
        in_beats_per_frame=in_beats_per_frame,
        out_beats_per_frame=out_beats_per_frame,
        in_beats_total=len(beats),
        in_accepted=int(s["in_accepted"]),
        expected_out_beats=expect_out,
        extra_out_beats=int(s.get("extra_out_beats", 0)),
        sim_seconds=float(s.get("wall_s", 0.0)),
        sim_cpu_seconds=float(s.get("cpu_s", 0.0)),
        run_seconds=run_seconds,
        build_seconds=model.build_seconds,
        cycles_run=int(s.get("cycles_run", s["cycles"])),
        probes=list(s.get("probes", [])),
        handshake={k: int(s[k]) for k in ("s_axis_tvalid", "s_axis_tready", "m_axis_tvalid",
                                          "m_axis_tready") if k in s},
    )


def _run_harness(model: Model, rundir: Path, cfg: dict, in_width: int, out_width: int, timeout):
    cmd = [str(model.executable), "--in", "in.hex", "--in-format", "hex", "--out", "out.txt",
           "--frames", "frames.txt", "--summary", "summary.json",
           "--in-bpf", str(cfg["in_bpf"]), "--expect-out", str(cfg["expect_out"]),
           "--p-gap", repr(float(cfg["p_gap"])), "--p-stall", repr(float(cfg["p_stall"])),
           "--seed", str(int(cfg["seed"]) & ((1 << 64) - 1)),
           "--stall-limit", str(cfg["stall_limit"]),
           "--reset-cycles", str(cfg["reset_cycles"]), "--tail-cycles", str(cfg["tail_cycles"])]
    if cfg["max_cycles"]:
        cmd += ["--max-cycles", str(cfg["max_cycles"])]
    try:
        r = subprocess.run(cmd, cwd=rundir, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise _sim_error(f"harness of {model.top} ran past the {timeout} s timeout") from None
    summary = rundir / "summary.json"
    if r.returncode != 0 or not summary.exists():
        err = r.stderr.strip().splitlines()
        why = f": {err[-1][:200]}" if err else ""
        raise _sim_error(f"harness of {model.top} failed (exit {r.returncode}){why}",
                         f"{r.stderr[-3000:]}{r.stdout[-2000:]}")
    s = json.loads(summary.read_text())
    if s["in_port_bytes"] != _port_bytes(in_width) or s["out_port_bytes"] != _port_bytes(out_width):
        raise ValueError(
            f"{model.top}: port widths do not match in_width={in_width}/out_width={out_width} "
            f"(Verilator holds s_axis_tdata in {s['in_port_bytes']} bytes, m_axis_tdata in "
            f"{s['out_port_bytes']} bytes)")
    toks = (rundir / "out.txt").read_text().split()
    ocycles = list(map(int, toks[0::3]))
    lasts = [t == "1" for t in toks[1::3]]
    outs = [int(t, 16) for t in toks[2::3]]
    fstarts = [int(l) for l in (rundir / "frames.txt").read_text().split()]
    return s, outs, lasts, ocycles, fstarts


def _run_cocotb(model: Model, rundir: Path, cfg: dict, in_width: int, out_width: int, timeout):
    from cocotb_tools.runner import get_runner

    from .verilator_build import _patched_environ, tool_env

    (rundir / "config.json").write_text(json.dumps(cfg))
    out_json = rundir / "result.json"
    extra_env = {
        "STREAMFOLD_SIM_CONFIG": str(rundir / "config.json"),
        "STREAMFOLD_SIM_IN": str(rundir / "in.hex"),
        "STREAMFOLD_SIM_OUT": str(out_json),
    }
    env = tool_env()
    env.update(extra_env)  # the runner lets os.environ override extra_env: put them in both
    log = rundir / "sim.log"
    with _patched_environ(env):
        runner = get_runner("verilator")
        try:
            runner.test(
                test_module=COCOTB_TEST_MODULE,
                hdl_toplevel=model.top,
                hdl_toplevel_lang="verilog",
                build_dir=model.dir,
                test_dir=rundir,
                extra_env=extra_env,
                results_xml=str(rundir / "results.xml"),
                timescale=("1ns", "1ps"),
                log_file=log,
            )
        except (SystemExit, RuntimeError) as e:
            if not out_json.exists():
                raise _sim_error(f"cocotb run of {model.top} failed ({e!r})", _tail(log)) from None
    if not out_json.exists():
        raise _sim_error(f"cocotb run of {model.top} wrote no result", _tail(log))
    s = json.loads(out_json.read_text())
    if s["in_width"] != in_width or s["out_width"] != out_width:
        raise ValueError(f"{model.top}: s_axis_tdata is {s['in_width']} bits and m_axis_tdata "
                         f"{s['out_width']} bits, not in_width={in_width}/out_width={out_width}")
    errors = s.get("scoreboard_errors") or []
    if errors:  # the bench's own checks: the AXI-Stream rule on the output, the input as sent
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise _sim_error(f"cocotb bench of {model.top}: {errors[0]}{more}", "\n".join(errors))
    outs = [int(h, 16) for h in s["out_beats"]]
    return s, outs, [bool(x) for x in s["out_last"]], list(s["out_cycles"]), list(s["in_frame_start_cycles"])

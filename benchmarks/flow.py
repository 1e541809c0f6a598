"""Benchmark of the whole flow on CNV-W1A1 and the digits models: compile time, Verilator build
time, simulation speed (cycles/s and frames/s of simulation), line-buffer memory per conv layer.

    .venv/bin/python benchmarks/flow.py [--frames N] [--board pynq-z1] [--models cnv_1w1a digits_w2a2 ...]

Prints a table and writes benchmarks/results/flow.json. Wall-clock figures depend on the machine
and its load; cycle counts do not.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def _model(name: str, tmp: Path) -> tuple[Path, np.ndarray]:
    if name.startswith("digits"):
        d = np.load(ROOT / "examples/models/digits_test.npz")
        return ROOT / f"examples/models/{name}.onnx", d["x"].astype(np.float32)
    from models import export_model, random_inputs

    return export_model(name, tmp / f"{name}.onnx"), random_inputs(name, 64, seed=0)


def bench(name: str, frames: int, board: str | None, tmp: Path) -> dict:
    from streamfold.compiler.build import compile_model
    from streamfold.compiler.tiling import line_buffers
    from streamfold.sim.simulate import simulate_build

    path, x = _model(name, tmp)
    x = x[:frames]
    build = tmp / f"build_{name}"
    t0 = time.monotonic()
    cm, report = compile_model(path, build, board=board)
    t_compile = time.monotonic() - t0
    cache = tmp / "simcache"
    t0 = time.monotonic()
    res = simulate_build(build, x[:1], engine="verilator", p_gap=0.0, p_stall=0.0, cache_dir=cache)
    t_build = time.monotonic() - t0  # mostly the Verilator build (one frame simulated)
    t0 = time.monotonic()
    res = simulate_build(build, x, engine="verilator", p_gap=0.0, p_stall=0.0, cache_dir=cache)
    t_sim = time.monotonic() - t0
    rep = res["report"]
    cycles = rep["runs"][-1]["cycles"]
    lb = [dict(row, in_shape=list(cm.pipeline.unit(row["layer"]).in_shape),
               kernel=list(cm.pipeline.unit(row["layer"]).kernel))
          for row in line_buffers(cm.pipeline) if row["kind"] != "maxpool"]
    return {
        "model": name, "frames": len(x), "board": board,
        "compile_s": round(t_compile, 2), "verilator_build_s": round(t_build, 2),
        "simulate_s": round(t_sim, 2), "cycles": cycles,
        "sim_cycles_per_s": round(cycles / t_sim), "sim_frames_per_s": round(len(x) / t_sim, 2),
        "expected_cycles_per_frame": rep["expected_cycles_per_frame"],
        "measured_cycles_per_frame": rep["measured_cycles_per_frame"],
        "bit_exact": rep["bit_exact"],
        "hw_fps_at_clock": round(report["totals"]["clock_mhz"] * 1e6 / rep["measured_cycles_per_frame"]),
        "line_buffers": lb,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["digits_w2a2", "digits_w1a1", "cnv_1w1a"])
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--board", default="pynq-z1")
    a = ap.parse_args(argv)
    out = []
    with tempfile.TemporaryDirectory() as t:
        for m in a.models:
            r = bench(m, a.frames, a.board, Path(t))
            out.append(r)
            print(f"{m}: compile {r['compile_s']} s, Verilator build {r['verilator_build_s']} s, "
                  f"{r['frames']} frames simulated in {r['simulate_s']} s = {r['sim_cycles_per_s']:,} cycles/s, "
                  f"{r['sim_frames_per_s']} frames/s; hardware {r['measured_cycles_per_frame']} cycles/frame "
                  f"(expected {r['expected_cycles_per_frame']}) = {r['hw_fps_at_clock']:,} frames/s; "
                  f"bit-exact {r['bit_exact']}", flush=True)
            for lb in r["line_buffers"]:
                print(f"    {lb['layer']}: input {lb['in_shape']} kernel {lb['kernel']}: "
                      f"{lb['bits']:,} bits = {lb['bram18']} BRAM18")
    dest = ROOT / "benchmarks/results"
    dest.mkdir(exist_ok=True)
    (dest / "flow.json").write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

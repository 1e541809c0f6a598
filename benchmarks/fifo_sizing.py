"""FIFO sizing benchmark: measured cycles per frame in Verilator with the analysed FIFO depths and
with unbounded (one frame deep) FIFOs, against the cost model's bottleneck.

    .venv/bin/python benchmarks/fifo_sizing.py                      # digits W2A2 and W1A1, 3 folds
    .venv/bin/python benchmarks/fifo_sizing.py --models digits_w2a2 --frames 30
    .venv/bin/python benchmarks/fifo_sizing.py --cnv                # also CNV-W1A1 (slow compile)
    .venv/bin/python benchmarks/fifo_sizing.py --models --cnv --cnv-lanes 64 256 --old

Per model and fold it prints: expected cycles/frame (bottleneck), measured with the analysed
depths, measured with every FIFO one frame deep, the old rule (SF + 2 in front of MVAUs) for
reference, total FIFO bits, analysis time, and whether a run with random gaps and back-pressure
(p=0.3) was bit-exact without stalling.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from streamfold.compiler.build import lower_file, write_build  # noqa: E402
from streamfold.compiler.cost import pipeline_cycles  # noqa: E402
from streamfold.compiler.fifo_sizing import analyse_fifos, fifo_report  # noqa: E402
from streamfold.compiler.ir import DataflowGraph  # noqa: E402
from streamfold.sim.simulate import simulate_build  # noqa: E402

SIM_CACHE = os.environ.get("STREAMFOLD_SIM_CACHE") or str(ROOT / "build" / "sim_cache")

#: alternative folds of the digits models (the default fold is the third)
DIGITS_FOLDS = {
    "serial-ish": {"conv0": {"pe": 2, "simd": 3}, "conv1": {"pe": 2, "simd": 8},
                   "conv2": {"pe": 1, "simd": 4}, "fc0": {"pe": 1, "simd": 1}},
    "fast": {"conv0_win": {"simd": 1}, "conv0": {"pe": 8, "simd": 3}, "conv1_win": {"simd": 8},
             "conv1": {"pe": 8, "simd": 16}, "pool0": {"pe": 2}, "conv2": {"pe": 4, "simd": 8},
             "fc0": {"pe": 2, "simd": 4}},
}


def deep_depths(p: DataflowGraph) -> list:
    """Every FIFO one frame of its stream deep: as good as unbounded for these pipelines."""
    d = [max(2, u.in_stream.beats_per_frame) for u in p.units]
    return d + [max(2, p.out_stream.beats_per_frame)]


def old_rule(p: DataflowGraph) -> list:
    return [2] + [2 + (u.synapse_fold if u.kind == "mvau" else 0) for u in p.units[1:]] + [2]


def inputs(cm, frames: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, size=(frames,) + tuple(cm.input_shape[1:])).astype(np.float32)


def measure(cm, depths, frames: int, build: Path, p: float = 0.0, seed: int = 1) -> dict:
    """Compile ``cm`` with ``depths``, simulate; (measured cycles/frame, bit-exact, stalled)."""
    cm.pipeline = DataflowGraph(list(cm.pipeline.units), list(depths))
    write_build(cm, build)
    res = simulate_build(build, inputs(cm, frames), engine="verilator", p_gap=p, p_stall=p,
                         seed=seed, cache_dir=SIM_CACHE)
    rep = res["report"]
    return {"ii": rep["measured_cycles_per_frame"], "exact": rep["bit_exact"],
            "stalled": any(r["stalled"] for r in rep["runs"]), "latency": rep["latency_cycles"]}


def run_case(model: Path, fold: dict | None, label: str, frames: int, random_run: bool, old: bool,
             work: Path) -> dict:
    cm = lower_file(model, fold)
    p = cm.pipeline
    exp, bottleneck = pipeline_cycles(p)
    t0 = time.monotonic()
    an = analyse_fifos(p)
    t_an = time.monotonic() - t0
    sized = list(p.fifo_depths)
    bits = sum(r["bits"] for r in fifo_report(p))
    row = {"model": model.stem, "fold": label, "expected": exp, "bottleneck": bottleneck,
           "depths": sized, "fifo_bits": bits, "analysis_s": round(t_an, 3), "modes": an.modes, "earliest_bits": an.earliest_bits}
    b = work / f"{model.stem}_{label}"
    row["sized"] = measure(cm, sized, frames, b / "sized")
    if random_run:
        row["sized_random"] = measure(cm, sized, min(frames, 12), b / "sized", p=0.3)
    deep = deep_depths(p)
    row["deep_bits"] = sum(r["bits"] for r in fifo_report(DataflowGraph(p.units, deep)))
    row["deep"] = measure(cm, deep, frames, b / "deep")
    if old:
        row["old"] = measure(cm, old_rule(p), frames, b / "old")
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*", default=["digits_w2a2", "digits_w1a1"])
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--cnv", action="store_true", help="also CNV-W1A1 (needs brevitas; slow)")
    ap.add_argument("--cnv-frames", type=int, default=6)
    ap.add_argument("--cnv-lanes", type=int, nargs="*", default=[],
                    help="also CNV folds from default_fold(lanes=...) (e.g. 64 256)")
    ap.add_argument("--no-random", action="store_true", help="skip the gaps/back-pressure run")
    ap.add_argument("--old", action="store_true", help="also measure the old rule")
    ap.add_argument("--json", help="write the rows to this file")
    ap.add_argument("--work", help="build folder root (default: a temporary folder)")
    args = ap.parse_args(argv)
    work = Path(args.work or tempfile.mkdtemp(prefix="fifo_bench_"))
    rows = []
    cases = []
    for name in args.models:
        m = ROOT / "examples" / "models" / f"{name}.onnx"
        cases += [(m, None, "default")] + [(m, f, k) for k, f in DIGITS_FOLDS.items()]
    if args.cnv:
        from models import export_model

        from streamfold.compiler.folding import default_fold

        m = Path(export_model("cnv_1w1a", work / "cnv_1w1a.onnx"))
        cases.append((m, None, "default"))
        base = lower_file(m).pipeline
        for lanes in args.cnv_lanes:
            f = {u.name: u.folding() for u in default_fold(base, lanes=lanes).units if u.folding()}
            cases.append((m, f, f"lanes{lanes}"))
    hdr = (f"{'model':12s} {'fold':10s} {'expected':>9s} {'sized':>9s} {'err':>7s} {'deep':>9s} "
           f"{'old':>9s} {'fifo bits':>10s} {'deep bits':>10s} {'random':>8s}")
    print(hdr)
    for m, f, label in cases:
        frames = args.cnv_frames if "cnv" in m.stem else args.frames
        t0 = time.monotonic()
        r = run_case(m, f, label, frames, not args.no_random, args.old, work)
        r["seconds"] = round(time.monotonic() - t0, 1)
        rows.append(r)
        rnd = r.get("sized_random")
        rnd_s = "-" if rnd is None else ("ok" if rnd["exact"] and not rnd["stalled"] else "FAIL")
        old = r.get("old", {}).get("ii")
        print(f"{r['model']:12s} {label:10s} {r['expected']:9d} {r['sized']['ii']:9.1f} "
              f"{r['sized']['ii'] / r['expected'] - 1:+7.2%} {r['deep']['ii']:9.1f} "
              f"{old if old is not None else '-':>9} {r['fifo_bits']:10d} {r['deep_bits']:10d} {rnd_s:>8s}",
              flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    ok = all(abs(r["sized"]["ii"] / r["expected"] - 1) <= 0.01 and r["sized"]["exact"] for r in rows)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

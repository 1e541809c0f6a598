"""MLPerf Tiny visual wake words (MobileNet-v1 0.25, 96x96) and keyword spotting (DS-CNN) folded
for a board: cycles per frame, frames/s, latency and Yosys resources, next to fpgaConvNet's
entries on the same part.

    python benchmarks/mlperf_tiny.py                    # both, PYNQ-Z1, Verilator + Yosys
    python benchmarks/mlperf_tiny.py --models kws       # one
    python benchmarks/mlperf_tiny.py --no-synth         # skip Yosys (minutes per design)

Steps, per model: build it from ``tests/models_ops.py`` (Brevitas's own ``MobileNet`` class at
width 0.25, 4-bit, 2 classes, with its per-channel activation scales and ``TruncAvgPool2d``; a
DS-CNN of the MLPerf Tiny keyword-spotting shape, 64 filters, 4-bit, 12 classes; seeded random
weights, calibrated batch-norm) and export it; ``streamfold compile --board B``; run ``--frames``
frames in Verilator at full rate (measured cycles per frame and latency, bit-exactness against the
reference); ``streamfold synth --board B``. Results go to
``benchmarks/results/mlperf_tiny_<model>_<board>.json``.

For scale, fpgaConvNet's MLPerf Tiny v1.1 entries on a ZedBoard (the xc7z020 of the PYNQ-Z1):
visual wake words 105.4 inferences/s, keyword spotting 3,088 inferences/s (MLPerf Tiny v1.1
results tables). Their models are 8-bit and the published figures are end to end; ours are the
accelerator alone at the board's nominal clock.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))

#: name -> (tests/models_ops.py builder, frame, fpgaConvNet's inferences/s on a ZedBoard)
MODELS = {
    "vww": ("mobilenet_v1_vww", (3, 96, 96), 105.4),
    "kws": ("ds_cnn", (1, 49, 10), 3088.0),
}


def run(name: str, board, frames: int, synth: bool, work: Path) -> dict:
    import models_ops
    from streamfold.compiler.build import compile_model
    from streamfold.sim.simulate import simulate_build

    builder, frame, peer_fps = MODELS[name]
    t0 = time.monotonic()
    path = getattr(models_ops, builder)(work / f"{name}.onnx")
    t_export = time.monotonic() - t0
    t0 = time.monotonic()
    build = work / f"build_{name}_{board.name}"
    cm, report = compile_model(path, build, board=board)
    t_compile = time.monotonic() - t0
    tot = report["totals"]
    print(f"[{name}] compiled in {t_compile:.1f} s: {len(report['layers'])} units, "
          f"{tot['expected_cycles_per_frame']:,} cycles/frame (bottleneck {tot['bottleneck']}), "
          f"{tot['expected_fps']:,.0f} frames/s at {tot['clock_mhz']:g} MHz", flush=True)

    t0 = time.monotonic()
    x = models_ops.random_frames(frame, frames, seed=1)
    sim = simulate_build(build, x, engine="verilator", p_gap=0.0, p_stall=0.0, seed=1)["report"]
    t_sim = time.monotonic() - t0
    print(f"[{name}] Verilator: bit-exact {sim['bit_exact']}, measured {sim['measured_cycles_per_frame']} "
          f"cycles/frame, latency {sim['latency_cycles']} cycles ({t_sim:.0f} s)", flush=True)

    got, t_synth = {}, None
    if synth:
        from streamfold.compiler.synth import synth_build
        t0 = time.monotonic()
        res = synth_build(build, board=board.name)
        got, t_synth = res["total"]["resources"], res["seconds"]
        print(f"[{name}] Yosys: {got} in {time.monotonic() - t0:.0f} s", flush=True)

    cycles = sim["measured_cycles_per_frame"] or tot["expected_cycles_per_frame"]
    fps = board.clock_mhz * 1e6 / cycles
    est = report["resources"]["total"]
    doc = {
        "model": name, "builder": builder, "frame": list(frame), "board": board.name,
        "clock_mhz": board.clock_mhz, "units": len(report["layers"]),
        "kinds": sorted({l["kind"] for l in report["layers"]}),
        "bottleneck": tot["bottleneck"],
        "seconds": {"export": round(t_export, 1), "compile": round(t_compile, 1), "simulate": round(t_sim, 1),
                    "synth": t_synth},
        "cycles_per_frame": {"expected": tot["expected_cycles_per_frame"],
                             "measured": sim["measured_cycles_per_frame"]},
        "fps": round(fps, 1), "latency_cycles": sim["latency_cycles"],
        "latency_us": round(sim["latency_cycles"] / board.clock_mhz, 1) if sim["latency_cycles"] else None,
        "bit_exact": sim["bit_exact"], "estimate": est, "yosys": got or None,
        "fpgaconvnet_fps": peer_fps,
    }
    out = HERE / "results" / f"mlperf_tiny_{name}_{board.name}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    return doc


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", choices=sorted(MODELS), default=sorted(MODELS, reverse=True))
    ap.add_argument("--board", default="pynq-z1")
    ap.add_argument("--frames", type=int, default=3, help="frames to simulate in Verilator")
    ap.add_argument("--no-synth", action="store_true", help="skip the Yosys runs")
    ap.add_argument("--workdir", default=str(ROOT / "build" / "bench_mlperf_tiny"))
    a = ap.parse_args(argv)

    from streamfold.boards import load_board

    work = Path(a.workdir)
    work.mkdir(parents=True, exist_ok=True)
    board = load_board(a.board)
    docs = [run(m, board, a.frames, not a.no_synth, work) for m in a.models]

    rows = [("", *[d["model"] for d in docs])]
    def row(label, fn):
        rows.append((label, *[fn(d) for d in docs]))
    row("units (kinds)", lambda d: f"{d['units']} ({', '.join(d['kinds'])})")
    row("cycles/frame expected / measured", lambda d: f"{d['cycles_per_frame']['expected']:,} / "
                                                      f"{d['cycles_per_frame']['measured']}")
    row(f"frames/s at {board.clock_mhz:g} MHz", lambda d: f"{d['fps']:,.0f}")
    row("latency (cycles, first frame)", lambda d: f"{d['latency_cycles']:,}")
    for res, key in (("LUT", "LUT_TOTAL"), ("FF", "FF"), ("BRAM18", "BRAM"), ("DSP", "DSP")):
        row(f"{res} estimate / Yosys", lambda d, key=key: f"{d['estimate'][key]:,} / "
                                                           f"{(d['yosys'] or {}).get(key, '-')}")
    row("Yosys seconds", lambda d: f"{d['seconds']['synth']}")
    row("fpgaConvNet (ZedBoard) frames/s", lambda d: f"{d['fpgaconvnet_fps']:,}")
    row("ratio", lambda d: f"{d['fps'] / d['fpgaconvnet_fps']:.2f}x")
    w = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    print()
    for r in rows:
        print("  ".join(str(c).ljust(w[i]) if i == 0 else str(c).rjust(w[i]) for i, c in enumerate(r)))
    return 0 if all(d["bit_exact"] for d in docs) else 1


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())

"""MLPerf Tiny ResNet-8 (CIFAR-10, W4A4) folded for a board: throughput, latency, skip FIFOs and
Yosys resources, next to published figures of other FPGA flows on the same part.

    python benchmarks/resnet8.py                      # PYNQ-Z1, 100 MHz, Verilator + Yosys
    python benchmarks/resnet8.py --no-synth           # skip Yosys (minutes for the whole design)
    python benchmarks/resnet8.py --board ulx3s-85f

Steps: build the network from ``tests/models_graph.py`` (our Brevitas definition of the MLPerf Tiny
shape: 16/32/64 filters, three stacks, 1x1 projections on the downsampling skips, one shared
quantizer on both inputs of every Add; seeded random weights, calibrated batch-norm) and export
it; ``streamfold compile --board B``; run ``--frames`` frames in Verilator at full rate (measured
cycles per frame and latency, bit-exactness against the reference); ``streamfold synth --board B``.
Results go to ``benchmarks/results/resnet8_<board>.json``.

Figures for scale (the xc7z020 of the PYNQ-Z1 is the ZedBoard's part): fpgaConvNet's MLPerf Tiny
v1.1 ResNet-8 (INT8) entry: 2,432 inferences/s on a ZedBoard with 47K LUT and 211 DSP at 143 MHz;
hls4ml's RN08: 130.8 inferences/s on a Pynq-Z2 (MLPerf Tiny v1.1 results tables).
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

FPGACONVNET = {"fps": 2432, "LUT": 47000, "DSP": 211, "clock_mhz": 143, "board": "ZedBoard (xc7z020)"}
HLS4ML = {"fps": 130.8, "board": "Pynq-Z2 (xc7z020)"}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--board", default="pynq-z1")
    ap.add_argument("--frames", type=int, default=4, help="frames to simulate in Verilator")
    ap.add_argument("--no-synth", action="store_true", help="skip the Yosys run")
    ap.add_argument("--workdir", default=str(ROOT / "build" / "bench_resnet8"))
    a = ap.parse_args(argv)

    from models_graph import RESNET8_FRAME, random_frames, resnet8
    from streamfold.boards import load_board
    from streamfold.compiler.build import compile_model
    from streamfold.sim.simulate import simulate_build

    work = Path(a.workdir)
    work.mkdir(parents=True, exist_ok=True)
    board = load_board(a.board)
    t0 = time.monotonic()
    path = resnet8(work / "resnet8_w4a4.onnx")
    t_export = time.monotonic() - t0
    t0 = time.monotonic()
    build = work / f"build_{board.name}"
    cm, report = compile_model(path, build, board=board)
    t_compile = time.monotonic() - t0
    tot = report["totals"]
    joins = {l["name"] for l in report["layers"] if l["kind"] in ("add", "concat")}
    skips = [f for f in report["fifos"] if f["feeds"] in joins]
    print(f"compiled in {t_compile:.1f} s: {len(report['layers'])} units, "
          f"{tot['expected_cycles_per_frame']:,} cycles/frame (bottleneck {tot['bottleneck']}), "
          f"{tot['expected_fps']:,.0f} frames/s at {tot['clock_mhz']:g} MHz", flush=True)

    t0 = time.monotonic()
    x = random_frames(RESNET8_FRAME, a.frames, seed=1)
    sim = simulate_build(build, x, engine="verilator", p_gap=0.0, p_stall=0.0, seed=1)["report"]
    t_sim = time.monotonic() - t0
    print(f"Verilator: bit-exact {sim['bit_exact']}, measured {sim['measured_cycles_per_frame']} "
          f"cycles/frame, latency {sim['latency_cycles']} cycles ({t_sim:.0f} s)", flush=True)

    synth = None
    if not a.no_synth:
        from streamfold.compiler.synth import synth_build
        t0 = time.monotonic()
        synth = synth_build(build, board=board.name)
        print(f"Yosys: {synth['total']['resources']} in {time.monotonic() - t0:.0f} s", flush=True)

    fps = board.clock_mhz * 1e6 / (sim["measured_cycles_per_frame"] or tot["expected_cycles_per_frame"])
    est = report["resources"]["total"]
    got = synth["total"]["resources"] if synth else {}
    rows = [
        ("cycles per frame (expected / measured)", f"{tot['expected_cycles_per_frame']:,} / "
                                                   f"{sim['measured_cycles_per_frame']}"),
        (f"frames/s at {board.clock_mhz:g} MHz", f"{fps:,.0f}"),
        ("latency (cycles, first frame)", f"{sim['latency_cycles']:,}"),
        ("LUT (estimate / Yosys)", f"{est['LUT_TOTAL']:,} / {got.get('LUT_TOTAL', '-')}"),
        ("FF (estimate / Yosys)", f"{est['FF']:,} / {got.get('FF', '-')}"),
        ("BRAM18 (estimate / Yosys)", f"{est['BRAM']} / {got.get('BRAM', '-')}"),
        ("DSP (estimate / Yosys)", f"{est['DSP']} / {got.get('DSP', '-')}"),
        ("FIFO bits (all / into the joins)", f"{tot['fifo_bits']:,} / {sum(f['bits'] for f in skips):,}"),
    ]
    w = max(len(r[0]) for r in rows)
    print()
    for k, v in rows:
        print(f"{k.ljust(w)}  {v}")
    print("\nskip FIFOs: " + ", ".join(f"{f['name']} {f['from']}->{f['feeds']} {f['depth']}x{f['width']} "
                                        f"({f['bits']:,} b, {f.get('bram', 0)} BRAM)" for f in skips))
    lut = got.get("LUT_TOTAL") or est["LUT_TOTAL"]
    dsp = got.get("DSP", est["DSP"])
    print(f"\nvs fpgaConvNet ResNet-8 on {FPGACONVNET['board']}: {fps / FPGACONVNET['fps']:.2f}x its "
          f"{FPGACONVNET['fps']:,}/s, with {lut / FPGACONVNET['LUT']:.0%} of its LUTs and "
          f"{dsp / FPGACONVNET['DSP']:.0%} of its DSPs ({'Yosys' if got else 'estimated'}); "
          f"goal: 2x the rate within 80% of the resources")
    print(f"vs hls4ml RN08 on {HLS4ML['board']}: {fps / HLS4ML['fps']:.1f}x its {HLS4ML['fps']}/s")

    out = HERE / "results" / f"resnet8_{board.name}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({
        "board": board.name, "clock_mhz": board.clock_mhz, "fold": report.get("search", {}).get("goal"),
        "seconds": {"export": round(t_export, 1), "compile": round(t_compile, 1), "simulate": round(t_sim, 1),
                    "synth": synth["seconds"] if synth else None},
        "cycles_per_frame": {"expected": tot["expected_cycles_per_frame"],
                             "measured": sim["measured_cycles_per_frame"]},
        "fps": round(fps, 1), "latency_cycles": sim["latency_cycles"], "bit_exact": sim["bit_exact"],
        "estimate": est, "yosys": got or None,
        "skip_fifos": [{k: f[k] for k in ("name", "from", "feeds", "depth", "width", "bits", "bram")}
                       for f in skips],
        "fifo_bits": tot["fifo_bits"], "reference": {"fpgaconvnet": FPGACONVNET, "hls4ml": HLS4ML},
    }, indent=2) + "\n")
    print(f"\nwrote {out}")
    return 0 if sim["bit_exact"] else 1


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())

"""Tiled streaming: line-buffer memory against cycles per frame, measured in Verilator.

Compiles the 70-pixel-wide fully convolutional test network (tests/models_conv.py ``wide_net``)
untiled and at several strip widths, simulates each in Verilator at full rate, and prints line
buffer bits, strips per frame, expected and measured cycles per frame, and whether the outputs
equal the untiled design's. Results go to ``benchmarks/results/tiling.json``.

    python benchmarks/tiling.py [--widths 70 42 30 22 18] [--frames 8]
"""
import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--widths", type=int, nargs="+", default=[70, 42, 30, 22, 18])
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--out", default=str(HERE / "results" / "tiling.json"))
    a = ap.parse_args(argv)

    from models_conv import WIDE_FRAME, random_frames, wide_net

    from streamfold.compiler.build import compile_model
    from streamfold.compiler.tiling import line_buffers
    from streamfold.sim.simulate import simulate_build

    work = Path(tempfile.mkdtemp(prefix="sf_tiling_"))
    model = wide_net(work / "wide.onnx")
    x = random_frames(WIDE_FRAME, a.frames, seed=11)
    rows, ref = [], None
    for ws in a.widths:
        b = work / f"w{ws}"
        tiled = ws != WIDE_FRAME[2]
        t0 = time.monotonic()
        cm, report = compile_model(model, b, strip_width=ws if tiled else None)
        t_compile = time.monotonic() - t0
        res = simulate_build(b, x, engine="verilator", p_gap=0.0, p_stall=0.0)
        rep = res["report"]
        got = res["hw_integers"]
        ref = got if ref is None else ref
        t = report.get("tiling", {})
        row = {"strip_width": ws, "strips": rep.get("strips_per_frame", 1),
               "line_buffer_bits": sum(lb["bits"] for lb in line_buffers(cm.pipeline)),
               "expected_cycles_per_frame": rep["expected_cycles_per_frame"],
               "measured_cycles_per_frame": rep["measured_cycles_per_frame"],
               "halo_recompute": t.get("halo_recompute", 0.0), "bit_exact": rep["bit_exact"],
               "same_as_first": bool(np.array_equal(got, ref)), "compile_s": round(t_compile, 1)}
        rows.append(row)
        print(f"strip {ws:3d}: {row['strips']:2d} strips, line buffers {row['line_buffer_bits']:6,} bits, "
              f"{row['expected_cycles_per_frame']:6,} expected / {row['measured_cycles_per_frame']:8,.0f} "
              f"measured cycles/frame, halo {row['halo_recompute']:+.0%}, bit-exact {row['bit_exact']}, "
              f"same as {a.widths[0]}: {row['same_as_first']}", flush=True)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=1) + "\n")
    print(f"wrote {out}")
    return 0 if all(r["bit_exact"] and r["same_as_first"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

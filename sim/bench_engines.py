"""Throwaway benchmark of the two simulation engines on the hand-written stand-ins.

    python -m streamfold.sim.bench_engines [--cold] [--beats N] [--cocotb-beats N]

Prints Verilator build times (C++ harness and cocotb models, into a fresh temporary build
directory; ``--cold`` also disables ccache so every object is compiled) and the simulation speed
of each engine in cycles per second: ``loop`` counts only the cycle loop (wall clock, and CPU time
of the simulator process, which a busy machine disturbs less), ``whole call`` the whole
``simulate_stream`` call (files, process start, parsing).
"""
from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from pathlib import Path

from streamfold.sim.run import simulate_stream
from streamfold.sim.verilator_build import build_model, tool_env

STANDIN = Path(__file__).resolve().parent.parent / "tests" / "data" / "standin_stream.v"
DESIGNS = {  # top: (in_width, out_width, beats per frame)
    "sf_standin_add8": (8, 8, 4),
    "sf_standin_wide": (200, 130, 3),
}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--cold", action="store_true", help="disable ccache (OBJCACHE='')")
    ap.add_argument("--beats", type=int, default=1_200_000, help="beats per C++ engine run")
    ap.add_argument("--cocotb-beats", type=int, default=30_000, help="beats per cocotb run")
    ap.add_argument("--verilog", type=Path, default=STANDIN)
    args = ap.parse_args(argv)
    if args.cold:
        os.environ["OBJCACHE"] = ""
    print(f"ccache: {tool_env().get('OBJCACHE') or 'off'}   cpus: {os.cpu_count()}   "
          f"load: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="sf-bench-") as tmp:
        build_dir = Path(tmp)
        print("\nbuild times (fresh build dir):")
        for top in DESIGNS:
            for kind in ("harness", "cocotb"):
                m = build_model(args.verilog, top, kind, build_dir, quiet=True)
                t0 = time.monotonic()
                again = build_model(args.verilog, top, kind, build_dir, quiet=True)
                t_cached = time.monotonic() - t0
                assert again.cached
                print(f"  {top:18s} {kind:8s} {m.build_seconds:6.1f} s   (cached reuse: {t_cached*1e3:.0f} ms)")

        print("\nsimulation speed (no gaps, no back-pressure):")
        for top, (iw, ow, bpf) in DESIGNS.items():
            rng = random.Random(0)
            for engine, n in (("verilator", args.beats), ("cocotb", args.cocotb_beats)):
                n -= n % bpf
                beats = [rng.getrandbits(iw) for _ in range(n)]
                r = simulate_stream(args.verilog, top, beats, iw, ow, bpf, bpf, engine=engine,
                                    build_dir=build_dir, quiet_build=True)
                assert r.complete and len(r.out_beats) == n
                print(f"  {top:16s} {engine:9s} {r.cycles_run:>8d} cycles  loop {r.sim_seconds:6.3f} s"
                      f" = {r.cycles_run / r.sim_seconds:>10,.0f}/s (CPU {r.sim_cpu_seconds:6.3f} s = "
                      f"{r.cycles_run / max(r.sim_cpu_seconds, 1e-9):>10,.0f}/s)   whole call "
                      f"{r.run_seconds:5.2f} s = {r.cycles_run / r.run_seconds:>10,.0f}/s")


if __name__ == "__main__":
    main()

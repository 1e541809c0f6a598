"""The ``streamfold`` command line."""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from .errors import StreamfoldError

DESCRIPTION = """\
streamfold turns quantized ONNX models (QONNX, as Brevitas exports them) into streaming FPGA
accelerators: integer-only units in Amaranth HDL and Verilog, verified bit-exactly in Verilator.

  streamfold compile MODEL.onnx -o BUILD        lower, fold and emit Verilog + reports
  streamfold simulate BUILD --input X.npy       stream frames through the Verilog, check every integer
"""


def _log(msg: str) -> None:
    print(f"  .. {msg}", file=sys.stderr, flush=True)


def _table(rows: list[list], header: list[str]) -> str:
    cells = [header] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    line = lambda r: "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
    out = [line(cells[0]), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in cells[1:]]
    return "\n".join(out)


def _products(layer: dict) -> str:
    """Where a layer's products go, its register stages and input copies (``DSP+2r x4``: DSP
    blocks, two register stages, four copies of the input word)."""
    if "products" not in layer:
        return "skid" if layer.get("skid") else "-"
    res = layer.get("resources") or {}
    where = "DSP" if res.get("DSP") else "LUT"
    st = layer.get("stages") or {}
    n = st.get("tree", 0) + st.get("out", 0)
    c = st.get("input_copies", 0)
    return (where + (f"+{n}r" if n else "") + (f" x{c}" if c > 1 else "") + (" D" if st.get("decoupled") else "")
            + (" W" if st.get("local_weights") else "") + (" M" if st.get("weight_register") else "")
            + (f" A{st['lane_addresses']}" if st.get("lane_addresses") else ""))


def print_report(report: dict) -> None:
    rows = []
    bott = report["totals"]["bottleneck"]
    for l in report["layers"]:
        rows.append([l["name"] + (" *" if l["name"] == bott else ""), l["kind"],
                     "x".join(map(str, l.get("weight_shape", []))) or "-",
                     f'{l.get("weight_dtype", "-")}/{l["in_dtype"]}->{l["out_dtype"]}',
                     l.get("pe", "-"), l.get("simd", "-"), _products(l), l["expected_cycles"]])
    print(_table(rows, ["layer", "kind", "weights", "W/in->out", "PE", "SIMD", "products", "cycles/frame"]))
    joins = {l["name"] for l in report["layers"] if l["kind"] in ("add", "concat")}
    skips = [f for f in report.get("fifos", []) if f["feeds"] in joins]
    if skips:  # the FIFOs into the joins: what the short path of each branch holds
        print("\nFIFOs into the joins (sized by the schedule analysis):")
        print(_table([[f["name"], f"{f['from']} -> {f['feeds']}", f["depth"], f["width"], f"{f['bits']:,}",
                       f.get("bram", "-"), f.get("peak", "-")] for f in skips],
                     ["FIFO", "edge", "depth", "width", "bits", "BRAM", "peak"]))
    t = report["totals"]
    print(f"\nexpected: {t['expected_cycles_per_frame']} cycles/frame (bottleneck {bott}), "
          f"{t['expected_fps']:,.0f} frames/s at {t['clock_mhz']:g} MHz; FIFOs {t['fifo_bits']:,} bits")
    tp = report.get("timing_plan")
    if tp:
        worst = max(tp["layers"], key=lambda r: r["model_ns"], default=None)
        if worst:
            fam = tp["family"] + ("" if tp["delay_model"].get("calibrated") else ", uncalibrated")
            print(f"timing for {tp['target_mhz']:g} MHz ({fam} delay model): worst modelled path "
                  f"{worst['model_ns']:.1f} ns in {worst['layer']} ({worst['limit']}; was "
                  f"{worst['model_ns_before']:.1f} ns unstaged); products column: +Nr register stages, "
                  "xN input copies, D decoupled, W lane-local weight registers, M registered weight memory, "
                  "AN N weight-address copies per lane; skid: a skid register behind a window's output")
            missed = [r["layer"] for r in tp["layers"] if not r["meets"]]
            if missed:
                print(f"  the model misses {tp['target_mhz']:g} MHz in {', '.join(missed)}"
                      + (": their stall enable reaches too many registers (a smaller fold, or a lower "
                         "clock)" if any(r["limit"] == "enable" for r in tp["layers"] if not r["meets"])
                         else ": the shortest path the stages leave is still too long"))
    fc = report.get("fit_check")
    if fc:
        last = fc["rounds"][-1]
        print(f"fit confirmed by Yosys in round {last['round']}: "
              + ", ".join(f"{r} {last['yosys'][r]:,} ({u:.1%})" for r, u in last["utilisation"].items()
                          if last["yosys"][r])
              + f", every resource under the {fc['ceiling']:.0%} ceiling"
              + ("" if fc["limits"]["LUT"] >= fc["ceiling"] else
                 f" (LUTs under {fc['limits']['LUT']:.0%}, the most the board routes)")
              + ("" if len(fc["rounds"]) == 1 else
                 f" (earlier rounds over: {'; '.join(', '.join(x['over']) for x in fc['rounds'][:-1])})"))
    k = report.get("output", {}).get("class_indices")
    if k:
        print(f"output: the indices of the {k} highest-scoring classes per frame, highest first (on chip)"
              if k > 1 else "output: the index of the highest-scoring class per frame (argmax, on chip)")


def print_tiling(t: dict) -> None:
    rows = [[l["layer"], l["kind"], f'{l["untiled_bits"]:,}', f'{l["tiled_bits"]:,}',
             l["untiled_bram18"], l["tiled_bram18"]] for l in t["layers"]]
    print(_table(rows, ["line buffer", "kind", "untiled bits", "tiled bits", "BRAM18", "tiled BRAM18"]))
    c, lb = t["cycles_per_frame"], t["line_buffer_bits"]
    print(f"\ntiled: {t['strips']} strips of {t['strip_width']} of {t['frame_width']} columns "
          f"(receptive field {t['receptive_field']}, column stride {t['column_stride']}); line buffers "
          f"{lb['untiled']:,} -> {lb['tiled']:,} bits ({lb['tiled'] / max(1, lb['untiled']):.0%}); "
          f"halo recomputation {t['halo_recompute']:+.0%} columns; {c['untiled']:,} -> {c['tiled']:,} "
          f"cycles/frame ({c['extra']:+.0%})")


def cmd_tiling(a) -> int:
    from .build import lower_file
    from .folding import read_fold_file
    from .tiling import tiling_options

    fold = read_fold_file(a.fold) if a.fold else None
    cm = lower_file(a.model, fold, a.fold or "fold", log=_log)
    opts = tiling_options(cm.pipeline)
    if a.max_rows and len(opts) > a.max_rows:  # keep the ends and an even spread between
        idx = sorted({round(i * (len(opts) - 1) / (a.max_rows - 1)) for i in range(a.max_rows)})
        opts = [opts[i] for i in idx]
    rows = [[o["strip_width"], o["strips"], f'{o["line_buffer_bits"]["tiled"]:,}',
             o["line_buffer_bram18"]["tiled"], f'{o["halo_recompute"]:+.0%}',
             f'{o["cycles_per_frame"]["tiled"]:,}', f'{o["cycles_per_frame"]["extra"]:+.0%}'] for o in opts]
    print(_table(rows, ["strip width", "strips", "line-buffer bits", "BRAM18", "halo", "cycles/frame",
                        "vs untiled"]))
    print("\ncompile with `--strip-width N`, or `--line-buffer-budget BITS` to take the width that fits "
          "with the least halo recomputation")
    return 0


def cmd_compile(a) -> int:
    from .build import compile_model

    t0 = time.monotonic()
    if a.verify_fit:
        if not a.board or a.fold or a.target_fps:
            raise StreamfoldError("--verify-fit checks a board fold: give --board, without --fold or "
                                  "--target-fps")
        from .verify_fit import compile_verified
        cm, report = compile_verified(a.model, a.output, a.board, ceiling=a.ceiling, log=_log,
                                      clock_mhz=a.clock_mhz, strip_width=a.strip_width,
                                      line_buffer_budget=a.line_buffer_budget, topk=a.topk,
                                      target_mhz=a.target_mhz)
    else:
        cm, report = compile_model(a.model, a.output, a.fold, clock_mhz=a.clock_mhz, log=_log,
                                   board=a.board, target_fps=a.target_fps, ceiling=a.ceiling,
                                   strip_width=a.strip_width, line_buffer_budget=a.line_buffer_budget,
                                   topk=a.topk, target_mhz=a.target_mhz)
    print(f"compiled {a.model} -> {a.output}/ in {time.monotonic() - t0:.1f} s\n")
    print_report(report)
    if "tiling" in report:
        print()
        print_tiling(report["tiling"])
    files = ["streamfold_top.v", "fold.json", "report.json", "ir.json"] + report.get("plots", [])
    print(f"\nwrote {a.output}/: {', '.join(files)}")
    return 0


def cmd_fold(a) -> int:
    from streamfold.boards import load_board

    from .build import DEFAULT_CLOCK_MHZ, lower_file
    from .fifo_sizing import expected_pace
    from .folding import fold_to_json
    from .ir import dumps

    board = load_board(a.board) if a.board else None
    clock = a.clock_mhz or (board.clock_mhz if board else DEFAULT_CLOCK_MHZ)
    cm = lower_file(a.model, board=board, target_fps=a.target_fps, clock_mhz=clock, ceiling=a.ceiling,
                    log=_log, topk=a.topk)
    Path(a.output).write_text(dumps(fold_to_json(cm.pipeline)))
    cycles, bott = expected_pace(cm.pipeline)
    res = cm.search.chosen.resources if cm.search else {}
    print(f"wrote {a.output}: {cycles:,} cycles/frame (bottleneck {bott}) = "
          f"{clock * 1e6 / cycles:,.0f} frames/s at {clock:g} MHz"
          + (f"; estimated {', '.join(f'{k} {v:,}' for k, v in res.items() if v)}" if res else ""))
    return 0


def cmd_simulate(a) -> int:
    import numpy as np

    from streamfold.sim.simulate import load_input, simulate_build, write_sim_json

    x = load_input(a.input)
    res = simulate_build(a.build, x, engine=a.engine, p_gap=a.gaps, p_stall=a.stalls, seed=a.seed, log=_log)
    rep = res["report"]
    write_sim_json(a.build, rep)
    if a.output and res["outputs"] is not None:
        np.save(a.output, res["outputs"])
    ii, exp = rep["measured_cycles_per_frame"], rep["expected_cycles_per_frame"]
    rows = [["frames", rep["frames"]], ["engine", rep["engine"]],
            ["bit-exact vs reference", "yes" if rep["bit_exact"] else "NO"],
            ["expected cycles/frame", exp],
            ["measured cycles/frame", "-" if ii is None else f"{ii:g} ({100 * rep['ii_error']:+.2f}%)"],
            ["latency (cycles)", rep["latency_cycles"]]]
    print(_table(rows, ["simulation", "value"]))
    print(f"\nwrote {a.build}/sim.json" + (f", {a.output}" if a.output else ""))
    if not rep["bit_exact"]:
        for r in rep["runs"]:
            run = f"(gaps {r['p_gap']:g}, back-pressure {r['p_stall']:g}, seed {r['seed']})"
            if r["stalled"]:  # the report: a summary line, then streams and FIFO levels
                print(f"streamfold: error: {run} {r['stall_report']}", file=sys.stderr)
            elif r["mismatches"] or not r["tlast_ok"]:
                print(f"streamfold: error: {run} the hardware differs from the reference: "
                      f"{r['mismatches']} elements, first {r['first_mismatch']}; tlast "
                      f"{'correct' if r['tlast_ok'] else 'wrong'}", file=sys.stderr)
        return 1
    return 0


def cmd_boards(a) -> int:
    from streamfold.boards import list_boards, load_board

    rows = []
    for n in list_boards():
        b = load_board(n)
        rows.append([n, b.part, b.family, f"{b.lut:,}", f"{b.ff:,}", f"{b.bram} {b.bram_primitive}",
                     b.uram or "-", f"{b.dsp} {b.dsp_primitive}", f"{b.clock_mhz:g}"])
    print(_table(rows, ["board", "part", "family", "LUT", "FF", "block RAM", "URAM", "DSP", "MHz"]))
    if a.sources:
        print()
        for n in list_boards():
            print(f"{n}: {load_board(n).source}")
    return 0


def cmd_synth(a) -> int:
    from .synth import synth_build

    t0 = time.monotonic()
    doc = synth_build(a.build, board=a.board, family=a.family, per_unit=a.per_unit, timing=a.timing,
                      jobs=a.jobs, target_mhz=a.target_mhz, seed=a.seed, log=_log, timeout=a.timeout * 60)
    fmt = lambda c: "-" if c["error"] is None else f"{100 * c['error']:+.1f}%"  # noqa: E731
    res = ["LUT_TOTAL", "FF", "BRAM", "DSP"]
    rows = []
    for r in doc.get("parts", []):
        c = r.get("comparison")
        rows.append([r["name"], r["kind"]] + [f"{r['resources'][k]}" + (f" ({fmt(c[k])})" if c else "")
                                             for k in res])
    c = doc["comparison"]
    rows.append(["TOTAL", "top"] + [f"{c[k]['synth']} ({fmt(c[k])})" for k in res])
    print(_table(rows, ["part", "kind", "LUT", "FF", "BRAM", "DSP"]))
    print("  (in brackets: estimate error vs Yosys; LUT includes LUT-RAM)")
    if doc.get("fallback"):
        print(f"TOTAL is the sum of the parts, each synthesised on its own: {doc['fallback']['reason']} "
              "(no merging across units; compared with the estimates' part sum)")
    if doc.get("utilisation"):
        print("utilisation of " + doc["board"] + ": " + ", ".join(
            f"{k} {100 * v:.1f}%" for k, v in doc["utilisation"].items()))
    t = doc["throughput"]
    if doc.get("timing"):
        tm = doc["timing"]
        print(f"Fmax {tm['fmax_mhz']} MHz ({tm['tool']}, target {tm['target_mhz']:g} MHz, place and route "
              f"{tm['seconds']:.0f} s): {t.get('fps_at_fmax', '-'):,} frames/s at {t['cycles_per_frame']} "
              f"cycles/frame" + (f" (nominal: {t['fps_at_clock']:,} at {t['clock_mhz']:g} MHz)"
                                 if "fps_at_clock" in t else ""))
        cp = tm.get("critical_path")
        if cp:
            print(f"critical path {cp['delay_ns']:.2f} ns ({cp['logic_ns']:.2f} logic, {cp['routing_ns']:.2f} "
                  f"routing, {cp['segments']} segments) through: {', '.join(cp['units']) or '(unnamed cells)'}")
    elif doc.get("logic_depth"):
        ld = doc["logic_depth"]
        print(f"{doc['family']}: no open place-and-route, so no Fmax; logic depth (Yosys ltp) {ld['levels']} "
              f"cells, through: {', '.join(ld['units']) or '(unnamed cells)'}")
    print(f"\nsynthesised for {doc['family']} in {time.monotonic() - t0:.1f} s; wrote {a.build}/synth.json")
    return 0


def cmd_demo(a) -> int:
    from .demo import run_demo

    return run_demo(a.model, a.data, Path(a.build), a.frames, a.engine, a.board)


def _fold_options(p) -> None:
    p.add_argument("--board", help="board (`streamfold boards`): fold for the highest throughput that fits "
                                   "it, and report utilisation")
    p.add_argument("--target-fps", type=float, help="fold for the least resources reaching this many "
                                                    "frames/s (at --clock-mhz)")
    p.add_argument("--ceiling", type=float, help="utilisation ceiling per resource when fitting a board "
                                                 "(default 0.8); LUTs also stay under the board's measured "
                                                 "routing limit, where it has one (ULX3S-85F: 50%%)")
    p.add_argument("--clock-mhz", type=float, help="clock for frames/s figures (default: the board's, else 100)")
    p.add_argument("--topk", type=int, metavar="K",
                   help="end a classifier in an on-chip top-K unit: the board returns the indices of the "
                        "K largest scores per frame, largest first (K=1: argmax); the float ending "
                        "(dequantisation, Softmax) is dropped, which is refused where it could reorder "
                        "the classes")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="streamfold", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--debug", action="store_true", help="show Python tracebacks on errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    c = sub.add_parser("compile", help="compile a QONNX model into a build folder",
                       description="Lower MODEL to integer stream units, fold them, emit Verilog and "
                                   "write BUILD/ with streamfold_top.v, fold.json, report.json, ir.json.")
    c.add_argument("model", help="QONNX model file (.onnx; a side .onnx.data file is read too)")
    c.add_argument("-o", "--output", required=True, help="build folder to write")
    c.add_argument("--fold", help="fold file (JSON: {layer: {pe: .., simd: ..}}) to use instead of the "
                                  "balanced default; BUILD/fold.json is one")
    _fold_options(c)
    c.add_argument("--verify-fit", action="store_true",
                   help="with --board: synthesise the chosen design with Yosys and, where a resource is "
                        "over the ceiling, correct for what synthesis measured and fold again, until "
                        "Yosys confirms it fits (minutes per round; the rounds go to report.json)")
    c.add_argument("--target-mhz", type=float, metavar="MHZ",
                   help="close timing for this clock: add register stages to adder trees and threshold "
                        "compares, and registered copies of wide input fan-outs, where the delay model "
                        "says a path would miss it (the plan goes to report.json; frames/s figures at "
                        "MHZ unless --clock-mhz); check with `streamfold synth BUILD --timing`")
    t = c.add_argument_group("tiling (fully convolutional models)")
    t.add_argument("--strip-width", type=int, metavar="N",
                   help="stream each frame as column strips N input columns wide (overlapping by the "
                        "receptive field's halo); line buffers are sized for N columns")
    t.add_argument("--line-buffer-budget", type=int, metavar="BITS",
                   help="tile with the strip width whose line buffers fit BITS bits in total and "
                        "that streams the fewest columns per frame (least halo recomputation)")
    c.set_defaults(fn=cmd_compile)

    tl = sub.add_parser("tiling", help="list the column-strip widths a fully convolutional model can use",
                        description="For each strip width that covers MODEL's output: strips per frame, "
                                    "line-buffer bits and BRAM18, halo recomputation and cycles/frame "
                                    "against the untiled design (at the balanced default or --fold).")
    tl.add_argument("model", help="QONNX model file")
    tl.add_argument("--fold", help="fold file to cost the strips with")
    tl.add_argument("--max-rows", type=int, default=12, help="rows to print (default 12; 0: all)")
    tl.set_defaults(fn=cmd_tiling)

    f = sub.add_parser("fold", help="choose PE/SIMD per layer for a board or a frame rate; write fold.json",
                       description="Fold MODEL for the highest throughput that fits --board, or the least "
                                   "resources reaching --target-fps, and write only the fold file.")
    f.add_argument("model", help="QONNX model file")
    f.add_argument("-o", "--output", default="fold.json", help="fold file to write (default fold.json)")
    _fold_options(f)
    f.set_defaults(fn=cmd_fold)

    s = sub.add_parser("simulate", help="simulate a build in Verilator and check it bit-exactly",
                       description="Stream the frames of X.npy (float inputs shaped like the model's "
                                   "input, batch first) through BUILD's Verilog, compare every output "
                                   "integer with the NumPy reference and write BUILD/sim.json.")
    s.add_argument("build", help="build folder written by `streamfold compile`")
    s.add_argument("--input", required=True, help=".npy file of float inputs (frames first)")
    s.add_argument("--output", help="write the outputs, in the model's output space, to this .npy")
    s.add_argument("--engine", choices=["auto", "verilator", "cocotb"], default="auto",
                   help="verilator: C++ harness (fast); cocotb: Python testbench; auto: cocotb for up "
                        "to 4 frames, else verilator")
    s.add_argument("--gaps", type=float, default=0.2, help="probability of an idle input cycle (default 0.2)")
    s.add_argument("--stalls", type=float, default=0.2,
                   help="probability of output back-pressure per cycle (default 0.2)")
    s.add_argument("--seed", type=int, default=1, help="seed of the gap/back-pressure patterns")
    s.set_defaults(fn=cmd_simulate)

    d = sub.add_parser("demo", help="compile the shipped digits model and check its accuracy in Verilator",
                       description="Compile the default model, simulate the whole held-out test split in "
                                   "Verilator and compare the hardware's predictions with qonnx's and "
                                   "PyTorch's, image by image.")
    from .demo import DEFAULT_DATA, DEFAULT_MODEL

    d.add_argument("--model", default=str(DEFAULT_MODEL), help=f"QONNX model (default {DEFAULT_MODEL})")
    d.add_argument("--data", default=str(DEFAULT_DATA),
                   help=f"npz with x (inputs), y (labels), logits (PyTorch outputs) (default {DEFAULT_DATA})")
    d.add_argument("--build", default="demo_build", help="build folder (default demo_build)")
    d.add_argument("--frames", type=int, help="only the first N test images")
    d.add_argument("--engine", choices=["verilator", "cocotb"], default="verilator")
    d.add_argument("--board", default="pynq-z1", help="board to fold for (default pynq-z1)")
    d.set_defaults(fn=cmd_demo)

    bd = sub.add_parser("boards", help="list the FPGA boards streamfold knows",
                        description="Print every known board with its device resources.")
    bd.add_argument("--sources", action="store_true", help="also print where each figure comes from")
    bd.set_defaults(fn=cmd_boards)

    sy = sub.add_parser("synth", help="synthesise a build with Yosys and compare with the estimates",
                        description="Synthesise BUILD/streamfold_top.v out of context with Yosys for a "
                                    "board's family, compare with the resource estimates and write "
                                    "BUILD/synth.json.")
    sy.add_argument("build", help="build folder written by `streamfold compile`")
    sy.add_argument("--board", help="board name (`streamfold boards`); sets the family")
    sy.add_argument("--family", choices=["xc7", "xcup", "ecp5", "ice40"],
                    help="FPGA family when no board is given (default xc7)")
    sy.add_argument("--per-unit", action="store_true", help="also synthesise every unit, FIFO and width "
                                                            "converter on its own")
    sy.add_argument("--timing", action="store_true", help="place and route with nextpnr (ECP5/iCE40 "
                                                          "boards) and report Fmax and frames/s")
    sy.add_argument("--target-mhz", type=float,
                    help="nextpnr target clock (default: the clock the build was compiled for with "
                         "`compile --target-mhz`, else the board's clock)")
    sy.add_argument("--seed", type=int, default=1, help="nextpnr placement seed (default 1); Fmax varies "
                                                        "with it, so compare designs over a few seeds")
    sy.add_argument("--jobs", type=int, default=2, help="Yosys processes at once (default 2)")
    sy.add_argument("--timeout", type=float, default=30, metavar="MIN",
                    help="minutes per Yosys run (default 30); a whole design that runs past it is "
                         "synthesised unit by unit (cached) and summed instead")
    sy.set_defaults(fn=cmd_synth)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    a = parser.parse_args(argv)
    if not getattr(a, "fn", None):
        parser.print_help()
        return 2
    debug = a.debug or os.environ.get("STREAMFOLD_DEBUG")
    try:
        return a.fn(a)
    except StreamfoldError as e:
        if debug:
            raise
        print(f"streamfold: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("streamfold: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # an internal error: still one line, with a way to see more
        if debug:
            raise
        msg = str(e).strip().splitlines()
        print(f"streamfold: internal error: {type(e).__name__}: {msg[0] if msg else ''} "
              "(run with --debug for the traceback and please report it)", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())

"""Whole-design Yosys synthesis against the cost model's estimates.

For each model, board and folding it compiles a build, synthesises it out of context for the
board's family (``streamfold synth``) and prints estimate vs. synthesis per resource class.
Results go to ``benchmarks/results/synth_vs_estimate.json`` (one row per build).

    python benchmarks/synth_vs_estimate.py                       # TFC-W1A1 and CNV-W1A1, 2 folds, 2 boards
    python benchmarks/synth_vs_estimate.py --models cnv_1w1a --boards ulx3s-85f --folds fps:1000

Folds: ``board`` (fastest design that fits the board), ``fps:N`` (least resources for N frames/s at
the board's clock).
"""
import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

CLASSES = ("LUT_TOTAL", "FF", "BRAM", "DSP")


def _pct(err) -> str:
    return "-" if err is None else f"{err:+.1%}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["tfc_1w1a", "cnv_1w1a"])
    ap.add_argument("--boards", nargs="+", default=["pynq-z1", "ulx3s-85f"])
    ap.add_argument("--folds", nargs="+", default=["fps:1000", "board"])
    ap.add_argument("--out", default=str(HERE / "results" / "synth_vs_estimate.json"))
    ap.add_argument("--workdir", default=None, help="keep builds here (default: a temporary folder)")
    a = ap.parse_args(argv)

    from tests.models import bnn_pynq
    from streamfold.compiler.build import compile_model
    from streamfold.hw.synth import synth_build

    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = json.loads(out.read_text()) if out.exists() else []
    work = Path(a.workdir) if a.workdir else Path(tempfile.mkdtemp(prefix="sf_synth_"))
    work.mkdir(parents=True, exist_ok=True)
    for model in a.models:
        onnx = work / f"{model}.onnx"
        if not onnx.exists():
            bnn_pynq(model, onnx)
        for board in a.boards:
            for fold in a.folds:
                tag = f"{model}/{board}/{fold}"
                bdir = work / f"{model}_{board}_{fold.replace(':', '')}"
                kw = {"board": board}
                if fold.startswith("fps:"):
                    kw["target_fps"] = float(fold[4:])
                t0 = time.monotonic()
                cm, report = compile_model(onnx, bdir, **kw)
                t_compile = time.monotonic() - t0
                print(f"[{tag}] compiled in {t_compile:.1f} s: {report['totals']['expected_cycles_per_frame']} "
                      f"cycles/frame; synthesising ...", flush=True)
                t0 = time.monotonic()
                doc = synth_build(bdir, board=board)
                t_synth = time.monotonic() - t0
                cmp = doc["comparison"]
                row = {"model": model, "board": board, "fold": fold, "family": doc["family"],
                       "cycles_per_frame": report["totals"]["expected_cycles_per_frame"],
                       "compile_s": round(t_compile, 1), "synth_s": round(t_synth, 1),
                       "comparison": {k: cmp[k] for k in CLASSES}}
                rows = [r for r in rows if (r["model"], r["board"], r["fold"]) != (model, board, fold)]
                rows.append(row)
                out.write_text(json.dumps(rows, indent=1) + "\n")
                cells = "  ".join(f"{k} {cmp[k]['estimate']}/{cmp[k]['synth']} ({_pct(cmp[k]['error'])})"
                                  for k in CLASSES)
                print(f"[{tag}] est/synth  {cells}  (synth {t_synth:.0f} s)", flush=True)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

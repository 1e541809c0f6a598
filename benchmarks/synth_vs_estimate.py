"""Whole-design Yosys synthesis against the cost model's estimates.

For each model, board and folding it compiles a build, synthesises it out of context for the
board's family (``streamfold synth``) and prints estimate vs. synthesis per resource class.
Results go to ``benchmarks/results/synth_vs_estimate.json`` (one row per build).

    python benchmarks/synth_vs_estimate.py                       # TFC-W1A1 and CNV-W1A1, 2 folds, 2 boards
    python benchmarks/synth_vs_estimate.py --models cnv_1w1a --boards ulx3s-85f --folds fps:1000
    python benchmarks/synth_vs_estimate.py --models examples/models/digits_w2a2.onnx tfc_2w2a

Models: names of the BNN-PYNQ models Brevitas ships (``tfc_1w1a``, ``cnv_2w2a``...), of the test
models (``mlp_4bit``, ``ad_w8a8``, ``mobilenet_block``, ``wide_net``: ``tests/models*.py``), ``sweep``
(the eight models of the estimate sweep, :data:`SWEEP`), or ``.onnx`` files.

Folds: ``board`` (fastest design that fits the board), ``fps:N`` (least resources for N frames/s at
the board's clock).

Whole designs synthesise flattened, and logic merges across unit boundaries; ``--fit-in-context``
fits, per family, what the binary soft-product units' part estimates shrink to in the whole design
on the rows of ``--fit-models`` (CNV-W1A1 by default) and, where ``--fit-multibit-models`` names
rows, the same for the multi-bit ones; it writes them to ``compiler/calibration.json``
(``in_context``) and prints every row's whole-design estimate, fitted or held out. ``--reuse`` takes builds
already in ``--workdir`` instead of compiling again.
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
#: the estimate sweep: binary, W2A2, W4A4, W8A8; dense, conv, depthwise, pooled; the shipped demo
SWEEP = ["examples/models/digits_w2a2.onnx", "tfc_1w1a", "tfc_2w2a", "mlp_4bit", "mobilenet_block",
         "ad_w8a8", "cnv_1w1a", "cnv_2w2a"]
#: board folds that need a higher ceiling than the default 80%: CNV-W2A2's 3.1 Mbit of weights
#: take 183 of the ULX3S-85F's 208 block RAMs at the most folded design (88%)
SWEEP_CEILING = {("cnv_2w2a", "ulx3s-85f"): 0.9}


def export_named(name: str, path: Path) -> Path:
    """Export the test model ``name`` (a BNN-PYNQ name, or one of tests/models*.py) to ``path``."""
    sys.path.insert(0, str(ROOT / "tests"))
    import models
    import models_conv

    if name in ("mobilenet_block", "odd_net", "wide_net"):
        return getattr(models_conv, name)(path)
    return models.export_model(name, path)


def _put(rows: list, out: Path, row: dict) -> list:
    """``rows`` with ``row`` in place of any earlier one of its model, board and fold, written to
    ``out`` at once (a long sweep keeps what it has)."""
    key = (row["model"], row["board"], row["fold"])
    rows = [r for r in rows if (r["model"], r["board"], r["fold"]) != key] + [row]
    out.write_text(json.dumps(rows, indent=1) + "\n")
    return rows


def _pct(err) -> str:
    return "-" if err is None else f"{err:+.1%}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["tfc_1w1a", "cnv_1w1a"])
    ap.add_argument("--boards", nargs="+", default=["pynq-z1", "ulx3s-85f"])
    ap.add_argument("--folds", nargs="+", default=["fps:1000", "board"])
    ap.add_argument("--out", default=str(HERE / "results" / "synth_vs_estimate.json"))
    ap.add_argument("--workdir", default=None, help="keep builds here (default: a temporary folder)")
    ap.add_argument("--timeout", type=float, default=30,
                    help="minutes of whole-design synthesis before it falls back to unit by unit")
    ap.add_argument("--ceiling", type=float, default=None,
                    help="utilisation ceiling of board folds (default: 80%%, or the sweep's own, SWEEP_CEILING)")
    ap.add_argument("--jobs", type=int, default=2, help="parallel Yosys runs (unit-by-unit fallback)")
    ap.add_argument("--reuse", action="store_true", help="use builds already in --workdir")
    ap.add_argument("--verify-fit", action="store_true",
                    help="board folds through `compile --verify-fit`: Yosys confirms the design is under "
                         "the ceiling (its rounds go to the row); cached synthesis makes a re-run quick")
    ap.add_argument("--table", action="store_true",
                    help="print the rows stored in --out as a Markdown table and stop")
    ap.add_argument("--fit-in-context", action="store_true",
                    help="fit the per-family whole-design LUT factor from the rows (see above)")
    ap.add_argument("--fit-models", nargs="+", default=["cnv_1w1a"])
    ap.add_argument("--fit-multibit-models", nargs="*", default=[],
                    help="rows to fit the multi-bit factor on (none by default: the demo's trained "
                         "layers shrink flattened, random-weight ones do not; see docs/resources.md)")
    a = ap.parse_args(argv)

    from streamfold.compiler.build import compile_model
    from streamfold.compiler.model import CompiledModel
    from streamfold.compiler.resources import estimate_pipeline
    from streamfold.compiler.search import FoldSearchError
    from streamfold.compiler.synth import SynthError, synth_build
    from streamfold.compiler.verify_fit import FitError, compile_verified

    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = json.loads(out.read_text()) if out.exists() else []
    if a.table:
        print(markdown_table(rows))
        return 0
    work = Path(a.workdir) if a.workdir else Path(tempfile.mkdtemp(prefix="sf_synth_"))
    work.mkdir(parents=True, exist_ok=True)
    names = [m for x in a.models for m in (SWEEP if x == "sweep" else [x])]
    for model in names:
        if model.endswith(".onnx"):  # a model file (the shipped demo, an export of your own)
            onnx, model = Path(model).resolve(), Path(model).stem
        else:
            onnx = work / f"{model}.onnx"
            if not onnx.exists():
                export_named(model, onnx)
        for board in a.boards:
            for fold in a.folds:
                tag = f"{model}/{board}/{fold}"
                bdir = work / f"{model}_{board}_{fold.replace(':', '')}"
                kw = {"board": board}
                ceiling = a.ceiling or SWEEP_CEILING.get((model, board))
                if ceiling:
                    kw["ceiling"] = ceiling
                if fold.startswith("fps:"):
                    kw["target_fps"] = float(fold[4:])
                t0 = time.monotonic()
                if a.reuse and (bdir / "report.json").exists():
                    report = json.loads((bdir / "report.json").read_text())
                else:
                    try:
                        if a.verify_fit and fold == "board":
                            cm, report = compile_verified(onnx, bdir, kw.pop("board"), jobs=a.jobs,
                                                          synth_timeout=a.timeout * 60, **kw)
                        else:
                            cm, report = compile_model(onnx, bdir, **kw)
                    except (FoldSearchError, FitError) as e:  # does not fit: say so and go on
                        print(f"[{tag}] does not fit: {e}", flush=True)
                        rows = _put(rows, out, {"model": model, "board": board, "fold": fold, "refused": str(e)})
                        continue
                    except SynthError as e:  # --verify-fit's synthesis past the limit even unit by unit
                        print(f"[{tag}] synthesis did not finish: {e}", flush=True)
                        rows = _put(rows, out, {"model": model, "board": board, "fold": fold,
                                                "unfinished": f"{e} (--verify-fit)"})
                        continue
                t_compile = time.monotonic() - t0
                print(f"[{tag}] compiled in {t_compile:.1f} s: {report['totals']['expected_cycles_per_frame']} "
                      f"cycles/frame; synthesising ...", flush=True)
                t0 = time.monotonic()
                try:
                    doc = synth_build(bdir, board=board, timeout=a.timeout * 60, jobs=a.jobs)
                except SynthError as e:  # past the limit even unit by unit: say so and go on
                    print(f"[{tag}] synthesis did not finish: {e}", flush=True)
                    rows = _put(rows, out, {"model": model, "board": board, "fold": fold,
                                            "cycles_per_frame": report["totals"]["expected_cycles_per_frame"],
                                            "unfinished": f"{e} (after the whole design ran past it too)"})
                    continue
                t_synth = time.monotonic() - t0
                cmp = doc["comparison"]
                pipeline = CompiledModel.load(bdir).pipeline
                full = estimate_pipeline(pipeline, doc["family"])
                est = full["total"]
                row = {"model": model, "board": board, "fold": fold, "family": doc["family"],
                       "parts_lut": est.get("parts_LUT", est["LUT"]),
                       **dict(zip(("soft_lut", "multibit_lut"), _soft_lut(pipeline, full["parts"], doc["family"]))),
                       "synth_lut": doc["total"]["resources"]["LUT"],
                       "cycles_per_frame": report["totals"]["expected_cycles_per_frame"],
                       "compile_s": round(t_compile, 1), "synth_s": round(t_synth, 1),
                       "yosys_s": doc["seconds"]["yosys_total"],  # the run's own time, when cached too
                       "comparison": {k: cmp[k] for k in CLASSES}}
                if ceiling:
                    row["ceiling"] = ceiling
                if report.get("fit_check"):
                    fc = report["fit_check"]
                    row["fit_check"] = {"fits": fc["fits"], "rounds": len(fc["rounds"]),
                                        "utilisation": fc["rounds"][-1]["utilisation"]}
                row["synth_from"] = doc["total"].get("from", "whole design")
                rows = _put(rows, out, row)
                cells = "  ".join(f"{k} {cmp[k]['estimate']}/{cmp[k]['synth']} ({_pct(cmp[k]['error'])})"
                                  for k in CLASSES)
                print(f"[{tag}] est/synth  {cells}  (synth {t_synth:.0f} s)", flush=True)
    print(f"wrote {out}")
    if a.fit_in_context:
        fit_in_context(rows, a.fit_models, a.fit_multibit_models)
    return 0


def markdown_table(rows: list) -> str:
    """The rows as a Markdown table: Yosys first, the estimate and its error in brackets, the
    utilisation of the board and the synthesis time."""
    from streamfold.boards import load_board

    def cell(c):
        if c["estimate"] == c["synth"]:
            return f"{c['synth']:,} = {c['estimate']:,}"
        return f"{c['synth']:,} (est {c['estimate']:,}, {_pct(c['error'])})"
    lines = ["| model | board | cycles/frame | LUT | FF | BRAM | DSP | LUT of board | Yosys |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    order = [Path(m).stem if m.endswith(".onnx") else m for m in SWEEP]
    rows = sorted(rows, key=lambda r: (order.index(r["model"]) if r["model"] in order else len(order),
                                       r["model"], r["board"] != "pynq-z1"))
    for r in rows:
        if "refused" in r:
            lines.append(f"| {r['model']} | {r['board']} | does not fit: {r['refused']} | | | | | | |")
            continue
        if "unfinished" in r:
            cyc = f"{r['cycles_per_frame']:,}" if "cycles_per_frame" in r else "-"
            lines.append(f"| {r['model']} | {r['board']} | {cyc} | synthesis did not "
                         f"finish: {r['unfinished']} | | | | | |")
            continue
        c = r["comparison"]
        lut = c["LUT_TOTAL"]["synth"] / load_board(r["board"]).resources["LUT"]
        how = "" if r.get("synth_from", "whole design") == "whole design" else " (unit by unit)"
        if r.get("ceiling"):
            how += f", fold under a {r['ceiling']:.0%} ceiling"
        if r.get("fit_check"):
            n = r["fit_check"]["rounds"]
            how += f", --verify-fit: fits ({n} round{'s' * (n > 1)})"
        lines.append(f"| {r['model']} | {r['board']} | {r['cycles_per_frame']:,} | {cell(c['LUT_TOTAL'])} | "
                     f"{cell(c['FF'])} | {cell(c['BRAM'])} | {cell(c['DSP'])} | {lut:.1%} | "
                     f"{r.get('yosys_s', r['synth_s']):.0f} s{how} |")
    return "\n".join(lines)


def _soft_lut(pipeline, parts: list, family: str) -> tuple[int, int]:
    """Estimated soft logic (``parts`` of :func:`estimate_pipeline`) of the units with soft-logic
    products, all and the multi-bit ones: what the whole-design factors scale."""
    from streamfold.compiler.resources import soft_products

    est = {p.get("unit"): p.get("LUT", 0) for p in parts}
    soft = [u for u in pipeline.units if soft_products(u, family)]
    return (sum(est[u.name] for u in soft),
            sum(est[u.name] for u in soft if not getattr(u, "binary", False)))


def _whole(r: dict, k: float, k_mb: float) -> float:
    """The whole design's LUT estimate of a row with factors ``k`` (binary) and ``k_mb``."""
    soft, mb = r.get("soft_lut", 0), r.get("multibit_lut", 0)
    return r["parts_lut"] - soft + (soft - mb) * k + mb * k_mb


def fit_in_context(rows: list, models: list, mb_models: list) -> None:
    """Per family: the factor that the binary soft-product units' part estimates shrink by in
    the whole design (mean over ``models``' rows with no multi-bit soft products), then the one
    of the multi-bit soft-product units (mean over ``mb_models``' rows, the binary factor
    applied); a family whose ratios straddle 1 gets none. The other rows are a held-out check."""
    from streamfold.compiler import resources as R

    cal = json.loads(R.CALIBRATION_FILE.read_text())
    cal.setdefault("in_context", {})
    for fam in sorted({r["family"] for r in rows if "family" in r}):
        fr = [r for r in rows if "parts_lut" in r and r["family"] == fam and r.get("soft_lut")]
        entry, fitted = {}, []
        binary = [r for r in fr if r["model"] in models and not r.get("multibit_lut")]
        ratios = [(r["synth_lut"] - (r["parts_lut"] - r["soft_lut"])) / r["soft_lut"] for r in binary]
        k = round(sum(ratios) / len(ratios), 4) if ratios and not min(ratios) <= 1.0 <= max(ratios) else 1.0
        mb = [r for r in fr if r["model"] in mb_models and r.get("multibit_lut")]
        mratios = [(r["synth_lut"] - _whole(r, k, 0.0)) / r["multibit_lut"] for r in mb]
        k_mb = round(sum(mratios) / len(mratios), 4) if mratios and not min(mratios) <= 1.0 <= max(mratios) else 1.0
        if k != 1.0:
            entry.update(LUT=k, ratios=[round(x, 4) for x in ratios])
        if k_mb != 1.0:
            entry.update(multibit_LUT=k_mb, multibit_ratios=[round(x, 4) for x in mratios])
        fitted = [r for r in binary if k != 1.0] + [r for r in mb if k_mb != 1.0]
        if entry:
            entry["fitted_on"] = [f"{r['model']}/{r['board']}/{r['fold']}" for r in fitted]
            cal["in_context"][fam] = entry
        else:
            cal["in_context"].pop(fam, None)
        print(f"{fam}: binary soft products x{k} (ratios {', '.join(f'{x:.3f}' for x in ratios) or '-'}), "
              f"multi-bit x{k_mb} (ratios {', '.join(f'{x:.3f}' for x in mratios) or '-'})")
        for r in fr:
            e = _whole(r, k, k_mb)
            tag = "fitted on" if r in fitted else "held out"
            print(f"  {tag} {r['model']}/{r['board']}/{r['fold']}: LUT {e:.0f} vs {r['synth_lut']} "
                  f"({(e - r['synth_lut']) / r['synth_lut']:+.1%})")
    R.CALIBRATION_FILE.write_text(json.dumps(cal, indent=1) + "\n")
    print(f"wrote {R.CALIBRATION_FILE}")


if __name__ == "__main__":
    sys.exit(main())

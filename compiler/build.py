"""``streamfold compile``: model file -> build folder (Verilog, folded IR, fold.json, report.json).

The Verilog's large weight/threshold ROMs read memory files (``<unit>_weights.hex``,
``<unit>_thresholds.hex``, see :mod:`streamfold.hw.rom`) with ``$readmemh`` by bare file name;
they sit in the build folder next to ``streamfold_top.v``. Tools must run in (or copy them to)
the folder they read the Verilog from: :func:`read_design` returns the text and the files.
"""
from __future__ import annotations

import time
from pathlib import Path

from .cost import pipeline_cycles, unit_cycles
from .errors import BuildError
from .fifo_sizing import size_fifos
from .folding import apply_fold, default_fold, fold_to_json, read_fold_file
from .ir import dumps
from .load import load_model
from .lower import lower
from .build_folder import TOP_NAME, VERILOG_FILE, read_design, referenced_files  # noqa: F401
from .model import CompiledModel

DEFAULT_CLOCK_MHZ = 100.0


def lower_file(model_path, fold: dict | None = None, fold_source: str = "fold", *, board=None,
               target_fps: float | None = None, clock_mhz: float | None = None,
               ceiling: float | None = None, log=None, strip_width: int | None = None,
               line_buffer_budget: int | None = None, topk: int | None = None,
               target_mhz: float | None = None) -> CompiledModel:
    """Load, clean and lower a model file, then fold it and size its FIFOs.

    The fold is, in order of precedence: ``fold`` (a fold file's contents); the least resources
    reaching ``target_fps`` at ``clock_mhz`` (on ``board`` if given); the highest throughput that
    fits ``board`` under ``ceiling``; else the balanced default. A search leaves its visited folds
    in ``cm.search``. With ``strip_width`` or ``line_buffer_budget`` (bits) the folded pipeline is
    tiled into column strips (:mod:`streamfold.compiler.tiling`); the plan is ``cm.tiling``. With
    ``topk`` a classifier ends in a top-k unit and returns class indices
    (:mod:`streamfold.compiler.label_select`). With ``target_mhz`` the dot-product units get the
    register stages and input copies the delay model says that clock needs
    (:func:`streamfold.compiler.timing.close_timing`); the plan is ``cm.timing_plan``.
    """
    from .search import DEFAULT_CEILING, fold_for_board, fold_for_fps

    cm = lower(load_model(model_path), str(model_path))
    if topk is not None:
        from .label_select import select_labels
        cm = select_labels(cm, int(topk))
    ceiling = DEFAULT_CEILING if ceiling is None else ceiling
    clock = clock_mhz or (board.clock_mhz if board is not None else DEFAULT_CLOCK_MHZ)
    if fold is not None:
        cm.pipeline = apply_fold(cm.pipeline, fold, fold_source)
    elif target_fps:
        cm.search = fold_for_fps(cm.pipeline, target_fps, clock, board, ceiling)
        cm.pipeline = cm.search.pipeline
    elif board is not None:
        cm.search = fold_for_board(cm.pipeline, board, ceiling, log=log)
        cm.pipeline = cm.search.pipeline
    else:
        cm.pipeline = default_fold(cm.pipeline)
    if target_mhz is not None and not target_mhz > 0:
        raise BuildError(f"--target-mhz {target_mhz:g}: a clock must be a positive frequency in MHz")
    if target_mhz:
        from .timing import DELAY_MODELS, close_timing

        fam = board.family if board is not None else "xc7"
        cm.pipeline, rows = close_timing(cm.pipeline, target_mhz, fam)
        cm.timing_plan = {"target_mhz": float(target_mhz), "family": fam, "delay_model": DELAY_MODELS[fam],
                          "layers": rows}
        if log:
            dots = [r for r in rows if "skid" not in r]
            staged = [r for r in dots if r["tree_stages"] or r["out_stages"] or r["input_copies"]]
            skids = [r for r in rows if r.get("skid")]
            log(f"timing for {target_mhz:g} MHz ({fam} delay model): register stages or input copies in "
                f"{len(staged)} of {len(dots)} dot-product layers"
                + (f", a skid register in {len(skids)} window{'s' * (len(skids) > 1)}" if skids else ""))
    cm.pipeline.check()
    cm.pipeline = size_fifos(cm.pipeline)
    if strip_width is not None or line_buffer_budget is not None:
        from .tiling import tile

        cm.pipeline, cm.tiling = tile(cm.pipeline, strip_width, line_buffer_budget)
        if log:
            t = cm.tiling.summary
            log(f"tiled into {t['strips']} strips of {t['strip_width']} columns: line buffers "
                f"{t['line_buffer_bits']['untiled']:,} -> {t['line_buffer_bits']['tiled']:,} bits, "
                f"{t['cycles_per_frame']['untiled']:,} -> {t['cycles_per_frame']['tiled']:,} cycles/frame")
    return cm


def write_build(cm: CompiledModel, out_dir, clock_mhz: float = DEFAULT_CLOCK_MHZ, log=None,
                board=None) -> dict:
    """Elaborate the hardware and write every file of a build folder; return the report."""
    from streamfold.hw import emit_design

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise BuildError(f"{out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    design = emit_design(cm.pipeline, TOP_NAME)
    if log:
        files = f" and {len(design.files)} memory files" if design.files else ""
        log(f"elaborated {len(cm.pipeline.units)} units to Verilog{files} in "
            f"{time.monotonic() - t0:.1f} s")
    old = out / VERILOG_FILE
    if old.is_file():  # memory files of an earlier build in this folder that are no longer used
        for name in referenced_files(old.read_text()):
            if name not in design.files and Path(name).name == name:
                (out / name).unlink(missing_ok=True)
    design.write(out, VERILOG_FILE)
    cm.save(out)
    (out / "fold.json").write_text(dumps(fold_to_json(cm.pipeline)))
    report = make_report(cm, clock_mhz, board)
    if getattr(cm, "search", None) is not None:
        report["search"] = cm.search.to_json()
    if getattr(cm, "timing_plan", None) is not None:
        report["timing_plan"] = cm.timing_plan
    try:
        from .plots import write_plots

        report["plots"] = write_plots(report, out)
    except ImportError:  # matplotlib is optional
        report["plots"] = []
    (out / "report.json").write_text(dumps(report))
    return report


def compile_model(model_path, out_dir, fold_path=None, clock_mhz: float | None = None, log=None,
                  board=None, target_fps: float | None = None, ceiling: float | None = None,
                  strip_width: int | None = None, line_buffer_budget: int | None = None,
                  topk: int | None = None, target_mhz: float | None = None):
    if isinstance(board, str):  # an unknown board fails before any work
        from streamfold.boards import load_board
        board = load_board(board)
    clock = clock_mhz or target_mhz or (board.clock_mhz if board is not None else DEFAULT_CLOCK_MHZ)
    fold = read_fold_file(fold_path) if fold_path else None
    t0 = time.monotonic()
    cm = lower_file(model_path, fold, str(fold_path) if fold_path else "fold", board=board,
                    target_fps=target_fps, clock_mhz=clock, ceiling=ceiling, log=log,
                    strip_width=strip_width, line_buffer_budget=line_buffer_budget, topk=topk,
                    target_mhz=target_mhz)
    if log:
        how = "fold file" if fold else ("target frame rate" if target_fps else
                                        (f"fit to {board.name}" if board else "balanced default"))
        log(f"lowered and folded ({how}) {model_path}: {len(cm.pipeline.units)} units in "
            f"{time.monotonic() - t0:.1f} s")
    report = write_build(cm, out_dir, clock, log, board)
    return cm, report


def make_report(cm: CompiledModel, clock_mhz: float = DEFAULT_CLOCK_MHZ, board=None) -> dict:
    """The compile report; ``board`` (a name or Board) adds utilisation to the resource estimates."""
    p = cm.pipeline
    from .fifo_sizing import analyse_fifos, expected_pace, fifo_report
    analysis = analyse_fifos(p)
    cost_cycles, _ = pipeline_cycles(p)
    cycles, bottleneck = expected_pace(p, analysis)
    strip_cycles = cycles
    cycles *= cm.strips_per_frame  # a tiled frame is that many strips, back to back
    fifos = fifo_report(p, analysis)
    layers = []
    for u in p.units:
        i, o = u.in_stream, u.out_stream
        row = {
            "name": u.name, "kind": u.kind, "source": getattr(u, "source", ""),
            "in_shape": list(i.shape), "out_shape": list(o.shape),
            "in_dtype": i.dtype.name, "out_dtype": o.dtype.name,
        }
        if hasattr(u, "weight_dtype"):
            row["weight_dtype"] = u.weight_dtype.name
            row["weight_shape"] = list(u.weights.shape)
            row["thresholds"] = getattr(u, "n_thresholds", 0)
            row["acc_dtype"] = u.acc_dtype.name
            row["binary"] = bool(getattr(u, "binary", False))
        if hasattr(u, "res_type"):
            from .units.dot_product import has_multipliers
            # where the products go: soft logic by choice (res_type lut) or by nature, else the
            # multipliers synthesis maps (DSP blocks where the widths qualify)
            row["products"] = ("lut" if u.res_type == "lut" or not has_multipliers(u) else "auto")
            row["stages"] = {"tree": u.tree_stages, "out": u.out_stages,
                             "input_copies": getattr(u, "input_copies", 0), "decoupled": int(u.decoupled),
                             "local_weights": int(getattr(u, "local_weights", 0)),
                             "weight_register": int(getattr(u, "weight_register", 0)),
                             "lane_addresses": int(getattr(u, "lane_addresses", 0))}
        if u.kind == "swg_whole":
            row["skid"] = int(u.skid)
        row.update({k.lower(): v for k, v in u.folding().items()})
        row["expected_cycles"] = unit_cycles(u)
        layers.append(row)
    report = {
        "model": cm.source,
        "input": {"name": cm.input_name, "shape": list(cm.input_shape),
                  "stream": {"dtype": p.in_stream.dtype.name, "fold": p.in_stream.fold}},
        "output": {"name": cm.output_name, "shape": list(cm.output_shape),
                   "stream": {"dtype": p.out_stream.dtype.name, "fold": p.out_stream.fold},
                   **({"class_indices": int(cm.output_shape[-1])} if cm.host_out.labels else {})},
        "layers": layers,
        "totals": {
            "expected_cycles_per_frame": cycles,
            "bottleneck": bottleneck,
            "slowest_unit_cycles_per_frame": cost_cycles * cm.strips_per_frame,
            "clock_mhz": clock_mhz,
            "expected_fps": round(clock_mhz * 1e6 / cycles, 1),
            "fifo_depths": list(p.fifo_depths),
            "fifo_bits": int(sum(f["bits"] for f in fifos)),
        },
        "fifos": fifos,
    }
    if cm.tiling is not None:
        report["totals"]["strips_per_frame"] = cm.strips_per_frame
        report["totals"]["expected_cycles_per_strip"] = strip_cycles
        report["tiling"] = dict(cm.tiling.summary, starts=cm.tiling.starts, keep=cm.tiling.keep,
                                place=cm.tiling.place)
    # resource estimates per layer and in total (see compiler/resources.py)
    from .resources import report_resources
    res = report_resources(p, board)
    for row in layers:
        row["resources"] = res["units"].get(row["name"])
    # where each FIFO's storage goes (block RAM for the deep skip FIFOs of a branching graph)
    from .resources import estimate_pipeline
    parts = {q["name"]: q for q in estimate_pipeline(p, res["family"])["parts"] if q["kind"] == "fifo"}
    for row in fifos:
        q = parts.get(row["name"], {})
        row["bram"], row["lutram"] = int(q.get("BRAM", 0)), int(q.get("LUTRAM", 0))
    report["resources"] = res
    return report

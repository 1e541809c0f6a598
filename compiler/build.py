"""``streamfold compile``: model file -> build folder (Verilog, folded IR, fold.json, report.json)."""
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
from .model import CompiledModel

TOP_NAME = "streamfold_top"
VERILOG_FILE = f"{TOP_NAME}.v"
DEFAULT_CLOCK_MHZ = 100.0


def lower_file(model_path, fold: dict | None = None, fold_source: str = "fold") -> CompiledModel:
    """Load, clean and lower a model file, then fold it (``fold`` or the balanced default)."""
    cm = lower(load_model(model_path), str(model_path))
    cm.pipeline = apply_fold(cm.pipeline, fold, fold_source) if fold is not None else \
        default_fold(cm.pipeline)
    cm.pipeline.check()
    cm.pipeline = size_fifos(cm.pipeline)
    return cm


def write_build(cm: CompiledModel, out_dir, clock_mhz: float = DEFAULT_CLOCK_MHZ, log=None,
                board=None) -> dict:
    """Elaborate the hardware and write every file of a build folder; return the report."""
    from streamfold.hw import emit_verilog

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise BuildError(f"{out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    verilog = emit_verilog(cm.pipeline, TOP_NAME)
    if log:
        log(f"elaborated {len(cm.pipeline.units)} units to Verilog in {time.monotonic() - t0:.1f} s")
    (out / VERILOG_FILE).write_text(verilog)
    cm.save(out)
    (out / "fold.json").write_text(dumps(fold_to_json(cm.pipeline)))
    report = make_report(cm, clock_mhz, board)
    (out / "report.json").write_text(dumps(report))
    return report


def compile_model(model_path, out_dir, fold_path=None, clock_mhz: float = DEFAULT_CLOCK_MHZ, log=None,
                  board=None):
    if isinstance(board, str):  # an unknown board fails before any work
        from streamfold.boards import load_board
        board = load_board(board)
    fold = read_fold_file(fold_path) if fold_path else None
    t0 = time.monotonic()
    cm = lower_file(model_path, fold, str(fold_path) if fold_path else "fold")
    if log:
        log(f"lowered {model_path} to {len(cm.pipeline.units)} units in {time.monotonic() - t0:.1f} s")
    report = write_build(cm, out_dir, clock_mhz, log, board)
    return cm, report


def make_report(cm: CompiledModel, clock_mhz: float = DEFAULT_CLOCK_MHZ, board=None) -> dict:
    """The compile report; ``board`` (a name or Board) adds utilisation to the resource estimates."""
    p = cm.pipeline
    cycles, bottleneck = pipeline_cycles(p)
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
        row.update({k.lower(): v for k, v in u.folding().items()})
        row["expected_cycles"] = unit_cycles(u)
        layers.append(row)
    report = {
        "model": cm.source,
        "input": {"name": cm.input_name, "shape": list(cm.input_shape),
                  "stream": {"dtype": p.in_stream.dtype.name, "fold": p.in_stream.fold}},
        "output": {"name": cm.output_name, "shape": list(cm.output_shape),
                   "stream": {"dtype": p.out_stream.dtype.name, "fold": p.out_stream.fold}},
        "layers": layers,
        "totals": {
            "expected_cycles_per_frame": cycles,
            "bottleneck": bottleneck,
            "clock_mhz": clock_mhz,
            "expected_fps": round(clock_mhz * 1e6 / cycles, 1),
            "fifo_depths": list(p.fifo_depths),
        },
    }
    # resource estimates per layer and in total (see compiler/resources.py)
    from .resources import report_resources
    res = report_resources(p, board)
    for row in layers:
        row["resources"] = res["units"].get(row["name"])
    report["resources"] = res
    return report

"""``streamfold demo``: the whole flow on the shipped digits model, with accuracy from the hardware.

Compiles the default model, streams the whole held-out test split through the Verilog in
Verilator, and sets the hardware's accuracy next to PyTorch's (recorded at export) and qonnx's
(computed now from the original model), image by image.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from .errors import StreamfoldError

DEFAULT_MODEL = Path("examples/models/digits_w2a2.onnx")
DEFAULT_DATA = Path("examples/models/digits_test.npz")
DEFAULT_BOARD = "pynq-z1"


def _log(msg: str) -> None:
    print(f"  .. {msg}", file=sys.stderr, flush=True)


def qonnx_predictions(model_path, x: np.ndarray, log=None) -> np.ndarray:
    """qonnx's ``execute_onnx`` of the original model, frame by frame (float outputs)."""
    from qonnx.core.onnx_exec import execute_onnx

    from .load import load_model

    model = load_model(model_path)
    iname = next(i.name for i in model.graph.input
                 if i.name not in {t.name for t in model.graph.initializer})
    oname = model.graph.output[0].name
    outs = []
    t0 = time.monotonic()
    for i in range(len(x)):
        outs.append(execute_onnx(model, {iname: x[i:i + 1]})[oname][0])
        if log and (i + 1) % 100 == 0:
            log(f"qonnx: {i + 1}/{len(x)} frames ({time.monotonic() - t0:.0f} s)")
    return np.stack(outs)


def run_demo(model=DEFAULT_MODEL, data=DEFAULT_DATA, build=Path("demo_build"), frames=None,
             engine="verilator", board=DEFAULT_BOARD) -> int:
    from streamfold.sim.simulate import simulate_build, write_sim_json

    from .build import compile_model
    from .cli import print_report

    model, data = Path(model), Path(data)
    for p in (model, data):
        if not p.exists():
            raise StreamfoldError(f"{p}: not found; run `make demo` from the repository root, or pass "
                                  "--model/--data (train new ones with examples/train_digits.py)")
    d = np.load(data)
    x, labels = d["x"].astype(np.float32), d["y"].astype(np.int64)
    # PyTorch's outputs recorded at export: "logits_<model stem suffix>" (e.g. logits_w2a2) or "logits"
    key = next((k for k in (f"logits_{model.stem.split('_')[-1]}", "logits") if k in d.files), None)
    torch_logits = d[key] if key else None
    if frames:
        x, labels = x[:frames], labels[:frames]
        torch_logits = None if torch_logits is None else torch_logits[:frames]
    print(f"streamfold demo: {model} on {len(x)} held-out images ({data})\n")
    t0 = time.monotonic()
    kw = {"board": board} if board else {}
    cm, report = compile_model(model, build, None, log=_log, **kw)
    print_report(report)
    print()
    res = simulate_build(build, x, engine=engine, p_gap=0.1, p_stall=0.1, seed=1, log=_log)
    rep = res["report"]
    hw = res["outputs"].reshape(len(x), -1)
    hw_pred = hw.argmax(1)
    _log("running qonnx's executor on the original model for comparison")
    q = qonnx_predictions(model, x, log=_log).reshape(len(x), -1)
    q_pred = q.argmax(1)
    rep["accuracy"] = {"hardware": float((hw_pred == labels).mean()),
                       "qonnx": float((q_pred == labels).mean())}
    agree_q = int((hw_pred == q_pred).sum())
    lines = [["hardware (Verilator)", f"{100 * rep['accuracy']['hardware']:.2f}%", "-"],
             ["qonnx execute_onnx", f"{100 * rep['accuracy']['qonnx']:.2f}%", f"{agree_q}/{len(x)}"]]
    agree_t = None
    if torch_logits is not None:
        t_pred = torch_logits.reshape(len(x), -1).argmax(1)
        rep["accuracy"]["pytorch"] = float((t_pred == labels).mean())
        agree_t = int((hw_pred == t_pred).sum())
        lines.append(["PyTorch (at export)", f"{100 * rep['accuracy']['pytorch']:.2f}%",
                      f"{agree_t}/{len(x)}"])
    write_sim_json(build, rep)
    from .cli import _table

    print(_table(lines, ["outputs from", "accuracy", "same prediction as hardware"]))
    t = report["totals"]
    ii = rep["measured_cycles_per_frame"]
    clock = t["clock_mhz"]
    print(f"\nbit-exact vs integer reference: {'yes' if rep['bit_exact'] else 'NO'} "
          f"({len(x)} frames, random gaps and back-pressure)")
    print(f"throughput: {ii:g} cycles/frame measured ({t['expected_cycles_per_frame']} expected) = "
          f"{clock * 1e6 / ii:,.0f} frames/s at {clock:g} MHz; latency {rep['latency_cycles']} cycles "
          f"({rep['latency_cycles'] / clock:.1f} us)")
    res = report.get("resources") or {}
    if res:
        tot, util = res["total"], res.get("utilisation", {})
        items = [("LUT", "LUT_TOTAL"), ("FF", "FF"), ("BRAM18", "BRAM"), ("DSP", "DSP")]
        print("resources (estimate" + (f", {res['board']}" if res.get("board") else "") + "): " + ", ".join(
            f"{label} {tot.get(key, 0):,}" + (f" ({100 * util[key if key != 'LUT_TOTAL' else 'LUT']:.1f}%)"
                                              if util else "") for label, key in items))
    print(f"\nreports: {build}/report.json, {build}/sim.json"
          + "".join(f", {build}/{p}" for p in report.get("plots", [])))
    ok = rep["bit_exact"] and agree_q == len(x) and (agree_t is None or agree_t == len(x))
    print(f"\ndemo finished in {time.monotonic() - t0:.0f} s: "
          + ("hardware, qonnx and PyTorch agree on every image" if ok else "DISAGREEMENT, see above"))
    return 0 if ok else 1

"""Calibrate streamfold's resource model against Yosys.

Synthesises a sweep of unit shapes and foldings per family (binary and multi-bit matrix-vector
units, FIFOs, width converters, sliding windows, pools, thresholds, vector-vector units, top-k
selection), each out of context with the same script ``streamfold synth`` uses, then fits the
LUT/FF coefficients of :mod:`streamfold.compiler.resources` by least squares and writes
``compiler/calibration.json``.

    python benchmarks/calibrate_resources.py                    # every family, sweep + fit
    python benchmarks/calibrate_resources.py --family xc7 ecp5  # some families
    python benchmarks/calibrate_resources.py --fit-only         # refit from the stored samples

Synthesis results are cached (see ``streamfold.compiler.synth``), so a re-run only synthesises what is
new; the raw samples go to ``benchmarks/calibration_samples.json`` (kept, so a refit needs no Yosys).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from streamfold.compiler import resources as R
from streamfold.compiler.ir import DataType, MatrixVectorUnit
from streamfold.compiler.synth import component_verilog, synth_many

HERE = Path(__file__).resolve().parent
SAMPLES = HERE / "calibration_samples.json"
BIP = DataType.bipolar_type()


def make_mvau(name, mh, mw, pe, simd, wdt: str, idt: str, n_thr: int, seed: int = 0,
              res_type: str = "auto", zeros: float = 0.0, thr_style: str = "random") -> MatrixVectorUnit:
    """A matrix-vector unit with random weights and sorted random thresholds inside its range
    (``res_type`` "lut": its products in soft logic; ``zeros``: that share of the weights set to
    0, as in trained low-bit layers, where about half the weights are zero; ``thr_style``
    "affine": each channel's thresholds evenly spaced, as a scale and a bias streamlined into a
    uniform quantizer give them, over a random part of the range)."""
    rng = np.random.default_rng(seed)
    wd, xd = DataType.parse(wdt), DataType.parse(idt)
    if wd.bipolar:
        w = rng.choice([-1, 1], size=(mh, mw))
    else:
        w = rng.integers(wd.min, wd.max + 1, size=(mh, mw))
    if zeros:
        w = np.where(rng.random((mh, mw)) < zeros, 0, w)
    u = MatrixVectorUnit(name=name, weights=w.astype(np.int64), weight_dtype=wd, in_dtype=xd,
                         out_dtype=BIP, pe=pe, simd=simd, res_type=res_type)
    lo, hi = u.acc_range
    if n_thr and thr_style == "affine":
        span = (hi - lo) * rng.uniform(0.1, 0.6, size=(mh, 1))
        start = lo + (hi - lo - span) * rng.uniform(0, 1, size=(mh, 1))
        t = np.ceil(start + span * (np.arange(n_thr) + 0.5) / n_thr)
        u.thresholds = t.astype(np.int64)
        u.out_dtype = DataType.uint_type(max(1, n_thr.bit_length()))
    elif n_thr:
        t = np.sort(rng.integers(lo, hi + 1, size=(mh, n_thr)), axis=1)
        u.thresholds = t.astype(np.int64)
        u.out_dtype = BIP if (n_thr == 1 and u.binary) else DataType.uint_type(max(1, n_thr.bit_length()))
    else:
        u.out_dtype = u.acc_dtype
    u.check_folding()
    return u


# (MH, MW, PE, SIMD, weight, input, thresholds)
MVAU_SWEEP = [
    # binary (XNOR-popcount), one threshold
    (64, 64, 1, 8, "BIPOLAR", "BIPOLAR", 1), (64, 64, 4, 16, "BIPOLAR", "BIPOLAR", 1),
    (64, 64, 8, 32, "BIPOLAR", "BIPOLAR", 1), (64, 64, 2, 32, "BIPOLAR", "BIPOLAR", 1),
    (64, 784, 4, 16, "BIPOLAR", "BIPOLAR", 1), (64, 784, 2, 49, "BIPOLAR", "BIPOLAR", 1),
    (256, 256, 8, 8, "BIPOLAR", "BIPOLAR", 1), (128, 512, 2, 64, "BIPOLAR", "BIPOLAR", 1),
    (32, 32, 4, 32, "BIPOLAR", "BIPOLAR", 1), (64, 64, 32, 4, "BIPOLAR", "BIPOLAR", 1),
    (10, 64, 1, 1, "BIPOLAR", "BIPOLAR", 0), (10, 64, 10, 16, "BIPOLAR", "BIPOLAR", 0),
    (256, 1024, 4, 32, "BIPOLAR", "BIPOLAR", 1), (512, 512, 16, 8, "BIPOLAR", "BIPOLAR", 1),
    # bipolar weights, multi-bit inputs
    (64, 64, 4, 8, "BIPOLAR", "UINT2", 3), (32, 128, 2, 16, "BIPOLAR", "UINT2", 3),
    (64, 64, 8, 8, "BIPOLAR", "UINT4", 15),
    # multi-bit weights and inputs
    (64, 64, 4, 8, "INT2", "UINT2", 3), (32, 64, 8, 16, "INT2", "UINT2", 3),
    (64, 128, 2, 4, "INT2", "INT2", 3), (16, 64, 4, 32, "INT2", "UINT2", 3),
    (64, 64, 4, 4, "INT4", "UINT4", 15), (32, 32, 8, 8, "INT4", "UINT4", 15),
    (64, 64, 1, 16, "INT4", "INT4", 0), (16, 16, 4, 4, "INT8", "UINT8", 0),
    (64, 256, 8, 8, "INT4", "UINT4", 15), (32, 64, 4, 16, "INT3", "UINT3", 7),
    (128, 64, 16, 2, "INT2", "UINT2", 3), (10, 32, 2, 8, "INT4", "UINT4", 0),
    (128, 128, 1, 1, "INT8", "UINT8", 0), (256, 64, 4, 2, "INT4", "UINT4", 1),
    # wide binary layers (TFC's first layer unfolded)
    (64, 784, 16, 49, "BIPOLAR", "BIPOLAR", 1), (32, 256, 8, 32, "BIPOLAR", "BIPOLAR", 1),
    # highly parallel binary layers (board-sized folds): a few-word weight ROM, constant weights
    (64, 784, 64, 112, "BIPOLAR", "BIPOLAR", 1), (64, 64, 32, 32, "BIPOLAR", "BIPOLAR", 1),
    (64, 64, 64, 64, "BIPOLAR", "BIPOLAR", 1), (128, 256, 16, 128, "BIPOLAR", "BIPOLAR", 1),
    # multi-bit layers unfolded (one weight per lane): shift-and-add products of constants
    (16, 9, 16, 9, "INT2", "UINT8", 3), (32, 32, 32, 32, "INT4", "UINT4", 15),
    (16, 64, 16, 64, "INT2", "UINT2", 3), (8, 72, 8, 72, "INT3", "UINT3", 7),
    # a few weight words per lane (two to four), kept in soft logic
    (16, 64, 16, 32, "INT2", "UINT2", 3), (32, 32, 16, 32, "INT4", "UINT2", 3),
    (16, 32, 8, 16, "INT2", "UINT4", 15), (32, 64, 32, 16, "INT3", "UINT3", 7),
    (16, 144, 16, 72, "INT2", "UINT2", 3),
    # products in soft logic by choice (res_type "lut": shifted partial products)
    (16, 16, 4, 4, "INT8", "UINT8", 0, "lut"), (32, 64, 4, 8, "INT6", "INT5", 0, "lut"),
    (8, 8, 2, 2, "INT8", "INT8", 0, "lut"), (16, 16, 4, 4, "INT4", "UINT4", 3, "lut"),
    (32, 32, 8, 8, "INT4", "UINT4", 15, "lut"), (64, 64, 1, 16, "INT4", "INT4", 0, "lut"),
    (128, 128, 1, 1, "INT8", "UINT8", 0, "lut"), (64, 64, 4, 8, "INT2", "UINT2", 3, "lut"),
    # ... with a few weight words per lane in soft logic (Yosys folds the words into the products)
    (16, 64, 16, 32, "INT2", "UINT2", 3, "lut"), (32, 144, 32, 72, "INT2", "UINT2", 3, "lut"),
    (16, 32, 8, 16, "INT2", "UINT4", 15, "lut"), (32, 64, 32, 16, "INT3", "UINT3", 7, "lut"),
    # trained-like weights: narrow range, half of them zero (the demo's and Brevitas' W2 layers)
    (32, 144, 32, 72, "INT2N", "UINT2", 3, "lut", 0.5), (16, 64, 16, 32, "INT2N", "UINT2", 3, "lut", 0.5),
    (32, 32, 16, 32, "INT2N", "UINT2", 3, "auto", 0.5), (16, 9, 16, 9, "INT2N", "UINT8", 3, "auto", 0.5),
    (64, 288, 8, 32, "INT2N", "UINT2", 3, "lut", 0.5), (32, 64, 32, 16, "INT4N", "UINT4", 15, "lut", 0.5),
    # narrow signed inputs too (TFC/CNV-W2A2: INT2N x INT2N), few-word and ROM weights
    (64, 64, 16, 32, "INT2N", "INT2N", 3, "auto", 0.25), (32, 448, 32, 32, "INT2N", "INT2N", 3, "auto", 0.25),
    (64, 576, 16, 32, "INT2N", "INT2N", 3, "auto", 0.25), (64, 64, 16, 32, "INT2N", "INT2N", 3, "lut", 0.25),
    # 8-bit and 4-bit activations: 255 / 15 evenly spaced thresholds per channel, read from a ROM
    # of one word per output fold (the W8A8 autoencoder's layers)
    (32, 64, 1, 16, "INT8N", "UINT8", 255, "lut", 0.0, "affine"),
    (8, 32, 1, 2, "INT8N", "UINT8", 255, "lut", 0.0, "affine"),
    (32, 8, 2, 2, "INT8N", "UINT8", 255, "auto", 0.0, "affine"),
    (16, 32, 4, 4, "INT8N", "UINT8", 63, "auto", 0.0, "affine"),
    (64, 64, 4, 8, "INT4N", "UINT4", 15, "auto", 0.25, "affine"),
    (64, 128, 2, 16, "INT4N", "UINT4", 15, "lut", 0.25, "affine"),
    # the foldings the board search gives those layers: one PE, wide SIMD, products in soft logic
    (32, 64, 1, 32, "INT8N", "UINT8", 255, "lut", 0.0, "affine"),
    (32, 8, 1, 4, "INT8N", "UINT8", 255, "lut", 0.0, "affine"),
    (64, 32, 4, 8, "INT8N", "UINT8", 0, "lut"),
    # four-word weight ROMs folded into 4-bit products (a 6-input function: LUT6 on xc7, more
    # than one LUT4 on ECP5): the W4A4 MLP's folds under the ULX3S' routing limit
    (32, 64, 8, 64, "INT4N", "UINT4", 15, "lut"),
    (16, 32, 4, 32, "INT4N", "UINT4", 15, "lut"),
]
# smaller sweeps for the families tested less often
SMALL = [0, 1, 4, 5, 6, 9, 10, 13, 14, 17, 18, 21, 23, 25, 27, 29]
SWEEP_OF = {"xc7": list(range(len(MVAU_SWEEP))), "ecp5": list(range(len(MVAU_SWEEP))),
            "xcup": SMALL, "ice40": [0, 1, 4, 9, 10, 14, 17, 18, 20, 21, 23, 28]}
# sliding windows: (H, W, C), kernel, stride, pads, SIMD (= kh*kw*C: whole-window mode), dtype
SWG_SWEEP = [((16, 16, 32), 3, 1, 1, 8, "UINT4"), ((32, 32, 16), 3, 1, 0, 16, "UINT2"),
             ((8, 8, 64), 3, 1, 1, 4, "UINT4"), ((16, 16, 8), 5, 1, 2, 8, "UINT8"),
             ((28, 28, 1), 3, 1, 0, 1, "UINT8"), ((16, 16, 16), 2, 2, 0, 16, "UINT4"),
             ((16, 16, 8), 3, 1, 1, 72, "UINT4"), ((32, 32, 3), 3, 1, 0, 27, "UINT8"),
             ((8, 8, 32), 3, 1, 1, 288, "UINT2")]
# pools: kind, (H, W, C), kernel, stride, PE, dtype
POOL_SWEEP = [("maxpool", (16, 16, 32), 2, 2, 4, "UINT4"), ("maxpool", (32, 32, 16), 2, 2, 16, "BIPOLAR"),
              ("maxpool", (8, 8, 64), 2, 2, 8, "UINT8"), ("maxpool", (28, 28, 8), 3, 2, 2, "UINT4"),
              ("gsumpool", (8, 8, 64), 0, 0, 8, "UINT4"), ("gsumpool", (4, 4, 128), 0, 0, 16, "UINT8"),
              ("gsumpool", (8, 8, 16), 0, 0, 16, "UINT2")]
# vector-vector units: channels, K, PE, weight, input, thresholds, rows
# windowed sum-pools (the first half of an average pool): (H, W, C), kernel, stride, PE, dtype
SUMPOOL_SWEEP = [((16, 16, 32), 2, 2, 4, "UINT4"), ((8, 8, 64), 3, 1, 8, "UINT4"),
                 ((32, 32, 16), 2, 2, 16, "UINT2"), ((12, 12, 32), 4, 4, 2, "UINT8"),
                 ((8, 8, 16), 2, 2, 16, "INT4"), ((25, 5, 64), 5, 5, 8, "UINT4")]
# standalone thresholds: (H, W, C), PE, input, output bits, per-channel thresholds
THRESHOLD_SWEEP = [((8, 8, 64), 4, "UINT8", 4, True), ((16, 16, 32), 32, "UINT5", 4, True),
                   ((8, 8, 16), 16, "INT9", 2, False), ((4, 4, 128), 8, "UINT4", 3, True),
                   ((16, 16, 8), 1, "INT6", 4, True), ((8, 8, 32), 8, "UINT8", 1, False)]
VVAU_SWEEP = [(32, 9, 4, "INT4", "UINT4", 15, (8, 8)), (64, 9, 8, "INT2", "UINT2", 3, (8, 8)),
              (16, 9, 16, "INT8", "UINT8", 0, (4, 4)), (64, 9, 2, "BIPOLAR", "UINT4", 15, (8, 8)),
              (128, 9, 16, "INT4", "UINT4", 15, (4, 4)),
              # products in soft logic by choice (res_type "lut")
              (16, 9, 16, "INT8", "UINT8", 0, (4, 4), "lut"), (32, 9, 4, "INT4", "UINT4", 15, (8, 8), "lut"),
              (64, 9, 8, "INT6", "UINT4", 0, (4, 4), "lut"),
              # one channel group (pe == C: constant weights per lane, thresholds in logic), as a
              # board fold of a small depthwise layer reaches (the MobileNet block's conv1)
              (8, 9, 8, "INT4N", "UINT4", 15, (8, 8), "lut"), (8, 9, 8, "INT4N", "UINT4", 15, (8, 8)),
              (16, 9, 16, "INT4", "UINT4", 15, (4, 4), "lut"), (32, 9, 32, "INT2", "UINT2", 3, (4, 4)),
              (16, 9, 8, "INT3", "UINT3", 7, (4, 4), "lut"), (32, 9, 16, "INT4N", "UINT4", 15, (4, 4))]
# top-k label selection: classes C, input type, k, pe (C/pe beats per vector)
TOPK_SWEEP = [(10, "INT8", 5, 1), (64, "UINT4", 16, 4), (10, "INT16", 1, 1), (10, "INT8", 3, 2),
              (100, "UINT8", 5, 4), (1000, "INT16", 5, 1), (16, "UINT2", 4, 2), (32, "INT8", 8, 2),
              (128, "INT12", 2, 4), (20, "BIPOLAR", 3, 1), (64, "INT4", 1, 4), (256, "UINT8", 16, 1)]
OTHER_FAMILIES = ("xc7", "ecp5")  # the other unit kinds are calibrated here; xcup/ice40 borrow


def make_other(kind: str, p: dict):
    from streamfold.compiler.ir import GlobalSumPoolUnit, MaxPoolUnit, VectorVectorUnit, window_unit
    if kind == "swg":
        k, st, pd = p["k"], p["s"], p["pad"]
        u = window_unit(name=p["name"], in_shape=tuple(p["shape"]), dtype=DataType.parse(p["dtype"]),
                        kernel=(k, k), stride=(st, st), pads=(pd,) * 4, simd=p["simd"])
    elif kind == "maxpool":
        u = MaxPoolUnit(name=p["name"], in_shape=tuple(p["shape"]), dtype=DataType.parse(p["dtype"]),
                        kernel=(p["k"], p["k"]), stride=(p["s"], p["s"]), pe=p["pe"])
    elif kind == "sumpool":
        from streamfold.compiler.ir import SumPoolUnit
        u = SumPoolUnit(name=p["name"], in_shape=tuple(p["shape"]), dtype=DataType.parse(p["dtype"]),
                        kernel=(p["k"], p["k"]), stride=(p["s"], p["s"]), pe=p["pe"])
    elif kind == "thresholds":
        from streamfold.compiler.ir import ThresholdUnit
        rng = np.random.default_rng(p["seed"])
        xd = DataType.parse(p["x"])
        c, n = p["shape"][-1], 2 ** p["out_bits"] - 1
        rows = c if p["per_channel"] else 1
        t = np.sort(rng.integers(xd.min, xd.max + 1, (rows, n)), axis=1)
        u = ThresholdUnit(name=p["name"], shape=tuple(p["shape"]), in_dtype=xd,
                          out_dtype=DataType.uint_type(p["out_bits"]),
                          thresholds=np.broadcast_to(t, (c, n)).astype(np.int64).copy(), pe=p["pe"])
    elif kind == "topk":
        from streamfold.compiler.units.topk import TopKUnit
        u = TopKUnit(name=p["name"], shape=(p["c"],), in_dtype=DataType.parse(p["dtype"]), k=p["k"],
                     pe=p["pe"])
    elif kind == "gsumpool":
        u = GlobalSumPoolUnit(name=p["name"], in_shape=tuple(p["shape"]), dtype=DataType.parse(p["dtype"]),
                              pe=p["pe"])
    else:
        rng = np.random.default_rng(p["seed"])
        wd, xd = DataType.parse(p["w"]), DataType.parse(p["x"])
        c, k = p["c"], p["k"]
        w = rng.choice([-1, 1], size=(c, k)) if wd.bipolar else rng.integers(wd.min, wd.max + 1, (c, k))
        u = VectorVectorUnit(name=p["name"], weights=w.astype(np.int64), weight_dtype=wd, in_dtype=xd,
                             out_dtype=BIP, rows_shape=tuple(p["rows"]), pe=p["pe"],
                             res_type=p.get("res_type", "auto"))
        lo, hi = u.acc_range
        n = p["thr"]
        if n:
            u.thresholds = np.sort(rng.integers(lo, hi + 1, (c, n)), axis=1).astype(np.int64)
            u.out_dtype = DataType.uint_type(n.bit_length())
        else:
            u.out_dtype = u.acc_dtype
    u.check_folding()
    return u


def other_params() -> list[tuple[str, dict]]:
    out = []
    for i, (shape, k, st, pd, simd, dt) in enumerate(SWG_SWEEP):
        out.append(("swg", {"name": f"swg_{i}", "shape": list(shape), "k": k, "s": st, "pad": pd, "simd": simd,
                            "dtype": dt}))
    for i, (kind, shape, k, st, pe, dt) in enumerate(POOL_SWEEP):
        if kind == "gsumpool":
            out.append((kind, {"name": f"gsum_{i}", "shape": list(shape), "pe": pe, "dtype": dt}))
        else:
            out.append((kind, {"name": f"maxpool_{i}", "shape": list(shape), "k": k, "s": st, "pe": pe, "dtype": dt}))
    for i, (shape, k, st, pe, dt) in enumerate(SUMPOOL_SWEEP):
        out.append(("sumpool", {"name": f"sumpool_{i}", "shape": list(shape), "k": k, "s": st, "pe": pe,
                                "dtype": dt}))
    for i, (shape, pe, xd, ob, per_channel) in enumerate(THRESHOLD_SWEEP):
        out.append(("thresholds", {"name": f"thresholds_{i}", "shape": list(shape), "pe": pe, "x": xd,
                                   "out_bits": ob, "per_channel": per_channel, "seed": 200 + i}))
    for i, (c, k, pe, wd, xd, n, rows, *rest) in enumerate(VVAU_SWEEP):
        out.append(("vvau", {"name": f"vvau_{i}", "c": c, "k": k, "pe": pe, "w": wd, "x": xd, "thr": n,
                             "rows": list(rows), "seed": 100 + i, **({"res_type": rest[0]} if rest else {})}))
    for i, (c, dt, k, pe) in enumerate(TOPK_SWEEP):
        out.append(("topk", {"name": f"topk_{i}", "c": c, "dtype": dt, "k": k, "pe": pe}))
    return out


FIFO_SWEEP = [(16, 2), (8, 1), (1, 2), (64, 2), (16, 3), (8, 32), (16, 64), (64, 16), (4, 256),
              (32, 512), (16, 1024), (72, 512), (8, 4096)]
DWC_SWEEP = [(1, 16, 8), (1, 8, 16), (1, 4, 1), (1, 1, 4), (2, 4, 6), (4, 16, 4), (1, 64, 49),
             (7, 1, 10), (8, 8, 2), (1, 3, 7),
             # wide splitters after whole-window units (CNV: 576 -> 32 one-bit elements)
             (1, 576, 32), (1, 256, 8), (4, 72, 8)]


def specs(family: str):
    """(part kind, parameters, component, key) of every sweep point of ``family``."""
    from streamfold.hw.dwc import StreamDWC
    from streamfold.hw.fifo import StreamFIFO
    from streamfold.hw.registry import build_unit

    out = []
    for i in SWEEP_OF[family]:
        mh, mw, pe, simd, wd, xd, n, *rest = MVAU_SWEEP[i]
        rt = rest[0] if rest else "auto"
        zeros = rest[1] if len(rest) > 1 else 0.0
        thr_style = rest[2] if len(rest) > 2 else "random"
        u = make_mvau(f"m{i}", mh, mw, pe, simd, wd, xd, n, seed=i, res_type=rt, zeros=zeros,
                      thr_style=thr_style)
        params = {"mh": mh, "mw": mw, "pe": pe, "simd": simd, "w": wd, "x": xd, "thr": n, "seed": i}
        if thr_style != "random":
            params["thr_style"] = thr_style
        if rt != "auto":
            params["res_type"] = rt
        if zeros:
            params["zeros"] = zeros
        out.append(("mvau", params, u, lambda u=u: build_unit(u), f"mvau_{i}"))
    if family in OTHER_FAMILIES:
        from streamfold.compiler.resources import model_key
        for kind, params in other_params():
            u = make_other(kind, params)
            out.append((model_key(u), params, u, lambda u=u: build_unit(u), params["name"]))
    for i, (w, d) in enumerate(FIFO_SWEEP):
        out.append(("fifo", {"width": w, "depth": d}, None, lambda w=w, d=d: StreamFIFO(w, d), f"fifo_{i}"))
    for i, (w, a, b) in enumerate(DWC_SWEEP):
        out.append(("dwc", {"width": w, "a": a, "b": b}, None, lambda w=w, a=a, b=b: StreamDWC(w, a, b),
                    f"dwc_{i}"))
    return out


def unit_of(kind: str, params: dict):
    if kind in ("swg", "swg_buf", "maxpool", "gsumpool", "vvau", "sumpool", "thresholds", "topk"):
        return make_other("swg" if kind == "swg_buf" else kind, params)
    if kind == "mvau":
        p = params
        return make_mvau(f"m{p['seed']}", p["mh"], p["mw"], p["pe"], p["simd"], p["w"], p["x"], p["thr"],
                         seed=p["seed"], res_type=p.get("res_type", "auto"), zeros=p.get("zeros", 0.0),
                         thr_style=p.get("thr_style", "random"))
    return None


def sweep(families, jobs: int, log, kinds=None, new_only: bool = False) -> dict:
    """Synthesise the sweep points of ``families`` (only ``kinds`` if given; only points not yet
    stored with ``new_only``) and merge them into the stored samples (a point replaces the stored
    one with the same key)."""
    for fam in families:
        sp = [x for x in specs(fam) if not kinds or x[0] in kinds or (x[0] == "swg_buf" and "swg" in kinds)]
        if new_only:
            stored = json.loads(SAMPLES.read_text()) if SAMPLES.exists() else {}
            have = {r["key"] for r in stored.get(fam, [])}
            sp = [x for x in sp if x[4] not in have]
        t0 = time.monotonic()
        job_list = [dict(verilog=component_verilog(mk(), key), family=fam, top=key) for _, _, _, mk, key in sp]
        res = synth_many(job_list, jobs=jobs, log=log)
        rows = []
        for (kind, params, _u, _mk, key), r in zip(sp, res):
            rows.append({"kind": kind, "key": key, "params": params, "resources": r["resources"],
                         "cells": r["cells"], "seconds": r["seconds"]})
        samples = json.loads(SAMPLES.read_text()) if SAMPLES.exists() else {}  # others may have run
        new_keys = {r["key"] for r in rows}
        samples[fam] = [r for r in samples.get(fam, []) if r["key"] not in new_keys] + rows
        log(f"{fam}: {len(rows)} points in {time.monotonic() - t0:.0f} s "
            f"(synthesis {sum(r['seconds'] for r in rows):.0f} s of Yosys time)")
        SAMPLES.write_text(json.dumps(samples, indent=1) + "\n")
    return json.loads(SAMPLES.read_text())


def fit(samples: dict, log) -> dict:
    """Least-squares fit of every (family, kind, LUT/FF) model; returns the calibration document."""
    cal = {"_doc": "Fitted by benchmarks/calibrate_resources.py from Yosys 0.70 (yowasp) out-of-context "
                   "synthesis; coefficients multiply the features of streamfold.compiler.resources.",
           "families": {}, "quality": {}}
    for fam, rows in samples.items():
        cal["families"][fam] = {}
        cal["quality"][fam] = {}
        for kind in sorted({r["kind"] for r in rows}):
            kr = [r for r in rows if r["kind"] == kind]
            feats = [R.part_features(kind, r["params"], fam, unit=unit_of(kind, r["params"])) for r in kr]
            cal["families"][fam][kind] = {}
            cal["quality"][fam][kind] = {}
            for res in ("LUT", "FF"):
                names = R.FEATURES[kind][res]
                X = np.array([[f[res][n] for n in names] for f in feats], dtype=float)
                y = np.array([r["resources"][res] for r in kr], dtype=float)
                wt = 1.0 / np.maximum(y, 16.0)  # relative errors matter, not absolute ones
                coef = _nnls_ridge(X * wt[:, None], y * wt)
                pred = X @ coef
                ss = float(((y - y.mean()) ** 2).sum()) or 1.0
                r2 = 1 - float(((y - pred) ** 2).sum()) / ss
                rel = np.abs(pred - y) / np.maximum(y, 8)
                # a feature no sample exercises is left out (not fitted as 0): the estimate takes
                # the sibling family's coefficient or the default for it
                cal["families"][fam][kind][res] = {n: round(float(c), 5) for j, (n, c) in enumerate(zip(names, coef))
                                                   if X[:, j].any()}
                cal["quality"][fam][kind][res] = {"n": len(y), "r2": round(r2, 4),
                                                   "max_rel_error": round(float(rel.max()), 3),
                                                   "mean_rel_error": round(float(rel.mean()), 3)}
                log(f"{fam:5s} {kind:5s} {res:3s}: n={len(y):2d} R^2={r2:.4f} max err {rel.max():.1%} "
                    f"mean {rel.mean():.1%}")
            # the exact parts: block RAM / DSP agreement
            for res in ("BRAM", "DSP", "LUTRAM"):
                est = [f["exact"][res] for f in feats]
                got = [r["resources"][res] for r in kr]
                bad = [(r["key"], e, g) for r, e, g in zip(kr, est, got) if e != g]
                cal["quality"][fam][kind][res] = {"n": len(got), "mismatches": len(bad)}
                if bad:
                    log(f"{fam:5s} {kind:5s} {res}: {len(bad)} mismatches {bad[:6]}")
    return cal


def _nnls_ridge(X, y, lam: float = 1e-3, iters: int = 200):
    """Non-negative least squares by projected coordinate descent (tiny problems), a touch of ridge."""
    n = X.shape[1]
    A = X.T @ X + lam * np.eye(n) * max(1.0, np.trace(X.T @ X) / max(n, 1)) * 1e-4
    b = X.T @ y
    c = np.clip(np.linalg.lstsq(X, y, rcond=None)[0], 0, None)
    for _ in range(iters):
        for j in range(n):
            if A[j, j] <= 0:
                continue
            r = b[j] - A[j] @ c + A[j, j] * c[j]
            c[j] = max(0.0, r / A[j, j])
    return c


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--family", nargs="+", default=["xc7", "ecp5", "xcup", "ice40"])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--kinds", nargs="+", help="only these part kinds (mvau fifo dwc swg maxpool gsumpool sumpool "
                                                       "thresholds vvau topk)")
    ap.add_argument("--fit-only", action="store_true", help="refit from calibration_samples.json")
    ap.add_argument("--new-only", action="store_true",
                    help="synthesise only sweep points not yet in calibration_samples.json, then refit")
    ap.add_argument("--out", default=str(R.CALIBRATION_FILE))
    a = ap.parse_args(argv)
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    samples = json.loads(SAMPLES.read_text()) if a.fit_only else sweep(a.family, a.jobs, log, a.kinds, a.new_only)
    cal = fit(samples, log)
    # what the refit does not fit comes from --out, or from the shipped file when --out is new
    # (a trial fit written elsewhere keeps the other kinds and the whole-design factors too)
    try:
        prev = json.loads((Path(a.out) if Path(a.out).exists() else R.CALIBRATION_FILE).read_text())
    except (OSError, ValueError):
        prev = {}
    # the whole-design factors come from benchmarks/synth_vs_estimate.py: keep them
    cal["in_context"] = prev.get("in_context", {})
    # kinds fitted elsewhere (no samples stored here) keep their coefficients and quality
    for section in ("families", "quality"):
        for fam, kinds in prev.get(section, {}).items():
            for kind, entry in kinds.items():
                cal[section].setdefault(fam, {}).setdefault(kind, entry)
    Path(a.out).write_text(json.dumps(cal, indent=1) + "\n")
    log(f"wrote {a.out}")


if __name__ == "__main__":
    main()

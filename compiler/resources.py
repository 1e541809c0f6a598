"""Resource estimates (LUT, FF, block RAM, DSP) of every unit kind, per FPGA family.

How an estimate is made
-----------------------
* **Memories** (weights, thresholds, input buffers, FIFO storage) are mapped the way Yosys'
  ``memory_libmap`` maps them: every candidate -- soft logic, each LUT-RAM geometry, each
  block-RAM aspect ratio (Xilinx RAMB18/RAMB36 1x16K..72x512, ECP5 DP16KD/PDPW16KD 1x16K..36x512,
  iCE40 EBR 2x2K..16x256) -- gets libmap's cost (primitive cost x replicas, plus read-mux and
  emulation penalties; soft logic costs ``bits/64`` for a ROM on Xilinx, ``bits/16`` on Lattice,
  1 per bit for a RAM) and the cheapest wins, as in :func:`map_memory`. Block RAM and LUT-RAM
  counts come from that mapping directly.
* **DSPs** follow Yosys' ``mul2dsp`` rules: a ``$mul`` goes to a DSP when both operands have at
  least 2 bits and the product at least 9 (Xilinx) / 11 (iCE40 with ``-dsp``) / any (ECP5) bits.
* **LUT and FF** are linear models in a few structural features (:func:`part_features`: datapath
  bits of the dot products, accumulators, comparators, soft-logic ROM size, counters...), with
  coefficients fitted per family against Yosys by ``benchmarks/calibrate_resources.py`` and stored
  in ``calibration.json`` beside this file.

Resource classes are those of :mod:`streamfold.compiler.synth`: ``LUT`` (logic), ``LUTRAM`` (LUTs as
memory), ``FF``, ``BRAM`` (family block-RAM primitives, RAMB18 units on Xilinx), ``URAM``, ``DSP``;
``LUT_TOTAL = LUT + LUTRAM``.

Each unit kind gives its features (:attr:`~streamfold.compiler.units.base.UnitKind.features`); the
building blocks (memory mapping, the DSP rule, FIFO and width-converter features) are in
:mod:`.resource_model`.

API: :func:`estimate_unit`, :func:`estimate_part`, :func:`estimate_pipeline`, :func:`map_memory`.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from . import topology
from .resource_model import (CLASSES, FAMILIES, LUT_K, PLUMBING_DEFAULT_COEF, PLUMBING_FEATURES,  # noqa: F401
                             check_family, clog2, dsp_product, dwc_features, fifo_features, map_memory,
                             mem_features, rom_columns, rom_image)
from .memory import MemSpec  # noqa: F401
from .units import KINDS, kind_of

CALIBRATION_FILE = Path(__file__).with_name("calibration.json")

#: feature names of each model (calibration key) and resource, in the order calibration.json
#: stores coefficients: the stream plumbing's and every unit kind's
FEATURES = dict(PLUMBING_FEATURES, **{k.model_key: k.feature_names for k in KINDS.values() if k.features})
#: coefficients used when calibration.json has none for a (family, model): structural guesses
_DEFAULT_COEF = dict(PLUMBING_DEFAULT_COEF, **{k.model_key: k.default_coef for k in KINDS.values()
                                               if k.features})


def model_key(unit) -> str:
    """The resource model (FEATURES / calibration key) of a unit (its kind's ``model_key``)."""
    return kind_of(unit).model_key


def has_model(unit) -> bool:
    """Whether :func:`estimate_unit` models ``unit``: its kind gives resource features."""
    return kind_of(unit).features is not None


def part_features(kind: str, params: dict | None, family: str, unit=None) -> dict:
    """Features of one piece: a unit (``unit`` given) or ``fifo``/``dwc`` from ``params``
    (``width, depth`` / ``width, a, b``)."""
    check_family(family)
    if unit is not None:
        return kind_of(unit).features(unit, family)
    if kind == "fifo":
        return fifo_features(params["width"], params["depth"], family)
    if kind == "dwc":
        return dwc_features(params["width"], params["a"], params["b"], family)
    raise KeyError(kind)


@lru_cache(maxsize=1)
def calibration() -> dict:
    try:
        return json.loads(CALIBRATION_FILE.read_text())
    except (OSError, ValueError):
        return {"families": {}}


#: a family without its own coefficients for a kind borrows those of a family with the same LUTs
_SIBLING = {"xcup": "xc7", "xc7": "xcup", "ice40": "ecp5", "ecp5": "ice40"}


def _coef(family: str, kind: str, res: str) -> tuple[dict, bool]:
    """Coefficients of ``kind``'s ``res`` model on ``family`` and whether they were fitted there.
    A feature the family's fit predates takes the sibling family's coefficient, else the default."""
    fams = calibration().get("families", {})
    chain = [fams.get(f, {}).get(kind, {}).get(res) or {} for f in (family, _SIBLING[family])]
    chain.append(_DEFAULT_COEF[kind][res])
    for i, c in enumerate(chain[:2]):
        if c:
            merged = dict(c)
            for later in chain[i + 1:]:
                for n, v in later.items():
                    merged.setdefault(n, v)
            return merged, i == 0
    return _DEFAULT_COEF[kind][res], False


def _from_features(kind: str, f: dict, family: str) -> dict:
    out = {}
    calibrated = True
    for res in ("LUT", "FF"):
        coef, ok = _coef(family, kind, res)
        calibrated &= ok
        out[res] = int(round(sum(coef.get(n, 0.0) * v for n, v in f[res].items())))
        out[res] += int(round(f.get("fixed", {}).get(res, 0)))  # counted (or priced) apart, not fitted
    out.update({k: int(v) for k, v in f["exact"].items()})
    out["LUT_TOTAL"] = out["LUT"] + out["LUTRAM"]
    out["calibrated"] = calibrated
    if f.get("memories"):
        out["memories"] = f["memories"]
    return out


def estimate_part(kind: str, params: dict, family: str) -> dict:
    """Estimate of a FIFO (``width``, ``depth``) or width converter (``width``, ``a``, ``b``)."""
    return _from_features(kind, part_features(kind, params, family), family)


def estimate_unit(unit, family: str) -> dict | None:
    """Estimate of one IR unit on ``family`` (None for a unit with no model yet, see :func:`has_model`)."""
    if not has_model(unit):
        return None
    return _from_features(model_key(unit), part_features(unit.kind, None, family, unit=unit), family)


def _add(total: dict, est: dict) -> None:
    for k in CLASSES + ("LUT_TOTAL",):
        total[k] = total.get(k, 0) + int(est.get(k, 0))


def estimate_pipeline(pipeline, family: str) -> dict:
    """Per piece and total estimates of a graph's top level (FIFOs, units, width converters).

    Returns ``{"family", "parts": [{"name", "kind", "unit", **resources}], "units": {unit name:
    resources of the unit plus its input FIFOs and output converters}, "total": {...},
    "unmodelled": [kinds without a model]}``. Parts and names are :func:`.topology.pieces`'.
    """
    check_family(family)
    parts, unmodelled = [], []
    per_unit: dict = {u.name: {} for u in pipeline.units}
    total: dict = {}
    soft_lut = mb_lut = 0  # soft logic of the units with soft-logic products (in-context factors below)
    for p in topology.pieces(pipeline):
        if p.kind == "fifo":
            if p.depth <= 0:
                continue
            e = estimate_part("fifo", {"width": p.width, "depth": p.depth}, family)
            parts.append({"name": p.name, "kind": "fifo", "unit": None, **e})
        elif p.kind == "dwc":
            e = estimate_part("dwc", {"width": p.width, "a": p.a, "b": p.b}, family)
            parts.append({"name": p.name, "kind": "dwc", "unit": None, **e})
        else:
            u = p.unit
            e = estimate_unit(u, family)
            if e is None:
                unmodelled.append(u.kind)
                parts.append({"name": p.name, "kind": u.kind, "unit": u.name, "estimate": None})
                continue
            parts.append({"name": p.name, "kind": u.kind, "unit": u.name, **e})
            if soft_products(u, family):
                soft_lut += e.get("LUT", 0)
                if not getattr(u, "binary", False):
                    mb_lut += e.get("LUT", 0)
        _add(per_unit[p.group] if p.group is not None else {}, e)
        _add(total, e)
    # the top level's own logic: the output beat counter for tlast
    beats = pipeline.out_stream.beats_per_frame
    top = {"LUT": 1 + clog2(beats), "LUT_TOTAL": 1 + clog2(beats), "FF": clog2(beats)}
    _add(total, top)
    # Whole designs synthesise flattened: logic merges across unit boundaries, which per-unit
    # calibration cannot see. A per-family factor fitted on whole-design runs
    # (benchmarks/synth_vs_estimate.py --fit-in-context) scales the soft logic of the units whose
    # products are soft logic, where it was measured, one factor for the binary (XNOR-popcount)
    # units and one for the multi-bit ones (constant or few-word weights, res_type "lut"): on ECP5
    # binary TFC and CNV shrink by about a sixth flattened, the W2A2 demo's soft products by a third.
    k = in_context_factor(family)
    k_mb = in_context_factor(family, "multibit")
    if soft_lut and (k != 1.0 or k_mb != 1.0):
        total["parts_LUT"] = total["LUT"]
        total["soft_LUT"] = soft_lut
        total["multibit_soft_LUT"] = mb_lut
        binary = soft_lut - mb_lut
        total["LUT"] = int(round(total["LUT"] - soft_lut + binary * k + mb_lut * k_mb))
        total["LUT_TOTAL"] = total["LUT"] + total.get("LUTRAM", 0)
    return {"family": family, "parts": parts, "units": per_unit, "total": total,
            "unmodelled": sorted(set(unmodelled)), "in_context_lut_factor": k}


def soft_products(unit, family: str) -> bool:
    """Whether ``unit`` is a dot-product unit whose products are soft logic on ``family`` (the
    part of a design that the whole-design factor scales)."""
    from .units.dot_product import DotProductUnit, products_in_dsp

    if not isinstance(unit, DotProductUnit):
        return False
    return bool(getattr(unit, "binary", False)) or not products_in_dsp(unit, family)


def in_context_factor(family: str, which: str = "binary") -> float:
    """Whole-design LUT (without LUT-RAM) over the per-part estimates of the units with soft-logic
    products, ``which`` "binary" or "multibit", as fitted for ``family`` (1.0 when not fitted)."""
    entry = calibration().get("in_context", {}).get(family, {})
    return float(entry.get("LUT" if which == "binary" else "multibit_LUT", 1.0))


def utilisation(total: dict, board) -> dict:
    """Fractions of ``board``'s device that ``total`` uses (LUT counts LUT-RAM too)."""
    used = {"LUT": total.get("LUT_TOTAL", total.get("LUT", 0)), "FF": total.get("FF", 0),
            "BRAM": total.get("BRAM", 0), "URAM": total.get("URAM", 0), "DSP": total.get("DSP", 0)}
    return board.utilisation(used)


DEFAULT_FAMILY = "xc7"


def report_resources(pipeline, board=None) -> dict:
    """The resource section of ``report.json``: per unit (with its input FIFO and output width
    converter) and total estimates on ``board``'s family (a name or a Board; default xc7, no
    utilisation), plus utilisation of the board's device."""
    b = None
    if board is not None:
        from streamfold.boards import load_board
        b = load_board(board) if isinstance(board, str) else board
    family = b.family if b else DEFAULT_FAMILY
    est = estimate_pipeline(pipeline, family)
    keys = ("LUT", "LUTRAM", "LUT_TOTAL", "FF", "BRAM", "URAM", "DSP")
    out = {"family": family, "board": b.name if b else None,
           "units": {n: {k: int(r.get(k, 0)) for k in keys} for n, r in est["units"].items()},
           "total": {k: int(est["total"].get(k, 0)) for k in keys},
           "unmodelled": est["unmodelled"],
           "method": "estimate (compiler/resources.py, calibrated against Yosys); "
                     "`streamfold synth` gives synthesised figures"}
    if b:
        out["utilisation"] = utilisation(out["total"], b)
        out["fits"] = all(v <= 1.0 for v in out["utilisation"].values())
    return out

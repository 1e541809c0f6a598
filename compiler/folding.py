"""Folding: how many output channels (PE) and input elements (SIMD) each unit computes per clock.

``fold.json`` maps layer names to their knobs, e.g. ``{"fc0": {"pe": 4, "simd": 8}}``; it is what
``streamfold compile`` writes and what ``--fold`` reads back. Besides the fold knobs a layer may
carry ``ram_style`` (its memories), ``res_type`` (its products: ``auto`` or ``lut``) and
``tree_stages`` / ``out_stages`` (register stages, for the clock).
"""
from __future__ import annotations

import json
from pathlib import Path

from .cost import unit_cycles
from .errors import FoldFileError
from .ir import FoldError, DataflowGraph
from .units.dot_product import RES_TYPES

#: register-stage knobs of the dot-product kinds: registers splitting the adder tree, and the
#: threshold compares and their count, and the matrix-vector unit's registered copies of its
#: input word (split its fan-out to the PEs; see :mod:`streamfold.compiler.timing`)
STAGE_KNOBS = ("tree_stages", "out_stages", "input_copies", "decoupled", "local_weights", "weight_register",
               "lane_addresses", "skid")
MAX_STAGES = 8

#: the stage knobs that are off (0) or on (1), and what 1 builds
ON_OFF_KNOBS = {
    "decoupled": "free-running registers and an output buffer with credits",
    "local_weights": "one register per weight bit beside its lane",
    "weight_register": "a register after the weight memory's read",
    "skid": "a skid register behind the window's output register",
}

#: memory styles a unit's ``ram_style`` knob takes (Vivado's ram_style/rom_style values)
RAM_STYLES = ("auto", "block", "distributed", "ultra")


def knobs_of(unit) -> dict:
    """The unit's fold knobs and, for each, the values it accepts."""
    return unit.fold_choices()


def fold_to_json(pipeline: DataflowGraph) -> dict:
    """The free knobs of every unit (tied ones, like a depthwise window's SIMD, follow others and
    are left out, so the file reads back with :func:`apply_fold`)."""
    out = {}
    for u in pipeline.units:
        free = {k: v for k, v in u.folding().items() if k in knobs_of(u)}
        free.update({k: getattr(u, k) for k in STAGE_KNOBS if getattr(u, k, 0)})
        if getattr(u, "res_type", "auto") != "auto":
            free["res_type"] = u.res_type
        if free:
            out[u.name] = free
    return out


def apply_fold(pipeline: DataflowGraph, fold: dict, source: str = "fold") -> DataflowGraph:
    """Return a copy of ``pipeline`` with the knobs in ``fold`` applied and checked."""
    names = {u.name for u in pipeline.units}
    unknown = [k for k in fold if k not in names]
    if unknown:
        raise FoldFileError(f"{source}: unknown layer {unknown[0]!r}; the model's layers are "
                            f"{', '.join(u.name for u in pipeline.units)}")
    units = []
    for u in pipeline.units:
        knobs = fold.get(u.name, {})
        if not isinstance(knobs, dict):
            raise FoldFileError(f"{source}: layer {u.name!r} needs an object like {u.folding()}")
        allowed = knobs_of(u)
        for k, v in knobs.items():
            if k == "ram_style":
                if not hasattr(u, "ram_style"):
                    raise FoldFileError(f"{source}: layer {u.name!r} has no weight memory, so no knob "
                                        "'ram_style'")
                if v not in RAM_STYLES:
                    raise FoldFileError(f"{source}: layer {u.name!r}: ram_style {v!r} is not one of "
                                        f"{', '.join(RAM_STYLES)}")
                continue
            if k == "res_type":
                if not hasattr(u, "res_type"):
                    raise FoldFileError(f"{source}: layer {u.name!r} ({u.kind}) has no products, so no knob "
                                        "'res_type'")
                if v not in RES_TYPES:
                    raise FoldFileError(f"{source}: layer {u.name!r}: res_type {v!r} is not one of "
                                        f"{', '.join(RES_TYPES)} (auto: synthesis maps the multipliers, "
                                        "to DSP blocks where the widths qualify; lut: soft logic)")
                continue
            if k in STAGE_KNOBS:
                if not hasattr(u, k):
                    raise FoldFileError(f"{source}: layer {u.name!r} ({u.kind}) has no knob {k!r} (the "
                                        "register stages are the dot-product units'; input copies the "
                                        "matrix-vector unit's; skid the whole-window unit's)")
                if k in ON_OFF_KNOBS:
                    if isinstance(v, bool) or v not in (0, 1):
                        raise FoldFileError(f"{source}: layer {u.name!r}: {k} is 0 or 1 (1: {ON_OFF_KNOBS[k]}), "
                                            f"got {v!r}")
                    continue
                if k == "lane_addresses":
                    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                        raise FoldFileError(f"{source}: layer {u.name!r}: lane_addresses is a count of weight "
                                            f"address copies per PE lane (0: none), got {v!r}")
                    continue
                if k == "input_copies":
                    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                        raise FoldFileError(f"{source}: layer {u.name!r}: input_copies must be a whole "
                                            f"number, at most its PE, got {v!r}")
                    continue
                if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= MAX_STAGES:
                    raise FoldFileError(f"{source}: layer {u.name!r}: {k} must be a whole number of "
                                        f"registers from 0 to {MAX_STAGES}, got {v!r}")
                continue
            if k not in allowed and k in u.folding():
                raise FoldFileError(f"{source}: layer {u.name!r}: {k.upper()} is not free, it follows "
                                    "the next unit's folding (set that instead)")
            if k not in allowed:
                raise FoldFileError(f"{source}: layer {u.name!r} has no knob {k!r}; it has "
                                    f"{', '.join(allowed) or 'none'}")
            if not isinstance(v, int) or isinstance(v, bool):
                raise FoldFileError(f"{source}: layer {u.name!r}: {k.upper()} must be a whole number, "
                                    f"got {v!r}; pick one of {allowed[k]}")
            if v not in allowed[k]:
                raise FoldFileError(f"{source}: layer {u.name!r}: {k.upper()}={v!r} does not divide the "
                                    f"layer; pick one of {allowed[k]}")
        try:
            u = u.with_folding(**knobs)
            u.check_folding()
        except FoldError as e:
            raise FoldFileError(f"{source}: {e}") from None
        units.append(u)
    return tie_folds(pipeline.with_units(units))


def tie_folds(pipeline: DataflowGraph) -> DataflowGraph:
    """Knobs that follow others: a depthwise window groups channels as its vector-vector unit reads them."""
    units = {u.name: u for u in pipeline.units}
    for e in pipeline.edges:
        if e.src is not None and e.dst is not None:
            units[e.src] = units[e.dst].tie_producer(units[e.src])
    return pipeline.with_units([units[u.name] for u in pipeline.units])


def read_fold_file(path: str | Path) -> dict:
    p = Path(path)
    try:
        doc = json.loads(p.read_text())
    except FileNotFoundError:
        raise FoldFileError(f"{p}: no such fold file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise FoldFileError(f"{p}: not valid JSON ({e})") from None
    if not isinstance(doc, dict):
        raise FoldFileError(f"{p}: expected an object mapping layer names to {{\"pe\": .., \"simd\": ..}}")
    return doc


def balanced_fold(pipeline: DataflowGraph, target_cycles: int) -> DataflowGraph:
    """Cheapest fold of every unit that needs at most ``target_cycles`` per frame (where possible).

    Cheapest = fewest parallel lanes (PE*SIMD); SIMD is preferred over PE at equal cost, since
    it widens the weight memory rather than replicating thresholds.
    """
    units = []
    for u in pipeline.units:
        allowed = knobs_of(u)
        if not allowed:
            units.append(u)
            continue
        best = None
        for combo in _combos(allowed):
            cand = u.with_folding(**combo)
            lanes = 1
            for v in combo.values():
                lanes *= v
            key = (unit_cycles(cand) > target_cycles, lanes if unit_cycles(cand) <= target_cycles
                   else unit_cycles(cand), -combo.get("simd", 1))
            if best is None or key < best[0]:
                best = (key, cand)
        units.append(best[1])
    return tie_folds(pipeline.with_units(units))


def _combos(allowed: dict):
    keys = list(allowed)
    out = [{}]
    for k in keys:
        out = [dict(c, **{k: v}) for c in out for v in allowed[k]]
    return out


def default_fold(pipeline: DataflowGraph, lanes: int = 64) -> DataflowGraph:
    """A balanced default: the heaviest unit gets about ``lanes`` parallel multiply-accumulates."""
    unfolded = [unit_cycles(u) for u in pipeline.units]
    target = max(1, -(-max(unfolded) // lanes))
    return balanced_fold(pipeline, target)

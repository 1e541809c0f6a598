"""The unit kinds, one module each, and the registry: the one place that lists them.

Each module defines a unit's IR dataclass and a :class:`~.base.UnitKind` record ``KIND`` with
everything the rest of streamfold asks about the kind (reference, cycles, schedule, memories,
resource features, tiling, hardware); see :mod:`.base`. Nothing outside this package dispatches
on a kind: it asks :func:`kind_of`.
"""
from __future__ import annotations

from . import (add, concat, depth_to_space, fork, gsumpool, lookup, maxpool, mvau, sliding_window, sumpool, thresholding,
               topk, upsample, vvau, whole_window)
from .add import AddUnit
from .base import PER_PIXEL, ColumnStep, FoldError, Unit, UnitKind, divisors
from .concat import ConcatUnit
from .depth_to_space import DepthToSpaceUnit
from .dot_product import DotProductUnit, apply_thresholds
from .fork import ForkUnit
from .gsumpool import GlobalSumPoolUnit
from .lookup import LookupUnit
from .maxpool import MaxPoolUnit
from .mvau import MatrixVectorUnit
from .sliding_window import SlidingWindowUnit
from .sumpool import SumPoolUnit
from .thresholding import ThresholdUnit
from .topk import TopKUnit
from .upsample import UpsampleUnit
from .vvau import VectorVectorUnit
from .whole_window import WholeWindowUnit
from .window import WindowUnit, window_unit

#: every unit kind, by name (the registry: one line per kind)
KINDS: dict[str, UnitKind] = {k.name: k for k in (
    mvau.KIND,
    vvau.KIND,
    sliding_window.KIND,
    whole_window.KIND,
    maxpool.KIND,
    gsumpool.KIND,
    sumpool.KIND,
    fork.KIND,
    add.KIND,
    concat.KIND,
    thresholding.KIND,
    lookup.KIND,
    topk.KIND,
    depth_to_space.KIND,
    upsample.KIND,
)}


def kind_of(unit) -> UnitKind:
    """The record of ``unit``'s kind."""
    try:
        return KINDS[unit.kind]
    except (KeyError, AttributeError):
        raise KeyError(f"unknown unit kind {getattr(unit, 'kind', type(unit).__name__)!r}; known kinds: "
                       f"{', '.join(sorted(KINDS))}") from None


def unit_class(kind: str) -> type:
    """The IR dataclass of the kind named ``kind`` (for reading a build folder)."""
    try:
        return KINDS[kind].ir
    except KeyError:
        raise KeyError(f"unknown unit kind {kind!r}; known kinds: {', '.join(sorted(KINDS))}") from None


__all__ = [
    "KINDS", "kind_of", "unit_class", "UnitKind", "Unit", "FoldError", "divisors", "ColumnStep",
    "PER_PIXEL", "DotProductUnit", "apply_thresholds", "MatrixVectorUnit", "VectorVectorUnit",
    "WindowUnit", "SlidingWindowUnit", "WholeWindowUnit", "window_unit", "MaxPoolUnit",
    "GlobalSumPoolUnit", "ForkUnit", "AddUnit", "ConcatUnit", "ThresholdUnit", "SumPoolUnit", "LookupUnit", "TopKUnit", "DepthToSpaceUnit", "UpsampleUnit",
]

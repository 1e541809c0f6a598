"""The streamfold IR: the contract between compiler, hardware and simulation, in one import.

* element datatypes and stream descriptions: :mod:`.datatypes`;
* the unit kinds, one module each, and their registry: :mod:`.units`;
* the dataflow graph of units and streams: :mod:`.graph`, walked by :mod:`.topology`.

Integer semantics are stated once, in each kind's module, and the hardware is checked against
each kind's reference.
"""
from __future__ import annotations

from .datatypes import BIPOLAR, DataType, StreamSpec, dumps
from .graph import IR_VERSION, DataflowGraph, Edge
from .units import (KINDS, AddUnit, ConcatUnit, DepthToSpaceUnit, ForkUnit, LookupUnit, SumPoolUnit, ThresholdUnit, TopKUnit, UpsampleUnit, ColumnStep, DotProductUnit, FoldError, GlobalSumPoolUnit, MatrixVectorUnit,
                    MaxPoolUnit, SlidingWindowUnit, Unit, UnitKind, VectorVectorUnit, WholeWindowUnit,
                    WindowUnit, divisors, kind_of, unit_class, window_unit)

__all__ = [
    "BIPOLAR", "DataType", "StreamSpec", "dumps", "IR_VERSION", "DataflowGraph", "Edge", "KINDS", "AddUnit", "ConcatUnit", "DepthToSpaceUnit", "ForkUnit", "LookupUnit", "UpsampleUnit", "SumPoolUnit", "ThresholdUnit", "TopKUnit",
    "ColumnStep", "DotProductUnit", "FoldError", "GlobalSumPoolUnit", "MatrixVectorUnit", "MaxPoolUnit",
    "SlidingWindowUnit", "Unit", "UnitKind", "VectorVectorUnit", "WholeWindowUnit", "WindowUnit",
    "divisors", "kind_of", "unit_class", "window_unit",
]

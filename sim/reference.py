"""Integer-exact NumPy reference of units and whole dataflow graphs, for the simulation side.

Values, not codes: tensors hold element values (bipolar as -1/+1) with a leading frame axis,
shaped ``(frames, *stream.shape)``. Each unit kind states and implements its own semantics
(:mod:`streamfold.compiler.units`); :func:`streamfold.compiler.topology.run_reference` walks the
graph. This module only gives them the names the simulation side uses.
"""
from __future__ import annotations

from streamfold.compiler.topology import run_reference as run_pipeline
from streamfold.compiler.topology import run_unit
from streamfold.compiler.units import apply_thresholds

__all__ = ["run_pipeline", "run_unit", "apply_thresholds"]

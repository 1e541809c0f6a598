"""Cost models of every unit kind: cycles per frame (exact at steady state).

Resource models (LUT/FF/BRAM/DSP) join these, calibrated against Yosys.
"""
from __future__ import annotations

from .ir import MatrixVectorUnit

_CYCLES = {}


def cycles_of(kind: str):
    def deco(fn):
        _CYCLES[kind] = fn
        return fn
    return deco


@cycles_of("mvau")
def mvau_cycles(u: MatrixVectorUnit) -> int:
    """One (neuron fold, synapse fold) step per clock for every input vector."""
    return u.rows * u.neuron_fold * u.synapse_fold


def unit_cycles(unit) -> int:
    """Steady-state clock cycles the unit needs per frame."""
    return int(_CYCLES[unit.kind](unit))


def pipeline_cycles(pipeline) -> tuple[int, str]:
    """(cycles per frame of the pipeline, name of the bottleneck unit)."""
    worst = max(pipeline.units, key=unit_cycles)
    return unit_cycles(worst), worst.name

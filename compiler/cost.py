"""Cycles per frame of units and graphs (each kind's exact model: :mod:`streamfold.compiler.units`).

Resource models (LUT/FF/BRAM/DSP) are in :mod:`.resources`; the pipeline's real pace, where a
width converter holds a unit back, comes from the schedule analysis (:func:`.fifo_sizing.expected_pace`).
"""
from __future__ import annotations

from .units import kind_of


def unit_cycles(unit) -> int:
    """Steady-state clock cycles the unit needs per frame."""
    return int(kind_of(unit).cycles(unit))


def pipeline_cycles(graph) -> tuple[int, str]:
    """(cycles per frame of the slowest unit, its name): the graph's pace when no width converter
    holds a unit back."""
    # on a tie, name a unit that computes rather than one that only routes beats (a fork)
    worst = max(graph.units, key=lambda u: (unit_cycles(u), not kind_of(u).extra.get("routing", False)))
    return unit_cycles(worst), worst.name

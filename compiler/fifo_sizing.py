"""FIFO depths between units.

A matrix-vector unit with several neuron folds reads a whole input vector in a burst (its first
neuron fold) and then computes for ``(NF - 1) * SF`` cycles without reading. A producer of the same
rate spreads that vector's beats over the whole period, so the FIFO in front of the consumer must
hold the beats produced while the consumer is busy: at most one input vector.
"""
from __future__ import annotations

from .ir import Pipeline

MIN_DEPTH = 2


def vector_beats(unit) -> int:
    """Beats the unit reads in one burst (one input vector), or 0 for units reading evenly."""
    if unit.kind == "mvau":
        return unit.synapse_fold
    return 0


def size_fifos(pipeline: Pipeline) -> Pipeline:
    depths = [MIN_DEPTH]
    for u in pipeline.units[1:]:
        depths.append(MIN_DEPTH + vector_beats(u))
    depths.append(MIN_DEPTH)
    return Pipeline(list(pipeline.units), depths)

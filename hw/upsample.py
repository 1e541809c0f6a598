"""Nearest-neighbour upsampling in Amaranth.

:class:`UpsampleHW` implements :class:`streamfold.compiler.units.upsample.UpsampleUnit` with the
two-row ping-pong buffer of :mod:`.row_buffer`: input row ``h`` is written while row ``h-1`` is
read out ``sh`` times, each pixel's ``C/pe`` words ``sw`` times (loops ``y`` (stride 0), ``x``
(stride ``C/pe``), ``xs`` (stride 0), ``cf`` (stride 1)).

Timing: one output beat per clock, ``H*sh*W*sw*C/pe`` cycles per frame (the input waits for the
buffer); an output row block starts two cycles after the last beat of its input row is taken.
"""
from __future__ import annotations

from streamfold.compiler.units.upsample import UpsampleUnit

from .row_buffer import RowBufferHW


class UpsampleHW(RowBufferHW):
    """Members: ``i``, ``o`` (``pe * bits`` each)."""

    def __init__(self, unit: UpsampleUnit):
        unit.check_folding()
        self.unit = unit
        super().__init__(unit.row_plan())

"""DepthToSpace in Amaranth.

:class:`DepthToSpaceHW` implements :class:`streamfold.compiler.units.depth_to_space.DepthToSpaceUnit`
with the two-row ping-pong buffer of :mod:`.row_buffer`: input row ``h`` is written while row
``h-1`` is read out as output rows ``(h-1)*r .. (h-1)*r + r-1``, in the read order of the unit's
:meth:`~streamfold.compiler.units.depth_to_space.DepthToSpaceUnit.row_plan`:

* DCR (or ``r == 1``): an output beat is one input beat, word ``w*C/pe + (i*r + j)*C/(r^2 pe) + g``
  of the row (loops ``i``, ``w``, ``(j, g)``);
* CRD with ``pe == 1``: word ``w*C + co*r^2 + i*r + j`` (loops ``i``, ``w``, ``j``, ``co``);
* CRD with ``pe > 1``: ``pe`` skewed banks of one element (see
  :class:`~streamfold.compiler.units.row_buffer.RowPlan`), a write rotator and an output crossbar.

Timing: one beat per clock on both sides, ``H*W*C/pe`` cycles per frame; an output row block
starts two cycles after the last beat of its input row is taken.
"""
from __future__ import annotations

from streamfold.compiler.units.depth_to_space import DepthToSpaceUnit

from .row_buffer import RowBufferHW


class DepthToSpaceHW(RowBufferHW):
    """Members: ``i``, ``o`` (``pe * bits`` each)."""

    def __init__(self, unit: DepthToSpaceUnit):
        unit.check_folding()
        self.unit = unit
        super().__init__(unit.row_plan())

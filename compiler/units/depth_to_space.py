"""DepthToSpace (kind ``depth_to_space``): ONNX ``DepthToSpace`` (a pixel shuffle) with block
size ``r``, channel-last: ``(H, W, C) -> (H*r, W*r, C/r^2)``.

Integer semantics, per input pixel ``(h, w)``, output channel ``co`` and block position
``(i, j)`` (``0 <= i, j < r``)::

    out[h*r + i, w*r + j, co] = in[h, w, (i*r + j)*C/r^2 + co]      mode "DCR" (ONNX default)
    out[h*r + i, w*r + j, co] = in[h, w, co*r^2 + i*r + j]          mode "CRD" (torch PixelShuffle)

(ONNX, in NCHW: DCR reshapes to ``(N, r, r, C/r^2, H, W)`` and transposes ``(0, 3, 4, 1, 5,
2)``; CRD reshapes to ``(N, C/r^2, r, r, H, W)`` and transposes ``(0, 1, 4, 2, 5, 3)``.)

``pe`` elements per beat on both sides, dividing the output channels ``C/r^2``. Output rows
``h*r .. h*r + r-1`` need input row ``h`` only: a two-row ping-pong buffer
(:mod:`.row_buffer`, hardware :mod:`streamfold.hw.depth_to_space`) writes row ``h`` while it
reads row ``h-1`` out in output order. Input and output have the same ``W*C/pe`` beats per row,
so the unit takes and gives one beat per clock: ``H*W*C/pe`` cycles per frame. In DCR mode an
output beat is one input beat (a word of the buffer); in CRD mode with ``pe > 1`` its ``pe``
elements come from ``pe`` input beats, and the buffer is ``pe`` skewed banks of one element.

Tiling: output column ``j`` reads input column ``j // r``, which :class:`~.base.ColumnStep`
(output columns no more than input columns) cannot express: the kind needs the whole frame.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..datatypes import DataType, StreamSpec
from . import row_buffer
from .base import FoldError, UnitKind

MODES = ("DCR", "CRD")


@dataclass
class DepthToSpaceUnit(row_buffer.RowReorder):
    """DepthToSpace (module docstring). ``in_shape``: ``(H, W, C)``, channels last."""

    kind: ClassVar[str] = "depth_to_space"
    name: str
    in_shape: tuple
    dtype: DataType
    block: int = 2
    mode: str = "DCR"
    pe: int = 1
    source: str = ""

    @property
    def channels(self) -> int:
        """Output channels ``C / r^2`` (what ``pe`` divides)."""
        return int(self.in_shape[2]) // (int(self.block) ** 2)

    @property
    def in_stream(self) -> StreamSpec:
        return StreamSpec(tuple(self.in_shape), self.dtype, self.pe)

    @property
    def out_stream(self) -> StreamSpec:
        h, w, _ = self.in_shape
        r = int(self.block)
        return StreamSpec((h * r, w * r, self.channels), self.dtype, self.pe)

    def check_folding(self) -> None:
        self.check_shape()
        r, c = int(self.block), int(self.in_shape[2])
        if r < 1 or c % (r * r):
            raise FoldError(f"layer {self.name}: DepthToSpace block {r} needs channels divisible "
                            f"by {r * r}, has {c}")
        if self.mode not in MODES:
            raise FoldError(f"layer {self.name}: DepthToSpace mode {self.mode!r} is not one of {MODES}")
        super().check_folding()

    def row_plan(self) -> row_buffer.RowPlan:
        h, w, c = (int(v) for v in self.in_shape)
        r, pe = int(self.block), int(self.pe)
        R, cfo = r * r, self.channels // pe
        cfi = c // pe  # words per input pixel
        common = dict(rows=h, n_in=w * cfi, lanes=pe, bits=self.dtype.bits)
        if self.mode == "DCR" or r == 1:
            # word of (i, w, j, g): w*cfi + (i*r + j)*cfo + g
            loops = [("i", r, r * cfo), ("w", w, cfi), ("j", r, cfo), ("g", cfo, 1)]
            return row_buffer.RowPlan(loops=row_buffer.simplify_loops(loops), **common)
        if pe == 1:
            # word of (i, w, j, co): w*C + co*R + i*r + j
            loops = [("i", r, r), ("w", w, c), ("j", r, 1), ("g", cfo, R)]
            return row_buffer.RowPlan(loops=row_buffer.simplify_loops(loops), **common)
        loops = [("i", r, 0), ("w", w, cfi), ("j", r, 0), ("g", cfo, R)]
        rot, offset, select = row_buffer.skew_tables(pe, R)
        return row_buffer.RowPlan(loops=row_buffer.simplify_loops(loops, keep=("i", "j")), banks=pe,
                                  r=r, rot=rot, offset=offset, select=select, **common)


def reference(u: DepthToSpaceUnit, x: np.ndarray) -> np.ndarray:
    """Channel-last DepthToSpace of frames ``x (N, H, W, C)`` (module docstring)."""
    x = np.asarray(x, dtype=np.int64)
    n, h, w, c = x.shape
    r = int(u.block)
    co = c // (r * r)
    if u.mode == "DCR":
        y = x.reshape(n, h, w, r, r, co).transpose(0, 1, 3, 2, 4, 5)
    else:
        y = x.reshape(n, h, w, co, r, r).transpose(0, 1, 4, 2, 5, 3)
    return y.reshape(n, h * r, w * r, co)


KIND = UnitKind(
    name="depth_to_space", ir=DepthToSpaceUnit, reference=reference, cycles=row_buffer.cycles,
    hardware="streamfold.hw.depth_to_space:DepthToSpaceHW",
    timeline=row_buffer.timeline, latest=row_buffer.latest, memories=row_buffer.memories,
    line_buffer=True, features=row_buffer.features, feature_names=row_buffer.FEATURE_NAMES,
    default_coef=row_buffer.DEFAULT_COEF, model_key="row_buffer",
)

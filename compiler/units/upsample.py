"""Nearest-neighbour upsampling (kind ``upsample``) by integer factors ``scale = (sh, sw)``:
ONNX ``Resize`` in mode ``nearest`` with integer scales (``Upsample``), channel-last
``(H, W, C) -> (H*sh, W*sw, C)``.

Integer semantics::

    out[y, x, c] = in[y // sh, x // sw, c]

(ONNX Resize gives exactly this for integer scales with the default ``half_pixel`` coordinates
and ``round_prefer_floor``, and with ``asymmetric`` and ``floor``.)

``pe`` channels per beat on both sides. Output rows ``h*sh .. h*sh + sh-1`` need input row
``h`` only: a two-row ping-pong buffer (:mod:`.row_buffer`, hardware
:mod:`streamfold.hw.upsample`) writes row ``h`` while it reads row ``h-1`` ``sh`` times, each
pixel ``sw`` times (read address ``x*C/pe + cf``, counters only). The output side is the busy
one (``sh*sw`` beats per input beat), one beat per clock: ``H*sh*W*sw*C/pe`` cycles per frame.

Tiling: output column ``j`` reads input column ``j // sw``; :class:`~.base.ColumnStep` (integer
strides, output columns no more than input columns) cannot express an upsampling, so the kind
needs the whole frame.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..datatypes import DataType, StreamSpec
from . import row_buffer
from .base import FoldError, UnitKind


@dataclass
class UpsampleUnit(row_buffer.RowReorder):
    """Nearest-neighbour upsampling (module docstring). ``in_shape``: ``(H, W, C)``."""

    kind: ClassVar[str] = "upsample"
    name: str
    in_shape: tuple
    dtype: DataType
    scale: tuple = (2, 2)
    pe: int = 1
    source: str = ""

    @property
    def channels(self) -> int:
        return int(self.in_shape[2])

    @property
    def in_stream(self) -> StreamSpec:
        return StreamSpec(tuple(self.in_shape), self.dtype, self.pe)

    @property
    def out_stream(self) -> StreamSpec:
        h, w, c = self.in_shape
        sh, sw = (int(v) for v in self.scale)
        return StreamSpec((h * sh, w * sw, c), self.dtype, self.pe)

    def check_folding(self) -> None:
        self.check_shape()
        if len(self.scale) != 2 or min(int(v) for v in self.scale) < 1 \
                or any(int(v) != v for v in self.scale):
            raise FoldError(f"layer {self.name}: upsampling needs two positive integer scales "
                            f"(sh, sw), got {tuple(self.scale)}")
        super().check_folding()

    def row_plan(self) -> row_buffer.RowPlan:
        h, w, c = (int(v) for v in self.in_shape)
        sh, sw = (int(v) for v in self.scale)
        cf = c // int(self.pe)
        loops = [("y", sh, 0), ("x", w, cf), ("xs", sw, 0), ("cf", cf, 1)]
        return row_buffer.RowPlan(rows=h, n_in=w * cf, lanes=int(self.pe), bits=self.dtype.bits,
                                  loops=row_buffer.simplify_loops(loops))


def reference(u: UpsampleUnit, x: np.ndarray) -> np.ndarray:
    """``out[y, x, c] = in[y // sh, x // sw, c]`` on frames ``x (N, H, W, C)``."""
    sh, sw = (int(v) for v in u.scale)
    x = np.asarray(x, dtype=np.int64)
    return np.repeat(np.repeat(x, sh, axis=1), sw, axis=2)


KIND = UnitKind(
    name="upsample", ir=UpsampleUnit, reference=reference, cycles=row_buffer.cycles,
    hardware="streamfold.hw.upsample:UpsampleHW",
    timeline=row_buffer.timeline, latest=row_buffer.latest, memories=row_buffer.memories,
    line_buffer=True, features=row_buffer.features, feature_names=row_buffer.FEATURE_NAMES,
    default_coef=row_buffer.DEFAULT_COEF, model_key="row_buffer",
)

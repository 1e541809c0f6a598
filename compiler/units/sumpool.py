"""Windowed sum-pool (kind ``sumpool``): the sum of each ``kernel`` window with ``stride``, no
padding; the first half of an average pool (Brevitas' ``TruncAvgPool2d`` exports
``AveragePool`` + ``Trunc``: the compiler folds the ``1/(kh*kw)`` into the scale and the Trunc
into the next quantizer or a threshold unit).

Integer semantics: ``out[y, x, c] = sum of in[y*sh + i, x*sw + j, c]`` over the window (bipolar
elements count as -1/+1), exact, in :attr:`SumPoolUnit.out_dtype`. ``pe`` channels per beat.
Hardware: :mod:`streamfold.hw.maxpool` with a sum in place of the max (two window reductions:
along the row, then across rows), the same schedule as the max-pool's.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..datatypes import DataType
from . import pooling
from .base import UnitKind
from .maxpool import MaxPoolUnit, column_step, for_strip


def _sum_type(d: DataType, n: int) -> DataType:
    return DataType.for_range(min(0, d.min * n), d.max * n)


@dataclass
class SumPoolUnit(MaxPoolUnit):
    """Windowed sum-pool (module docstring)."""

    kind: ClassVar[str] = "sumpool"
    reduce_op: ClassVar[str] = "sum"

    def stage_dtypes(self) -> tuple:
        (kh, kw), sw = self.kernel, self.stride[1]
        d1 = self.dtype if (kw, sw) == (1, 1) else _sum_type(self.dtype, kw)
        return (self.dtype, d1, _sum_type(self.dtype, kh * kw))


def reference(u: SumPoolUnit, x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.int64)
    (kh, kw), (sh, sw) = u.kernel, u.stride
    oh, ow = u.out_hw
    out = 0
    for ky in range(kh):
        for kx in range(kw):
            out = out + x[:, ky:ky + sh * (oh - 1) + 1:sh, kx:kx + sw * (ow - 1) + 1:sw, :]
    return out


def features(u: SumPoolUnit, family: str) -> dict:
    """The max-pool's partial banks and counters, with adders in place of comparators: a row
    stage (``pe`` adders of the stage-1 width, absent for a 1-wide window) and a column stage
    (``pe`` adders of the output width)."""
    f = pooling.features(u, family)
    (kh, kw), (sh, sw) = u.kernel, u.stride
    _d0, d1, d2 = u.stage_dtypes()
    f["LUT"]["add"] = u.pe * (d1.bits * ((kw, sw) != (1, 1)) + d2.bits * (kh > 1))
    f["LUT"]["sgn"] = u.pe * d2.bits * u.dtype.signed  # sign extension ahead of each adder
    return f


FEATURE_NAMES = {"LUT": pooling.FEATURE_NAMES["LUT"] + ["add", "sgn"], "FF": pooling.FEATURE_NAMES["FF"]}
DEFAULT_COEF = {"LUT": {**pooling.DEFAULT_COEF["LUT"], "add": 1.0, "sgn": 0.5}, "FF": pooling.DEFAULT_COEF["FF"]}


KIND = UnitKind(
    name="sumpool", ir=SumPoolUnit, reference=reference, cycles=pooling.cycles,
    hardware="streamfold.hw.maxpool:MaxPoolHW",
    timeline=pooling.timeline, latest=pooling.latest, memories=SumPoolUnit.partial_memories,
    line_buffer=True, features=features, feature_names=FEATURE_NAMES,
    default_coef=DEFAULT_COEF, model_key="sumpool", column_step=column_step, for_strip=for_strip,
)

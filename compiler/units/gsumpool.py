"""Global sum-pool (kind ``gsumpool``): the sum of every pixel per channel, ``(H, W, C) -> (C,)``.

``pe`` channels per beat. The integer sum is exact; a global *average* divides by ``H*W``
downstream (the compiler folds that factor into the next scale or applies the model's Trunc
there). Hardware: :mod:`streamfold.hw.gsumpool` (one window reduction over the whole frame).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..datatypes import DataType, StreamSpec
from ..memory import MemSpec
from . import pooling
from .base import UnitKind


@dataclass
class GlobalSumPoolUnit(pooling.ChannelFolded):
    """Global sum-pool (module docstring)."""

    kind: ClassVar[str] = "gsumpool"
    name: str
    in_shape: tuple
    dtype: DataType
    pe: int = 1
    source: str = ""

    @property
    def out_dtype(self) -> DataType:
        h, w, _ = self.in_shape
        return DataType.for_range(min(0, self.dtype.min * h * w), self.dtype.max * h * w)

    @property
    def in_stream(self) -> StreamSpec:
        return StreamSpec(tuple(self.in_shape), self.dtype, self.pe)

    @property
    def out_stream(self) -> StreamSpec:
        return StreamSpec((self.in_shape[2],), self.out_dtype, self.pe)

    def reduce_stages(self) -> list:
        h, w, c = self.in_shape
        return [(h * w, h * w, h * w, c // self.pe)]

    def partial_memories(self) -> list[MemSpec]:
        """The running sums: ``C/pe`` words of ``pe`` sums (registers when ``C/pe == 1``)."""
        cf = self.in_shape[2] // self.pe
        return [MemSpec("sums", cf, self.pe * self.out_dtype.bits, "sdp")] if cf > 1 else []


def reference(u: GlobalSumPoolUnit, x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.int64).sum(axis=(1, 2))


KIND = UnitKind(
    name="gsumpool", ir=GlobalSumPoolUnit, reference=reference, cycles=pooling.cycles,
    hardware="streamfold.hw.gsumpool:GlobalSumPoolHW",
    timeline=pooling.timeline, latest=pooling.latest, memories=GlobalSumPoolUnit.partial_memories,
    features=pooling.features, feature_names=pooling.FEATURE_NAMES, default_coef=pooling.DEFAULT_COEF,
)

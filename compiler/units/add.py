"""Elementwise add of two streams (kind ``add``): residual joins, with an optional multi-threshold
activation on the sum.

Integer semantics, per element (values decoded, bipolar as -1/+1)::

    acc = a_mul * a + b_mul * b
    out = out_bias + #{k : acc >= T[c, k]}      (thresholds given; bipolar output: 2*count - 1)
    out = acc                                   (no thresholds; out_dtype holds acc's range)

``a_mul``/``b_mul`` are small integers: the exact rescaling of two inputs whose scales have a
rational ratio (``s_a / s_b = b_mul / a_mul`` reduced, the sum's scale ``s_a / b_mul``); equal
scales give ``1, 1``. The thresholds come from the quantizer after the add
(:mod:`streamfold.compiler.thresholds`), as a matrix product's do.

Handshake and timing (:mod:`streamfold.hw.add`): a beat is taken from both inputs in the same
cycle (both valid, the pipeline free), one beat per clock; the output leaves :attr:`AddUnit.latency`
cycles later (1: the sum register; 2 with thresholds: sum, then the threshold count). ``pe``
elements per beat on both inputs and the output; a ``C/pe > 1`` fold reads the thresholds of
channel group ``g`` from word ``g`` of a threshold ROM (:func:`threshold_image`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..datatypes import DataType, StreamSpec
from ..memory import MemSpec
from ..resource_model import clog2, exact, mem_features
from ..rom_images import RomImage
from ..schedule import chain
from .base import ElementFolded, FoldError, UnitKind
from .dot_product import apply_thresholds

#: cycles from the input beats to the output beat: the sum register, and the threshold count's
SUM_LATENCY = 1
THRESHOLD_LATENCY = 1


@dataclass
class AddUnit(ElementFolded):
    """Add of two streams (module docstring). ``shape``: the frame shape, channels last."""

    kind: ClassVar[str] = "add"
    name: str
    shape: tuple
    a_dtype: DataType
    b_dtype: DataType
    out_dtype: DataType
    a_mul: int = 1
    b_mul: int = 1
    thresholds: np.ndarray | None = None
    out_bias: int = 0
    pe: int = 1
    source: str = ""

    @property
    def channels(self) -> int:
        return int(self.shape[-1])

    def input_streams(self) -> list:
        return [StreamSpec(tuple(self.shape), self.a_dtype, self.pe),
                StreamSpec(tuple(self.shape), self.b_dtype, self.pe)]

    @property
    def in_stream(self) -> StreamSpec:
        return self.input_streams()[0]

    @property
    def out_stream(self) -> StreamSpec:
        return StreamSpec(tuple(self.shape), self.out_dtype, self.pe)

    @property
    def acc_range(self) -> tuple[int, int]:
        """Exact (min, max) of ``a_mul * a + b_mul * b``."""
        lo = hi = 0
        for m, d in ((self.a_mul, self.a_dtype), (self.b_mul, self.b_dtype)):
            x, y = m * d.min, m * d.max
            lo, hi = lo + min(x, y), hi + max(x, y)
        return int(lo), int(hi)

    @property
    def acc_dtype(self) -> DataType:
        """The sum's datatype (wide enough for the thresholds too, which are compared with it)."""
        lo, hi = self.acc_range
        if self.thresholds is not None and np.size(self.thresholds):
            lo, hi = min(lo, int(np.min(self.thresholds))), max(hi, int(np.max(self.thresholds)))
        return DataType.for_range(min(lo, 0), hi)

    @property
    def n_thresholds(self) -> int:
        return 0 if self.thresholds is None else int(np.shape(self.thresholds)[1])

    @property
    def latency(self) -> int:
        return SUM_LATENCY + (THRESHOLD_LATENCY if self.thresholds is not None else 0)

    def check_folding(self) -> None:
        super().check_folding()
        if self.thresholds is None:
            lo, hi = self.acc_range
            if self.out_dtype.bipolar or not self.out_dtype.contains([lo, hi]):
                raise FoldError(f"layer {self.name}: the sum's range [{lo}, {hi}] does not fit its "
                                f"output type {self.out_dtype.name}")
        elif np.shape(self.thresholds)[0] != self.channels:
            raise FoldError(f"layer {self.name}: {np.shape(self.thresholds)[0]} threshold rows for "
                            f"{self.channels} channels")


def reference(u: AddUnit, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    acc = u.a_mul * np.asarray(a, dtype=np.int64) + u.b_mul * np.asarray(b, dtype=np.int64)
    if u.thresholds is None:
        return acc
    return apply_thresholds(acc, np.asarray(u.thresholds, dtype=np.int64), u.out_dtype, u.out_bias)


def threshold_image(u: AddUnit) -> RomImage:
    """Thresholds of an add: ``C/pe`` words of ``pe*n`` lanes of ``acc_dtype.bits``; word ``g``,
    lane ``p*n + j`` holds ``T[g*pe + p, j]`` (no thresholds: words of no lanes)."""
    acc, groups = u.acc_dtype, u.channels // u.pe
    if u.thresholds is None:
        return RomImage(np.zeros((groups, 0), dtype=np.int64), acc.bits)
    t = np.asarray(u.thresholds, dtype=np.int64)
    return RomImage(acc.encode(t).reshape(groups, -1), acc.bits)


def cycles(u) -> int:
    """One beat of each input per clock."""
    return u.out_stream.beats_per_frame


def timeline(u: AddUnit, avails: list, frames: int):
    """Both inputs' beat ``k`` taken together, one per clock; the output ``latency`` later."""
    r = chain(np.maximum(avails[0], avails[1]))
    return [r, r], [r + u.latency]


def memories(u) -> list[MemSpec]:
    img = threshold_image(u)
    return [MemSpec("thresholds", img.depth, img.width, "rom", "auto", img.bit_matrix)] if img.in_rom else []


def features(u, family: str) -> dict:
    """Per lane, the adders of the sum (a constant factor is shifted additions, one per further
    non-zero digit of its non-adjacent form), comparators against the thresholds (cheap against
    constants: one channel group), the threshold ROM (soft-logic columns, deeper ones grow), its
    address counter, the pipeline registers (the sum register holds ``out_bits`` when it is the
    output register)."""
    mem = mem_features(memories(u), family)
    pe, ab, ob = u.pe, u.acc_dtype.bits, u.out_dtype.bits
    n_thr = u.n_thresholds
    thresholded = u.thresholds is not None
    in_rom = threshold_image(u).in_rom
    digits = sum(bin((3 * abs(m)) ^ abs(m)).count("1") for m in (u.a_mul, u.b_mul))  # NAF weights
    ctr = clog2(u.channels // pe) * in_rom
    cmp = pe * n_thr * ab
    lut = {"const": 1, "add": pe * ab * max(0, digits - 1), "cmp": cmp * in_rom,
           "cmpc": cmp * (not in_rom), "rom": mem["rom_lut"], "romd": mem["rom_deep"], "ctr": ctr}
    ff = {"const": 1 + thresholded, "acc": pe * ((ab * (n_thr > 0)) if thresholded else ob),
          "out": pe * ob * (n_thr > 0), "mem": mem["mem_reg"], "ctr": ctr}
    return {"LUT": lut, "FF": ff, "exact": exact(mem), "memories": mem["maps"]}


KIND = UnitKind(
    name="add", ir=AddUnit, reference=reference, cycles=cycles, hardware="streamfold.hw.add:AddHW",
    timeline=timeline, multiport=True, memories=memories, features=features,
    feature_names={"LUT": ["const", "add", "cmp", "cmpc", "rom", "romd", "ctr"],
                   "FF": ["const", "acc", "out", "mem", "ctr"]},
    default_coef={"LUT": {"const": 2, "add": 1.1, "cmp": 1.0, "cmpc": 0.35, "rom": 1.0, "romd": 1.5, "ctr": 2},
                  "FF": {"const": 1, "acc": 1, "out": 1, "mem": 1, "ctr": 1}},
)

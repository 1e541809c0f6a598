"""Multi-threshold activation of a stream (kind ``thresholds``): requantizing a quantized tensor
where no matrix product sits between two quantizers (a concat or a pool followed by another
quantizer, a skip path quantized to another scale).

Integer semantics, per element ``x`` of channel ``c`` (values decoded, bipolar as -1/+1)::

    out = out_bias + #{k : x >= T[c, k]}        (bipolar output: 2*count - 1)

The thresholds come from the model's ops between the two quantizers and the second quantizer
(:mod:`streamfold.compiler.thresholds`), as a matrix product's do.

Handshake and timing (:mod:`streamfold.hw.thresholding`): one beat per clock; an input register,
then the threshold count register, so an output beat leaves :data:`LATENCY` cycles after its
input beat is taken. ``pe`` elements per beat; a ``C/pe > 1`` fold reads the thresholds of
channel group ``g`` from word ``g`` of a ROM laid out as the add's (:func:`.add.threshold_image`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..datatypes import DataType
from ..memory import MemSpec
from ..resource_model import clog2, exact, mem_features, shapes_to_specs
from ..schedule import fixed_latency
from .add import threshold_image
from .base import Elementwise, FoldError, UnitKind
from .dot_product import apply_thresholds

#: cycles from an input beat to its output beat: the input register and the count register
LATENCY = 2


@dataclass
class ThresholdUnit(Elementwise):
    """Multi-threshold activation (module docstring). ``shape``: the frame, channels last."""

    kind: ClassVar[str] = "thresholds"
    name: str
    shape: tuple
    in_dtype: DataType
    out_dtype: DataType
    thresholds: np.ndarray | None = None
    out_bias: int = 0
    pe: int = 1
    source: str = ""

    @property
    def acc_dtype(self) -> DataType:
        """The type the comparisons are made in: the input's range and the thresholds'."""
        lo, hi = self.in_dtype.min, self.in_dtype.max
        if self.thresholds is not None and np.size(self.thresholds):
            lo, hi = min(lo, int(np.min(self.thresholds))), max(hi, int(np.max(self.thresholds)))
        return DataType.for_range(min(lo, 0), hi)

    @property
    def n_thresholds(self) -> int:
        return 0 if self.thresholds is None else int(np.shape(self.thresholds)[1])

    def check_folding(self) -> None:
        super().check_folding()
        if self.thresholds is None or np.shape(self.thresholds)[0] != self.channels:
            raise FoldError(f"layer {self.name}: needs one row of thresholds per channel "
                            f"({self.channels})")


def reference(u: ThresholdUnit, x: np.ndarray) -> np.ndarray:
    return apply_thresholds(np.asarray(x, dtype=np.int64), np.asarray(u.thresholds, dtype=np.int64),
                            u.out_dtype, u.out_bias)


def cycles(u) -> int:
    return u.in_stream.beats_per_frame


timeline, latest = fixed_latency(LATENCY)


def memories(u) -> list[MemSpec]:
    """The threshold ROM: ``C/pe`` words, unless they are all equal (then Yosys folds the ROM into
    the constant it holds, and so does this model)."""
    img = threshold_image(u)
    if not img.in_rom or img.uniform:
        return []
    return [MemSpec("thresholds", img.depth, img.width, "rom", "auto", img.bit_matrix)]


def features(u, family: str) -> dict:
    """Comparators and their count (the output code), the threshold ROM, two registers.

    Against constant thresholds (one threshold word, or all words equal) the whole unit is a
    function of each element's ``in_bits``: up to 6 bits it is one LUT per output bit (``fun``),
    wider it is a comparison with constants (``ccmp``, a carry chain against fixed bits). Against
    thresholds read from a ROM every comparison is a full subtractor (``cmp``) and the results are
    counted (``enc``)."""
    mems = memories(u)
    mem = mem_features(shapes_to_specs(mems, "rom"), family)
    pe, ab, ib, ob = u.pe, u.acc_dtype.bits, u.in_dtype.bits, u.out_dtype.bits
    n = u.n_thresholds
    ctr = clog2(u.channels // pe)
    const = not mems
    lut = {"const": 1, "cmp": 0, "enc": 0, "fun": 0, "ccmp": 0, "rom": mem["rom_lut"], "ctr": ctr}
    if const and ib <= 6:
        lut["fun"] = pe * ob * (n > 0)
    elif const:
        lut["ccmp"] = pe * n * ib
    else:
        lut["cmp"], lut["enc"] = pe * n * ab, pe * n
    ff = {"const": 1, "x": pe * ib, "out": pe * ob, "mem": mem["mem_reg"], "ctr": ctr}
    return {"LUT": lut, "FF": ff, "exact": exact(mem), "memories": mem["maps"]}


KIND = UnitKind(
    name="thresholds", ir=ThresholdUnit, reference=reference, cycles=cycles,
    hardware="streamfold.hw.thresholding:ThresholdHW", timeline=timeline, latest=latest,
    memories=memories, features=features,
    feature_names={"LUT": ["const", "cmp", "enc", "fun", "ccmp", "rom", "ctr"], "FF": ["const", "x", "out", "mem", "ctr"]},
    default_coef={"LUT": {"const": 4, "cmp": 0.8, "enc": 1, "fun": 1, "ccmp": 0.3, "rom": 1.7, "ctr": 2},
                  "FF": {"const": 2, "x": 1, "out": 1, "mem": 1, "ctr": 1}},
)

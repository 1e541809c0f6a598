"""Elementwise activation by table (kind ``lookup``): any function between two quantizers that
thresholds cannot express (non-monotone ones: HardSwish, SiLU, GELU ...), as a table of output
values indexed by the input level.

Integer semantics, per element ``x`` of channel ``c`` (values decoded, bipolar as -1/+1)::

    out = table[level(x)]          (one table for every channel, ``table`` of shape (n,))
    out = table[c, level(x)]       (one table per channel, ``table`` of shape (C, n))

with ``level(x) = x - in_dtype.min`` and ``n = in_dtype.max - in_dtype.min + 1`` the number of
input levels (a narrow type has one level fewer; bipolar: ``level(-1) = 0``, ``level(+1) = 1``,
``n = 2``). ``table`` holds output *values* (int64), each in ``out_dtype`` (bipolar: -1/+1).

The input is at most :data:`MAX_LOOKUP_BITS` bits wide: a table has ``2**bits`` words per
channel table and lane.

Handshake and timing (:mod:`streamfold.hw.lookup`): one beat per clock; ``pe`` lanes, each a
synchronous-read ROM addressed by the lane's element *code* (and, with per-channel tables and
``C/pe > 1``, the channel group), so an output beat leaves :data:`LATENCY` (1) cycle after its
input beat is taken; ``i.ready = ~o.valid | o.ready``.

ROM image of lane ``p`` (:func:`lane_image`): ``G * 2**bits`` words of ``out_dtype.bits``, ``G =
C/pe`` with per-channel tables (else 1); word ``g * 2**bits + code`` holds the output code of
``table[g*pe + p, level(decode(code))]`` (a code no value has, the most negative code of a
narrow signed type, holds 0). A shared table gives every lane the same image.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..datatypes import DataType
from ..memory import MemSpec
from ..resource_model import clog2, exact, mem_features
from ..rom_images import RomImage
from ..schedule import fixed_latency
from .base import Elementwise, FoldError, PER_PIXEL, UnitKind

#: widest input a table is built for (``2**10`` words per channel table and lane)
MAX_LOOKUP_BITS = 10

#: cycles from an input beat to its output beat: the ROM's read register
LATENCY = 1


def levels(dtype: DataType) -> int:
    """Number of input levels ``n`` of ``dtype`` (the length of one table)."""
    return 2 if dtype.bipolar else dtype.max - dtype.min + 1


def level_of(x, dtype: DataType) -> np.ndarray:
    """Table index of values ``x``: ``x - dtype.min``; bipolar -1/+1 -> 0/1."""
    x = np.asarray(x, dtype=np.int64)
    return (x + 1) // 2 if dtype.bipolar else x - dtype.min


@dataclass
class LookupUnit(Elementwise):
    """Elementwise table activation (module docstring). ``shape``: the frame, channels last."""

    kind: ClassVar[str] = "lookup"
    name: str
    shape: tuple
    in_dtype: DataType
    out_dtype: DataType
    table: np.ndarray | None = None
    pe: int = 1
    source: str = ""

    @property
    def per_channel(self) -> bool:
        """Whether there is one table per channel (``table`` of shape (C, n))."""
        return self.table is not None and np.ndim(self.table) == 2

    @property
    def groups(self) -> int:
        """Channel groups a lane's ROM holds tables of: ``C/pe`` per channel, else 1."""
        return self.channels // self.pe if self.per_channel else 1

    def check_folding(self) -> None:
        super().check_folding()
        b = self.in_dtype.bits
        if b > MAX_LOOKUP_BITS:
            raise FoldError(f"layer {self.name}: a lookup table needs an input of at most "
                            f"{MAX_LOOKUP_BITS} bits, its input {self.in_dtype.name} is {b} bits wide")
        n = levels(self.in_dtype)
        t = None if self.table is None else np.asarray(self.table)
        if t is None or t.shape not in ((n,), (self.channels, n)):
            got = None if t is None else t.shape
            raise FoldError(f"layer {self.name}: the table must have shape ({n},) or "
                            f"({self.channels}, {n}) for input {self.in_dtype.name} and "
                            f"{self.channels} channels, got {got}")
        if not self.out_dtype.contains(t):
            raise FoldError(f"layer {self.name}: table values [{int(t.min())}, {int(t.max())}] "
                            f"do not fit its output {self.out_dtype.name}")


def reference(u: LookupUnit, x: np.ndarray) -> np.ndarray:
    t = np.asarray(u.table, dtype=np.int64)
    lv = level_of(x, u.in_dtype)
    if t.ndim == 1:
        return t[lv]
    return t[np.arange(u.channels), lv]  # channels last: broadcast over the leading axes


def lane_image(u: LookupUnit, p: int) -> RomImage:
    """ROM image of lane ``p`` (module docstring): ``groups * 2**bits`` words, one lane of
    ``out_dtype.bits``."""
    ib = u.in_dtype.bits
    codes = np.arange(1 << ib, dtype=np.int64)
    lv = level_of(u.in_dtype.decode(codes), u.in_dtype)
    ok = (lv >= 0) & (lv < levels(u.in_dtype))
    lv = np.where(ok, lv, 0)
    t = np.asarray(u.table, dtype=np.int64)
    rows = t[None, :] if t.ndim == 1 else t[p::u.pe]  # (groups, n): channels g*pe + p
    out = np.where(ok[None, :], u.out_dtype.encode(rows[:, lv]), 0)
    return RomImage(out.reshape(-1, 1), u.out_dtype.bits)


def cycles(u) -> int:
    return u.in_stream.beats_per_frame


timeline, latest = fixed_latency(LATENCY)


def memories(u) -> list[MemSpec]:
    """One ROM per lane (``table0``, ``table1`` ...)."""
    out = []
    for p in range(u.pe):
        img = lane_image(u, p)
        out.append(MemSpec(f"table{p}", img.depth, img.width, "rom", "auto", img.bit_matrix))
    return out


def features(u, family: str) -> dict:
    """The lane ROMs (logic or block RAM; their read registers), the channel-group counter."""
    mem = mem_features(memories(u), family)
    ctr = clog2(u.groups)
    lut = {"const": 1, "rom": mem["rom_lut"], "romd": mem["rom_deep"], "ctr": ctr}
    ff = {"const": 1, "mem": mem["mem_reg"], "ctr": ctr}
    return {"LUT": lut, "FF": ff, "exact": exact(mem), "memories": mem["maps"]}


def column_step(u):
    return PER_PIXEL if len(u.shape) == 3 else None


def for_strip(u, width: int):
    return u.replace(shape=(u.shape[0], int(width), u.shape[2]))


#: coefficients fitted (non-negative least squares, relative error) to Yosys 0.70 on 10
#: configurations (SiLU/GELU/HardSwish tables, 3..10-bit inputs, shared and per-channel, pe
#: 1..8): the ``calibration.json`` entries of this kind (LUT within about +-50% on xc7, +-35% on
#: ecp5: a soft ROM's LUTs depend on its contents; FF exact; BRAM as predicted)
YOSYS_FIT = {
    "xc7": {"LUT": {"const": 3.35, "rom": 0.88, "romd": 0.59, "ctr": 0.25},
            "FF": {"const": 1, "mem": 1, "ctr": 1}},
    "ecp5": {"LUT": {"const": 2.01, "rom": 0.96, "romd": 0.5, "ctr": 1.06},
             "FF": {"const": 1, "mem": 1, "ctr": 1}},
}


KIND = UnitKind(
    name="lookup", ir=LookupUnit, reference=reference, cycles=cycles,
    hardware="streamfold.hw.lookup:LookupHW", timeline=timeline, latest=latest,
    memories=memories, features=features,
    feature_names={"LUT": ["const", "rom", "romd", "ctr"], "FF": ["const", "mem", "ctr"]},
    default_coef=YOSYS_FIT["xc7"],
    column_step=column_step, for_strip=for_strip,
)

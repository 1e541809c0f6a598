"""Concatenation of streams on channels (kind ``concat``): Inception-style joins.

Integer semantics: per pixel, the channels of input 0, then those of input 1, ... (values
unchanged; each input's elements are widened to ``out_dtype``, which holds every input's range).

Handshake and timing (:mod:`streamfold.hw.concat`): for every pixel the unit passes
``C_0/pe`` beats of input 0, then ``C_1/pe`` of input 1, ..., one beat per clock, straight
through (no register: a beat leaves the cycle it is taken). ``pe`` elements per beat, dividing
every input's channel count.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import reduce
from typing import ClassVar

import numpy as np

from ..datatypes import DataType, StreamSpec
from ..resource_model import clog2
from ..schedule import chain
from .base import FoldError, Unit, UnitKind, divisors
from .fork import NO_MEMORY


@dataclass
class ConcatUnit(Unit):
    """Channel concatenation (module docstring). ``spatial``: the frame shape without channels
    (``(H, W)``, or ``()`` for vectors); ``channels``/``in_dtypes``: per input."""

    kind: ClassVar[str] = "concat"
    name: str
    spatial: tuple
    channels: tuple
    in_dtypes: tuple
    out_dtype: DataType
    pe: int = 1
    source: str = ""

    @property
    def common(self) -> int:
        return reduce(math.gcd, self.channels)

    def folding(self) -> dict:
        return {"pe": self.pe}

    def fold_choices(self) -> dict:
        return {"pe": divisors(self.common)}

    def check_folding(self) -> None:
        if len(self.channels) < 2 or len(self.in_dtypes) != len(self.channels):
            raise FoldError(f"layer {self.name}: a concat needs at least two inputs, each with a "
                            "channel count and a datatype")
        if self.pe < 1 or self.common % self.pe:
            raise FoldError(f"layer {self.name}: PE={self.pe} does not divide every input's channels "
                            f"{list(self.channels)}; pick one of {divisors(self.common)}")
        for d in self.in_dtypes:
            if d.bipolar != self.out_dtype.bipolar or not self.out_dtype.contains([d.min, d.max]):
                raise FoldError(f"layer {self.name}: input type {d.name} does not fit its output "
                                f"type {self.out_dtype.name}")

    def input_streams(self) -> list:
        return [StreamSpec(tuple(self.spatial) + (c,), d, self.pe)
                for c, d in zip(self.channels, self.in_dtypes)]

    @property
    def in_stream(self) -> StreamSpec:
        return self.input_streams()[0]

    @property
    def out_stream(self) -> StreamSpec:
        return StreamSpec(tuple(self.spatial) + (sum(self.channels),), self.out_dtype, self.pe)

    def beat_order(self, frames: int) -> tuple[np.ndarray, np.ndarray]:
        """For every output beat of ``frames`` frames: the input port it comes from and its index
        in that port's stream."""
        pixels = frames * math.prod(self.spatial)
        per = [c // self.pe for c in self.channels]
        port = np.repeat(np.arange(len(per)), per)
        ports = np.tile(port, pixels)
        index = np.empty(ports.size, dtype=np.int64)
        for p, n in enumerate(per):
            index[ports == p] = np.arange(pixels * n)
        return ports, index


def reference(u: ConcatUnit, *xs: np.ndarray) -> np.ndarray:
    return np.concatenate([np.asarray(x, dtype=np.int64) for x in xs], axis=-1)


def cycles(u) -> int:
    """One output beat per clock."""
    return u.out_stream.beats_per_frame


def timeline(u: ConcatUnit, avails: list, frames: int):
    """Beats taken in output order, one per clock, each as soon as its input has it; an output
    beat leaves the cycle it is taken."""
    ports, index = u.beat_order(frames)
    want = np.empty(ports.size, dtype=np.int64)
    for p, a in enumerate(avails):
        want[ports == p] = np.asarray(a, dtype=np.int64)[index[ports == p]]
    r = chain(want)
    return [r[ports == p] for p in range(len(avails))], [r]


def features(u, family: str) -> dict:
    """The output multiplexer: per output bit, one input fewer than the distinct values it
    selects from (an input's element bit, its sign copy, or a zero-extension's 0); the beat
    counter and the input-index register."""
    ob = u.out_dtype.bits
    sources = 0
    for bit in range(ob):
        drivers = {j for j, d in enumerate(u.in_dtypes) if bit < d.bits or d.signed}
        zero = any(bit >= d.bits and not d.signed for d in u.in_dtypes)
        sources += len(drivers) + zero - 1
    ctr = clog2(sum(u.channels) // u.pe)
    lut = {"const": 1, "mux": u.pe * sources, "ctr": ctr}
    ff = {"const": 1, "ctr": ctr + clog2(len(u.channels))}
    return {"LUT": lut, "FF": ff, "exact": dict(NO_MEMORY), "memories": {}}


KIND = UnitKind(
    name="concat", ir=ConcatUnit, reference=reference, cycles=cycles,
    hardware="streamfold.hw.concat:ConcatHW", timeline=timeline, multiport=True, extra={"routing": True},
    features=features,
    feature_names={"LUT": ["const", "mux", "ctr"], "FF": ["const", "ctr"]},
    default_coef={"LUT": {"const": 4, "mux": 0.95, "ctr": 2}, "FF": {"const": 0, "ctr": 1}},
)

"""Fork (kind ``fork``): one stream copied to ``n_out`` consumers, each with its own back-pressure.

Integer semantics: every output port carries the input frame unchanged.

Handshake (:mod:`streamfold.hw.fork`): an input beat is offered on every output port at once;
each port takes its copy when its consumer is ready, and the input beat is released when every
port has taken it. Nothing is lost or duplicated; the slowest consumer sets the pace. There is no
register in the path (an output beat leaves the cycle its input is taken), so the fork adds no
latency; the FIFOs on its output edges hold what one consumer takes ahead of another.

``pe`` elements per beat (the producer's fold, so no width converter is needed).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..datatypes import DataType, StreamSpec
from ..schedule import asap
from .base import ElementFolded, FoldError, UnitKind

#: the exactly counted resources of a part without memories or multipliers
NO_MEMORY = {"BRAM": 0, "LUTRAM": 0, "URAM": 0, "DSP": 0}


@dataclass
class ForkUnit(ElementFolded):
    """Fork (module docstring). ``shape``: the stream's frame shape, channels last."""

    kind: ClassVar[str] = "fork"
    name: str
    shape: tuple
    dtype: DataType
    n_out: int = 2
    pe: int = 1
    source: str = ""

    @property
    def channels(self) -> int:
        return int(self.shape[-1])

    @property
    def in_stream(self) -> StreamSpec:
        return StreamSpec(tuple(self.shape), self.dtype, self.pe)

    @property
    def out_stream(self) -> StreamSpec:
        return self.in_stream

    def output_streams(self) -> list:
        return [self.in_stream] * self.n_out

    def check_folding(self) -> None:
        super().check_folding()
        if self.n_out < 2:
            raise FoldError(f"layer {self.name}: a fork needs at least 2 outputs, has {self.n_out}")


def reference(u: ForkUnit, x: np.ndarray) -> tuple:
    return tuple(np.array(x, dtype=np.int64) for _ in range(u.n_out))


def cycles(u) -> int:
    """One beat per clock."""
    return u.in_stream.beats_per_frame


def timeline(u: ForkUnit, avails: list, frames: int):
    """Multi-port schedule: one beat per clock, every copy leaves the cycle the beat is taken."""
    r = asap(avails[0])
    return [r], [r] * u.n_out


def features(u, family: str) -> dict:
    """Handshake logic only: a taken flag per output and the valid/ready gating."""
    lut = {"const": 1, "ports": u.n_out}
    ff = {"const": 1, "ports": u.n_out}
    return {"LUT": lut, "FF": ff, "exact": NO_MEMORY, "memories": {}}


KIND = UnitKind(
    name="fork", ir=ForkUnit, reference=reference, cycles=cycles,
    hardware="streamfold.hw.fork:ForkHW", timeline=timeline, multiport=True, extra={"routing": True},
    features=features, feature_names={"LUT": ["const", "ports"], "FF": ["const", "ports"]},
    default_coef={"LUT": {"const": 0, "ports": 3.5}, "FF": {"const": 0, "ports": 1}},
)

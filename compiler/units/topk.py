"""Top-k label selection (kind ``topk``, FINN's LabelSelect): the indices of the ``k`` largest of
each vector of ``C`` values, largest first.

Integer semantics, for every vector ``x`` of the last axis (``shape = (..., C)``; a classifier's
output is one vector, ``shape = (C,)``)::

    out = the k indices i with the largest x[i], in order of decreasing x[i];
          equal values: the lower index first                 (= np.argsort(-x, kind="stable")[:k])

Output shape ``(..., k)``, ``out_dtype`` the narrowest unsigned type that holds ``C - 1``. Any
input type (signed, unsigned, bipolar).

FINN's ``LabelSelect_Batch`` (finn-hlslib) inserts each value into a sorted list of ``k`` entries
with a strict ``>``, so it breaks ties the same way; but its entries start as (type minimum,
label 0), so a value equal to the input type's minimum is never inserted, and a vector with
fewer than ``k`` values above the minimum gets label 0 in the remaining places. Here every entry
starts empty (a valid flag), so every value counts: the result is always the stable argsort's.

Handshake and timing (:mod:`streamfold.hw.topk`): ``pe`` input elements per beat, ``F = C/pe``
beats per vector; one output index per beat, ``k`` per vector. An input register, then the
insertion of the beat's ``pe`` elements into the sorted list of ``k`` (value, index) entries (one
clock); the vector's last beat instead loads the list with it inserted into an output buffer of
``k`` indices and empties the list, so the next vector streams in at once. The last beat waits
in the input register while the buffer still holds the previous vector's indices (the buffer
frees in the cycle its last index leaves). Per vector ``v`` (no output back-pressure), with
``s_v`` the cycle the last beat leaves the input register::

    read of beat n+1  = max(avail, s_n)       (s_n = read_n + 1 but for a vector's last beat)
    s_v               = max(read of v's last beat + 1, s_{v-1} + k)
    output j of v     = s_v + 1 + j           (j = 0 .. k-1; latency 2 from the last read)

so at full rate a vector takes ``max(F, k)`` cycles (:func:`cycles`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..datatypes import DataType, StreamSpec
from ..resource_model import clog2
from ..schedule import BIG, chain, rchain, unbounded_tail
from .base import FoldError, Unit, UnitKind, divisors
from .fork import NO_MEMORY

#: the largest k the register list is built for
MAX_TOPK = 16


@dataclass
class TopKUnit(Unit):
    """Top-k label selection (module docstring). ``shape``: the frame, the vectors on the last axis."""

    kind: ClassVar[str] = "topk"
    name: str
    shape: tuple
    in_dtype: DataType
    k: int = 1
    pe: int = 1
    source: str = ""

    @property
    def channels(self) -> int:
        return int(self.shape[-1])

    @property
    def vectors(self) -> int:
        """Vectors per frame."""
        return int(math.prod(self.shape[:-1]))

    @property
    def out_dtype(self) -> DataType:
        return DataType.for_range(0, self.channels - 1)

    @property
    def in_stream(self) -> StreamSpec:
        return StreamSpec(tuple(self.shape), self.in_dtype, self.pe)

    @property
    def out_stream(self) -> StreamSpec:
        return StreamSpec(tuple(self.shape[:-1]) + (int(self.k),), self.out_dtype, 1)

    @property
    def beats_per_vector(self) -> int:
        return self.channels // self.pe

    def folding(self) -> dict:
        return {"pe": self.pe}

    def fold_choices(self) -> dict:
        return {"pe": divisors(self.channels)}

    def check_folding(self) -> None:
        if self.pe < 1 or self.channels % self.pe:
            raise FoldError(f"layer {self.name}: PE={self.pe} does not divide its {self.channels} "
                            f"values; pick one of {divisors(self.channels)}")
        if not 1 <= self.k <= min(self.channels, MAX_TOPK):
            raise FoldError(f"layer {self.name}: top-k needs 1 <= k <= min(C, {MAX_TOPK}) = "
                            f"{min(self.channels, MAX_TOPK)}, got k={self.k} for C={self.channels}")


def reference(u: TopKUnit, x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.int64)
    idx = np.broadcast_to(np.arange(u.channels, dtype=np.int64), x.shape)
    # lexsort: last key first; by decreasing value, then increasing index
    order = np.lexsort((idx, -x), axis=-1)
    return order[..., :u.k].astype(np.int64)


def cycles(u) -> int:
    """One beat per clock; a vector's ``k`` indices leave one per clock."""
    return u.vectors * max(u.beats_per_vector, u.k)


def _last_moves(u, avail, n_vec):
    """``(reads, s)``: every read, and per vector the cycle its last beat leaves the register."""
    f, k = u.beats_per_vector, u.k
    a = np.asarray(avail, dtype=np.int64).reshape(n_vec, f)
    i = np.arange(f, dtype=np.int64)
    free = i + np.maximum.accumulate(a - i, axis=1)  # reads of a vector without the start bound
    # s_v = max(free_last_v + 1, s_{v-1} + max(F, k)): the start bound of vector v is s_{v-1}
    s = chain(free[:, -1] + 1, np.arange(n_vec, dtype=np.int64) * max(f, k), start=-BIG)
    prev = np.concatenate(([-BIG], s[:-1]))
    reads = np.maximum(free, prev[:, None] + i[None, :])
    return reads.reshape(-1), s


def timeline(u, avail, frames):
    n_vec = frames * u.vectors
    reads, s = _last_moves(u, avail, n_vec)
    outs = (s[:, None] + 1 + np.arange(u.k, dtype=np.int64)[None, :]).reshape(-1)
    return reads, outs


def latest(u, dl, frames, earliest):
    """Each vector's last move by its outputs' deadlines and the next vector's (``max(F, k)``
    apart), the last read a cycle before it, reads one per clock; then the forward replay of
    those reads (a vector's first read waits for the previous last move)."""
    n_vec, f, k = frames * u.vectors, u.beats_per_vector, u.k
    bound = (np.asarray(dl, dtype=np.int64).reshape(n_vec, k)
             - 1 - np.arange(k, dtype=np.int64)[None, :]).min(axis=1)
    s = rchain(bound, np.arange(n_vec, dtype=np.int64) * max(f, k))
    late = np.full(n_vec * f, BIG, dtype=np.int64)
    late[f - 1::f] = np.where(s >= BIG // 2, BIG, s - 1)
    late = unbounded_tail(rchain(late), earliest)
    return _last_moves(u, np.maximum(late, earliest), n_vec)[0]


def features(u, family: str) -> dict:
    """Registers: the input register, the list of k (value, index, full) entries, the output
    buffer and its count (exact). Logic: ``pe*k`` comparators and insertion multiplexers (the
    ``pe - 1`` later insertions of a beat compare multiplexer outputs: ``chain``), the output
    shift, the counters."""
    pe, k, w, ob = u.pe, u.k, u.in_dtype.bits, u.out_dtype.bits
    ctr = clog2(u.channels) + clog2(k + 1)
    entry = w + ob + 1
    lut = {"const": 1, "cmp": pe * k * w, "mux": pe * k * entry, "chain": (pe - 1) * k * entry,
           "obuf": k * ob, "ctr": ctr}
    ff = {"const": 1, "x": pe * w, "list": k * entry, "obuf": k * ob, "ctr": ctr}
    return {"LUT": lut, "FF": ff, "exact": dict(NO_MEMORY), "memories": {}}


#: coefficients fitted (non-negative least squares, relative error) to Yosys 0.70 on the 12
#: configurations of ``TOPK_SWEEP`` in ``benchmarks/calibrate_resources.py`` (C 10..1000, 1..16-bit
#: inputs, k 1..16, pe 1..4; ECP5 LUTs mapped for area): the ``calibration.json`` entries of this
#: kind (LUT mean error 12% on both families, at most 19% on xc7 and 33% on ecp5; FF exact)
YOSYS_FIT = {
    "xc7": {"LUT": {"const": 0, "cmp": 0.44, "mux": 0.59, "chain": 0.78, "obuf": 3.06, "ctr": 0},
            "FF": {"const": 1, "x": 1, "list": 1, "obuf": 1, "ctr": 1}},
    "ecp5": {"LUT": {"const": 0, "cmp": 2.2, "mux": 0, "chain": 1.04, "obuf": 4.15, "ctr": 0},
             "FF": {"const": 1, "x": 1, "list": 1, "obuf": 1, "ctr": 1}},
}


KIND = UnitKind(
    name="topk", ir=TopKUnit, reference=reference, cycles=cycles,
    hardware="streamfold.hw.topk:TopKHW", timeline=timeline, latest=latest, features=features,
    feature_names={"LUT": ["const", "cmp", "mux", "chain", "obuf", "ctr"],
                   "FF": ["const", "x", "list", "obuf", "ctr"]},
    default_coef=YOSYS_FIT["xc7"],
)

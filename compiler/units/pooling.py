"""What the pooling kinds share (:mod:`.maxpool`, :mod:`.gsumpool`): one input beat per clock
through a chain of window reductions (:mod:`streamfold.hw.window_reduce`), partials in memories
or registers, and their schedule and resource features.

A pooling unit's IR dataclass gives ``reduce_stages()`` (``(n, k, s, inner)`` of each
WindowReduce1D stage: ``n`` positions, windows of ``k`` every ``s``, ``inner`` beats per
position) and ``partial_memories()``.
"""
from __future__ import annotations

import numpy as np

from ..resource_model import clog2, exact, mem_features, shapes_to_specs
from ..schedule import BIG, asap, rchain, unbounded_tail
from .base import FoldError, Unit, divisors

class ChannelFolded(Unit):
    """A pool's one knob: ``pe`` of its ``C = in_shape[2]`` channels per beat."""

    def folding(self) -> dict:
        return {"pe": self.pe}

    def fold_choices(self) -> dict:
        return {"pe": divisors(self.in_shape[2])}

    def check_folding(self) -> None:
        c = self.in_shape[2]
        if self.pe < 1 or c % self.pe:
            raise FoldError(f"layer {self.name}: PE={self.pe} does not divide its {c} channels; "
                            f"pick one of {divisors(c)}")


#: cycles from the input beat that closes a window to its output beat, per WindowReduce1D stage
POOL_STAGE_LATENCY = 2


def cycles(u) -> int:
    """One input beat per clock; the output (fewer beats) never stalls it."""
    h, w, c = u.in_shape
    return h * w * (c // u.pe)


def _closing(n: int, k: int, s: int, inner: int, nseq: int) -> np.ndarray:
    """Input beat indices that close the windows of a WindowReduce1D, in output order."""
    on = (n - k) // s + 1
    seq = n * inner
    idx = ((np.arange(on) * s + k - 1)[:, None] * inner + np.arange(inner)[None, :]).reshape(-1)
    return (np.arange(nseq)[:, None] * seq + idx[None, :]).reshape(-1)


def timeline(u, avail, frames):
    """Max-pool / global sum-pool: one input beat per clock, the output beat of a window
    ``POOL_STAGE_LATENCY`` per stage after the beat that closes it."""
    r = asap(avail)
    t = r
    for n, k, s, inner in u.reduce_stages():
        t = t[_closing(n, k, s, inner, t.size // (n * inner))] + POOL_STAGE_LATENCY
    return r, t


def latest(u, dl, frames, earliest):
    stages = u.reduce_stages()
    sizes = [earliest.size]
    for n, k, s, inner in stages:
        sizes.append(sizes[-1] // (n * inner) * ((n - k) // s + 1) * inner)
    for (n, k, s, inner), size in zip(reversed(stages), reversed(sizes[:-1])):
        late = np.full(size, BIG, dtype=np.int64)
        late[_closing(n, k, s, inner, size // (n * inner))] = dl - POOL_STAGE_LATENCY
        dl = late
    return unbounded_tail(rchain(dl), earliest)


def features(u, family: str) -> dict:
    """Max-pool / global sum-pool (:mod:`streamfold.hw.window_reduce`): partial banks in memory
    (read-modify-write) or registers, a max/add per lane, counters."""
    mems = shapes_to_specs(u.partial_memories(), "sdp")
    mem = mem_features(mems, family)
    h, w, c = u.in_shape
    ob = u.out_stream.beat_bits
    ctr = sum(clog2(n) for n in (h, w, max(1, c // max(1, u.pe)))) + sum(clog2(m.depth) for m in mems)
    lut = {"const": 1, "w": ob * max(1, len(mems)), "ctr": ctr, "ram": mem["ram_bits"],
           "lutmux": mem["lutram_mux"]}
    ff = {"const": 1, "w": ob, "regs": ob * (not mems), "ctr": ctr, "mem": mem["mem_reg"],
          "ram": mem["ram_bits"]}
    return {"LUT": lut, "FF": ff, "exact": exact(mem), "memories": mem["maps"]}


FEATURE_NAMES = {"LUT": ["const", "w", "ctr", "ram", "lutmux"], "FF": ["const", "w", "regs", "ctr", "mem", "ram"]}
DEFAULT_COEF = {"LUT": {"const": 10, "w": 1.5, "ctr": 3, "ram": 0.3, "lutmux": 1},
                "FF": {"const": 6, "w": 2, "regs": 1, "ctr": 2, "mem": 1, "ram": 1}}

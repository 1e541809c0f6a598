"""Max-plus building blocks of the beat-by-beat schedules (no unit kind in here).

A unit kind's schedule (:attr:`streamfold.compiler.units.base.UnitKind.timeline`) says, for input
beats available from cycles ``a_k``, when each is taken and when each output beat leaves; its
mirror (``latest``) gives the latest reads that still meet output deadlines. Both are built from
the recurrences below; :mod:`streamfold.compiler.fifo_sizing` composes them along the graph.
"""
from __future__ import annotations

import numpy as np

#: "no deadline" (beats no later output depends on: the tail of the simulated stream)
BIG = np.int64(1) << 60


def chain(earliest: np.ndarray, steps: np.ndarray | None = None, start: int = 0) -> np.ndarray:
    """Times ``t_k = max(t_{k-1} + (g_k - g_{k-1}), earliest_k)`` with ``t_0 - g_0 >= start``.

    ``steps`` (``g``, nondecreasing) defaults to ``k``: one event per cycle at most. Closed form:
    ``t = g + cummax(earliest - g)``.
    """
    e = np.asarray(earliest, dtype=np.int64)
    g = np.arange(e.size, dtype=np.int64) if steps is None else np.asarray(steps, dtype=np.int64)
    if e.size == 0:
        return e.copy()
    d = e - g
    d[0] = max(d[0], start)
    return g + np.maximum.accumulate(d)


def rchain(latest: np.ndarray, steps: np.ndarray | None = None) -> np.ndarray:
    """The mirror of :func:`chain`: the latest times ``t_k = min(t_{k+1} - (g_{k+1} - g_k),
    latest_k)``, i.e. ``t = g + reverse cummin(latest - g)``."""
    e = np.asarray(latest, dtype=np.int64)
    g = np.arange(e.size, dtype=np.int64) if steps is None else np.asarray(steps, dtype=np.int64)
    if e.size == 0:
        return e.copy()
    return g + np.minimum.accumulate((e - g)[::-1])[::-1]


def asap(avail: np.ndarray) -> np.ndarray:
    """One beat per clock, each as soon as it is available."""
    return chain(avail)


def unbounded_tail(t: np.ndarray, earliest: np.ndarray, steps: np.ndarray | None = None) -> np.ndarray:
    """Latest times whose suffix has no deadline (``>= BIG/2``) get that suffix as early as
    possible after the constrained part instead."""
    free = t >= BIG // 2
    if not free.any():
        return t
    i = int(np.argmax(free))
    g = np.arange(t.size, dtype=np.int64) if steps is None else np.asarray(steps, dtype=np.int64)
    start = int(t[i - 1]) - int(g[i - 1]) if i > 0 else 0
    t = t.copy()
    t[i:] = chain(earliest[i:], g[i:], start)
    return t


def generic_timeline(u, avail, frames):
    """Fallback: one input beat per clock, output beat ``j`` one cycle after the input beat that
    completes its share of the frame."""
    r = asap(avail)
    return r, chain(r[_generic_src(u, frames)] + 1)


def _generic_src(u, frames):
    ib, ob = u.in_stream.beats_per_frame, u.out_stream.beats_per_frame
    j = np.arange(frames * ob, dtype=np.int64)
    fr, jj = j // ob, j % ob
    return fr * ib + ((jj + 1) * ib + ob - 1) // ob - 1


def generic_latest(u, dl, frames, earliest):
    late = np.full(earliest.size, BIG, dtype=np.int64)
    np.minimum.at(late, _generic_src(u, frames), rchain(dl) - 1)
    return unbounded_tail(rchain(late), earliest)


def fixed_latency(latency: int):
    """``(timeline, latest)`` of a unit that takes one input beat per clock, as soon as it is
    available, and gives its output beat ``latency`` cycles later (elementwise kinds)."""

    def timeline(u, avail, frames):
        r = asap(avail)
        return r, r + latency

    def latest(u, dl, frames, earliest):
        return unbounded_tail(rchain(dl - latency), earliest)

    return timeline, latest

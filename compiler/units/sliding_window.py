"""The line-buffer sliding window (kind ``swg``): ``simd`` channels of one kernel position per beat.

Fields, window order and reference: :mod:`.window`. The generator (:mod:`streamfold.hw.sliding_window`)
keeps the input's pixels in a circular buffer of ``D`` pixels (:mod:`streamfold.compiler.memory`
gives ``D`` and the window bounds ``L``/``F``); window ``n`` is read out once pixel ``L(n)`` is in,
one beat per clock, and a pixel overwrites a slot only when no later window needs the old one.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..datatypes import StreamSpec
from ..memory import MemSpec, window_bounds, window_geometry
from ..resource_model import clog2, exact, mem_features, shapes_to_specs
from ..schedule import chain
from .base import UnitKind
from .window import WindowUnit, column_step, for_strip, reference

#: cycles from a read step to its output beat
SWG_LATENCY = 1


@dataclass
class SlidingWindowUnit(WindowUnit):
    """Line-buffer sliding window: ``simd`` divides ``C`` (see :mod:`.window`)."""

    kind: ClassVar[str] = "swg"

    @classmethod
    def fits(cls, unit) -> bool:
        return unit.depthwise or unit.simd != unit.window_elems

    @property
    def in_stream(self) -> StreamSpec:
        return StreamSpec(tuple(self.in_shape), self.dtype, self.simd)

    @property
    def out_stream(self) -> StreamSpec:
        oh, ow = self.out_hw
        kh, kw = self.kernel
        c = self.in_shape[2]
        if self.depthwise:
            return StreamSpec((oh, ow, c // self.simd, kh * kw, self.simd), self.dtype, self.simd)
        return StreamSpec((oh, ow, kh * kw * c), self.dtype, self.simd)


def cycles(u) -> int:
    """Exact at steady state: ``max(out_beats + fill, in_beats)`` with
    ``out_beats = OH*OW*kh*kw*C/simd``, ``in_beats = H*W*C/simd`` and
    ``fill = max(0, L0 + 1 - (F_last + D - H*W)) * C/simd``: while a frame's last window is read
    out, the buffer (``D`` pixels) can already take the next frame's pixels up to
    ``F_last + D - H*W``; the first window needs pixels up to ``L0``, the rest arrive at one word
    per clock with the output idle."""
    g = window_geometry(u)
    preload = g.last_first + g.buffer_pixels - g.hw
    fill = max(0, g.first_last + 1 - preload) * g.cf
    return max(g.out_beats + fill, g.in_beats)


def timeline(u, avail, frames, pace=1):
    """Window ``m``'s reads start at ``s_m = max(s_{m-1} + K*C/simd, W(Lg(m)) + 1)`` (``W(P)``:
    write of pixel ``P``'s last beat) and run one beat per clock (``pace`` with a splitter after
    it); a beat of pixel ``P`` is written at ``max(w_prev + 1, a, e_{m(P)-1} + 1)``, ``e`` a
    window's last read, ``m(P)`` the first window with ``Fg(m) + D > P`` (windows ``m`` counted
    on across frames, ``Lg``/``Fg`` their global ``L``/``F``, :mod:`streamfold.compiler.memory`).
    One vectorised recurrence per window."""
    sg = WindowFrames(u, frames)
    wb, n_in = sg.wb, sg.n_in
    idx = np.arange(n_in, dtype=np.int64)
    w = np.empty(n_in, dtype=np.int64)
    av = avail.tolist() if n_in < 4 * sg.n_win else None  # few beats per window: plain Python
    starts = []
    written, w_next, e_prev = 0, 0, -1  # beats written, earliest next write, end of last window
    for lim, need in zip(sg.lim.tolist(), sg.need.tolist()):
        if lim > written:  # the beats the buffer takes while the reader is on this window
            if av is not None:
                t = w_next
                for k in range(written, lim):
                    t = max(t, av[k], e_prev + 1)
                    w[k] = t
                    t += 1
                w_next = t
            else:
                d = np.maximum(avail[written:lim], e_prev + 1) - idx[written:lim]
                d[0] = max(d[0], w_next - written)
                np.maximum.accumulate(d, out=d)
                w[written:lim] = d + idx[written:lim]
                w_next = int(w[lim - 1]) + 1
            written = lim
        st = max(e_prev + pace, int(w[need]) + 1)
        starts.append(st)
        e_prev = st + (wb - 1) * pace  # the window's last read step
    if written < n_in:  # pixels no window of the last frame needs
        w[written:] = chain(np.maximum(avail[written:], e_prev + 1), idx[written:], w_next - written)
    return w, window_outs(np.array(starts, dtype=np.int64), wb, pace)


def window_outs(starts: np.ndarray, wb: int, pace: int = 1) -> np.ndarray:
    """Output beat times of windows whose reads start at ``starts`` (``wb`` beats, one every
    ``pace`` cycles)."""
    steps = np.arange(wb, dtype=np.int64) * pace + SWG_LATENCY
    return (starts[:, None] + steps[None, :]).reshape(-1)


def latest(u, dl, frames, earliest, pace=1):
    """Latest writes and window starts; the reader may wait between windows (its outputs are
    returned too: they are the latest, not the natural ones of the returned writes)."""
    sg = WindowFrames(u, frames)
    wb, n_in, nw = sg.wb, sg.n_in, sg.n_win
    w = np.empty(n_in, dtype=np.int64)
    span = (wb - 1) * pace  # first to last read step of a window
    bound = (dl.reshape(nw, wb) - np.arange(wb, dtype=np.int64)[None, :] * pace
             - SWG_LATENCY).min(axis=1)
    bound = bound.tolist()
    need, lim, frees = sg.need.tolist(), sg.lim.tolist(), sg.frees.tolist()
    starts = [0] * nw
    # the last window, then the beats no window needs (as early as possible after it)
    s_next = bound[-1]
    lo = need[-1] + 1
    if lo < n_in:
        w[lo:] = chain(np.maximum(earliest[lo:], s_next + span + 1),
                       np.arange(lo, n_in, dtype=np.int64), s_next - lo)
    ar = np.arange(n_in, dtype=np.int64)
    for m in range(nw - 1, -1, -1):
        st = bound[m]
        if m < nw - 1:
            st = min(st, s_next - span - pace)  # window m ends before window m+1 starts
            if frees[m] and lim[m] < n_in:  # ... and before the writes it makes room for
                st = min(st, int(w[lim[m]]) - 1 - span)
        hi = need[m]
        lo = need[m - 1] + 1 if m > 0 else 0
        if hi >= lo:  # the beats window m waits for, back to back before it starts
            top = st - 1 if hi + 1 >= n_in else min(st - 1, int(w[hi + 1]) - 1)
            w[lo:hi + 1] = ar[lo:hi + 1] + (top - hi)
        starts[m] = st
        s_next = st
    starts = np.array(starts, dtype=np.int64)
    if not schedule_ok(sg, w, starts, pace) or np.any(w < earliest):
        return timeline(u, earliest, frames, pace)  # (never seen) fall back to the earliest
    return w, window_outs(starts, wb, pace)


def schedule_ok(sg: "WindowFrames", w: np.ndarray, starts: np.ndarray, pace: int = 1) -> bool:
    """Whether writes ``w`` and window starts ``starts`` satisfy every constraint of the
    sliding-window hardware: one write per clock, a window starts after the write of the last
    pixel it needs and after the previous window's last beat, and a pixel is written only once
    the reader is past every window whose first pixel plus ``D`` does not exceed it."""
    ends = starts + (sg.wb - 1) * pace
    if np.any(np.diff(w) < 1) or np.any(starts[1:] < ends[:-1] + pace) or \
            np.any(starts <= w[sg.need]):
        return False
    m = np.searchsorted(sg.lim, np.arange(w.size), side="right")  # first window with lim > k
    prev = m - 1
    has = prev >= 0
    return bool(np.all(w[has] >= ends[prev[has]] + 1))


class WindowFrames:
    """Sliding-window bounds over ``frames`` frames, in beats of the input stream."""

    def __init__(self, u, frames: int):
        g = window_geometry(u)
        big_l, big_f = (a.reshape(-1).astype(np.int64) for a in window_bounds(u))
        nw = big_l.size
        off = (np.arange(frames, dtype=np.int64) * g.hw)[:, None]
        lg, fg = (off + big_l[None, :]).reshape(-1), (off + big_f[None, :]).reshape(-1)
        self.cf, self.wb = g.cf, g.k * g.cf
        self.n_in = frames * g.hw * g.cf
        self.n_win = frames * nw
        #: beats writable while the reader is on window m: pixels below Fg(m) + D
        self.lim = np.minimum((fg + g.buffer_pixels) * g.cf, self.n_in)
        #: last beat of pixel Lg(m), which window m waits for
        self.need = (lg + 1) * g.cf - 1
        #: window m's end frees buffer room (the next window starts at a later first pixel)
        self.frees = np.append(fg[1:] > fg[:-1], False)


def memories(u) -> list[MemSpec]:
    """The circular line buffer: ``D * C/simd`` words of ``simd`` elements."""
    g = window_geometry(u)
    return [MemSpec("line_buffer", g.buffer_words, u.simd * u.dtype.bits, "sdp")]


def features(u, family: str) -> dict:
    """One line-buffer memory (write and read on different addresses), pad multiplexer on the
    output beat, counters."""
    mems = shapes_to_specs(memories(u), "sdp")
    for m in mems:  # the hardware gives the buffer at least 2 words
        object.__setattr__(m, "depth", max(m.depth, 2))
    mem = mem_features(mems, family)
    h, w, c = u.in_shape
    kh, kw = u.kernel
    ob = u.out_stream.beat_bits
    ctr = sum(clog2(n) for n in (h, w, max(1, c // max(1, u.simd)), kh, kw)) + \
        2 * sum(clog2(m.depth) for m in mems)
    lut = {"const": 1, "pad": ob, "ctr": ctr, "ram": mem["ram_bits"], "lutmux": mem["lutram_mux"]}
    ff = {"const": 1, "out": ob, "ctr": ctr, "mem": mem["mem_reg"], "ram": mem["ram_bits"]}
    # the window bounds the writer and reader compare with, held in registers (``L``, ``F + D``:
    # :mod:`streamfold.hw.sliding_window`), counted apart from the calibrated counters
    g = window_geometry(u)
    fixed = {"FF": clog2(max(g.hw, 2)) + clog2(g.hw + g.buffer_pixels + 1)}
    return {"LUT": lut, "FF": ff, "fixed": fixed, "exact": exact(mem), "memories": mem["maps"]}


KIND = UnitKind(
    name="swg", ir=SlidingWindowUnit, reference=reference, cycles=cycles,
    hardware="streamfold.hw.sliding_window:SlidingWindowHW",
    timeline=timeline, latest=latest, paced=True, memories=memories, line_buffer=True,
    features=features, model_key="swg_buf",
    feature_names={"LUT": ["const", "pad", "ctr", "ram", "lutmux"], "FF": ["const", "out", "ctr", "mem", "ram"]},
    default_coef={"LUT": {"const": 20, "pad": 1.0, "ctr": 3.0, "ram": 0.3, "lutmux": 1.0},
                  "FF": {"const": 6, "out": 1, "ctr": 1.5, "mem": 1, "ram": 1}},
    column_step=column_step, for_strip=for_strip,
)

"""FIFO depths between units, from an analysis of every unit's burst pattern.

Why FIFOs matter
----------------
Every unit is as fast as the bottleneck (:func:`.cost.pipeline_cycles`) or faster, but most are
*bursty*: a matrix-vector unit with ``NF > 1`` neuron folds reads a whole input vector in ``SF``
cycles and then computes ``(NF - 1) * SF`` cycles without reading; a sliding window emits
``kh*kw`` windows' worth of beats per input pixel, cannot start a frame before ``kh - 1`` rows
are in, and stops its input while its line buffer is full; pools read evenly and emit in bursts.
With shallow FIFOs a burst meets a busy consumer, back-pressure spreads, and the pipeline runs
slower than its bottleneck.

Method
------
1. **Unit schedules** (:func:`unit_timeline`). For input beats available from cycles ``a_k``,
   the cycle each is taken (``r_k``) and the cycle each output beat leaves (``o_j``), output never
   back-pressured. They follow :mod:`streamfold.hw` cycle by cycle (checked against Amaranth's
   simulator, with random input gaps, in ``tests/test_fifo_sizing.py``):

   * ``mvau``: one ``(nf, sf)`` step per clock, input beat ``sf`` of vector ``v`` taken at step
     ``(v, 0, sf)``, no other step waits. With ``g_k = (k // SF)*NF*SF + k % SF`` the step index
     that takes beat ``k``, ``r_k = max(r_{k-1} + g_k - g_{k-1}, a_k)``, in closed form
     ``r = g + cummax(a - g)``; output beat ``(v, nf)`` at ``r[v*SF + SF-1] + nf*SF + 4``
     (:data:`MVAU_LATENCY`: LATENCY 3 of :mod:`streamfold.hw.mvau` plus the output register).
   * ``vvau``: one beat per clock, ``r = k + cummax(a - k)``; a channel group's output 4 cycles
     after its ``K``-th beat.
   * ``maxpool`` / ``gsumpool``: one beat per clock; a window's output 2 cycles per window-reduce
     stage after the beat that closes it.
   * ``swg`` (circular buffer of ``D`` pixels, :mod:`.memory`; windows ``m`` counted on across
     frames, ``Lg``/``Fg`` their global ``L``/``F``): window ``m``'s reads start at
     ``s_m = max(s_{m-1} + K*C/simd, W(Lg(m)) + 1)`` (``W(P)``: write of pixel ``P``'s last
     beat) and run one beat per clock; a beat of pixel ``P`` is written at
     ``max(w_prev + 1, a, e_{m(P)-1} + 1)``, ``e`` a window's last read, ``m(P)`` the first window
     with ``Fg(m) + D > P``. One vectorised recurrence per window. Whole-window mode: one scan
     step per clock (:func:`.memory.parallel_scan`), pixel-taking steps chained as the MVAU's.
   * width converters: output beat ``j`` one cycle after the input beat holding its last element,
     one per clock: ``o = j + cummax(c - j)``. A *splitter* (``a > b`` elements) takes a beat
     only every ``ceil(a/b)`` cycles; the unit before it is then modelled *paced*: an MVAU's
     neuron fold lasts ``max(SF, ceil(a/b))`` cycles, a window's beats (or whole windows) leave
     ``ceil(a/b)`` cycles apart (exact output times, reads never earlier than the hardware's).

   Unknown unit kinds fall back to "one input beat per clock, outputs in proportion".

2. **Latest schedules** (:func:`unit_latest`): the mirror image, for output deadlines, the latest
   reads (``t = g + reverse cummin(deadline - g)``), never earlier than the earliest ones. A
   sliding window may also wait between windows (its writer still respects the buffer).

3. **Pipeline schedules.** The source is paced at the pipeline's initiation interval ``II`` (the
   bottleneck's cycles per frame): beat ``j`` of frame ``f`` from ``f*II + j*II // beats``. Unit by
   unit, the producer's output times (through the width converter) are the FIFO's write times
   ``w_k``, the FIFO shows a beat ``FIFO_LATENCY`` (2) cycles later, and the consumer's schedule
   gives its reads ``r_k``: the *earliest* schedule, with unbounded FIFOs. Its period settles at
   ``II`` (a max-plus system whose slowest unit needs ``II``). Each unit may instead run in a
   *late* mode "for anchor ``b``": units ``b, b-1, ..``. (at most :data:`LATE_REACH` of them) as
   late as possible while unit ``b``'s outputs keep their earliest times. Being late empties
   FIFOs downstream of a unit and fills the ones upstream: buffering moves to narrower streams
   (e.g. pixels in front of a sliding window rather than its 9x wider windows, or a pool's
   input), and a window generator stops dumping its last rows of windows at a frame's end.

4. **Depth.** A beat written at ``w_k`` finds ``k - #{j : r_j < w_k}`` beats in the FIFO, which
   takes it without back-pressure when that count is below its depth
   (``amaranth.lib.fifo.SyncFIFOBuffered``: write ``k`` needs read ``k - depth`` done; the same
   for the depth-2 skid buffer), so a FIFO needs::

       peak = max_k ( k + 1 - #{j : r_j < w_k} )        (searchsorted, or a histogram)

   beats of its consumer's input stream; ``depth = max(MIN_DEPTH, peak + MARGIN)``, capped at one
   frame of the stream plus the margin and at :data:`MAX_DEPTH`. The mode of every unit (earliest,
   or late for an anchor) is chosen by dynamic programming along the chain to minimise the total
   FIFO bits ``sum(depth * beat width)``, over consistent pairs only (the producer's anchor, if
   any, is not after the consumer's, and every beat is written ``FIFO_LATENCY`` before it is
   read). Peaks are taken over all frames but the last (which has no successor), over
   ``DEFAULT_FRAMES`` frames, doubled until the last frame counted asks no more than the ones
   before.

Why this is enough: with every FIFO at least as deep as its peak, the chosen schedule is also a
schedule of the bounded pipeline (no write meets a full FIFO). The hardware is a max-plus system
of "as early as allowed" handshakes, never later than any of its feasible schedules, even with a
source that runs ahead (as the simulation harness's does). So each frame leaves no later than in
the analysed schedule, whose period is ``II``. The margin covers drift between the schedules and
the hardware (none is known: they agree cycle for cycle; latencies are taken at their largest,
e.g. ``FIFO_LATENCY`` 2 also for skid buffers, which only makes reads later and peaks larger).

The first FIFO (``fifo_depths[0]``) is fed by the source and the last drained by the sink, both
assumed to keep up: they stay at ``MIN_DEPTH`` (2: a skid buffer, no combinational ready path).

Limitations: paced schedules (splitters after a unit) are exact for the output but approximate,
on the late side, for the reads; splitters after vector-vector units and pools are not paced
(:attr:`FifoAnalysis.dwc_throttled` counts beats that would be held back). The analysis costs
about one second for CNV-sized pipelines (17 units, ~10^5 beats per stream per frame).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .ir import Pipeline

MIN_DEPTH = 2
#: beats added to every analysed peak (schedules vs hardware, see the module docstring)
MARGIN = 2
#: no FIFO deeper than this (beats), whatever the analysis says
MAX_DEPTH = 1 << 16
#: cycles from a FIFO's write to the cycle its consumer may take the beat (SyncFIFOBuffered: 2)
FIFO_LATENCY = 2
#: cycles from the step that ends a neuron fold to the output handshake (hw.mvau: LATENCY 3 + 1)
MVAU_LATENCY = 4
VVAU_LATENCY = 4
#: cycles from the input beat that closes a window to its output beat, per WindowReduce1D stage
POOL_STAGE_LATENCY = 2
#: cycles from a sliding-window read step to its output beat
SWG_LATENCY = 1
DEFAULT_FRAMES = 4
#: units upstream of its anchor that a late schedule reaches (see the module docstring)
LATE_REACH = 6
MAX_FRAMES = 24

_TIMELINES = {}
_LATEST = {}
#: "no deadline" (beats no later output depends on: the tail of the simulated stream)
BIG = np.int64(1) << 60


def timeline_of(kind: str):
    """Register ``fn(unit, avail, frames[, pace]) -> (read_times, out_times)`` for a unit kind
    (``pace`` only for the kinds in :data:`PACED`)."""
    def deco(fn):
        _TIMELINES[kind] = fn
        return fn
    return deco


def latest_of(kind: str):
    """Register ``fn(unit, out_deadlines, frames, earliest[, pace])`` for a unit kind: the latest
    read times, or ``(read_times, out_times)`` when the unit may also hold its outputs back."""
    def deco(fn):
        _LATEST[kind] = fn
        return fn
    return deco


# ----------------------------------------------------------------------------- max-plus helpers
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


def _unbounded_tail(t: np.ndarray, earliest: np.ndarray, steps: np.ndarray | None = None) -> np.ndarray:
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


# ----------------------------------------------------------------------------- unit timelines
@timeline_of("mvau")
def mvau_timeline(u, avail, frames, pace=1):
    nf_, sf_ = u.neuron_fold, u.synapse_fold
    fold = max(sf_, pace)  # a splitting width converter after it stretches every neuron fold
    g = _mvau_steps(u, avail.size, fold)
    r = chain(avail, g)
    last = r[sf_ - 1::sf_]  # step (v, 0, SF-1) of every vector
    out = last[:, None] + (np.arange(nf_, dtype=np.int64) * fold)[None, :] + MVAU_LATENCY
    return r, out.reshape(-1)


def _mvau_steps(u, n: int, fold: int) -> np.ndarray:
    """Step index of the step that takes input beat ``k`` (``(k // SF)*NF*F + k % SF``, with
    ``F = SF`` cycles per neuron fold unless paced)."""
    nf_, sf_ = u.neuron_fold, u.synapse_fold
    k = np.arange(n, dtype=np.int64)
    return (k // sf_) * (nf_ * fold) + k % sf_


@latest_of("mvau")
def mvau_latest(u, dl, frames, earliest, pace=1):
    nf_, sf_ = u.neuron_fold, u.synapse_fold
    fold = max(sf_, pace)
    n_in = earliest.size
    g = _mvau_steps(u, n_in, fold)
    bound = (dl.reshape(-1, nf_) - (np.arange(nf_, dtype=np.int64) * fold)[None, :]
             - MVAU_LATENCY).min(axis=1)
    late = np.full(n_in, BIG, dtype=np.int64)
    late[sf_ - 1::sf_] = bound
    return _unbounded_tail(rchain(late, g), earliest, g)


@timeline_of("vvau")
def vvau_timeline(u, avail, frames):
    r = asap(avail)
    return r, r[u.k - 1::u.k] + VVAU_LATENCY


@latest_of("vvau")
def vvau_latest(u, dl, frames, earliest):
    late = np.full(earliest.size, BIG, dtype=np.int64)
    late[u.k - 1::u.k] = dl - VVAU_LATENCY
    return _unbounded_tail(rchain(late), earliest)


def _closing(n: int, k: int, s: int, inner: int, nseq: int) -> np.ndarray:
    """Input beat indices that close the windows of a WindowReduce1D, in output order."""
    on = (n - k) // s + 1
    seq = n * inner
    idx = ((np.arange(on) * s + k - 1)[:, None] * inner + np.arange(inner)[None, :]).reshape(-1)
    return (np.arange(nseq)[:, None] * seq + idx[None, :]).reshape(-1)


def _pool_stages(u) -> list:
    """``(n, k, s, inner)`` of the WindowReduce1D stages of a pooling unit, in stream order."""
    if u.kind == "gsumpool":
        h, w, c = u.in_shape
        return [(h * w, h * w, h * w, c // u.pe)]
    h, w, c = u.in_shape
    cf = c // u.pe
    (kh, kw), (sh, sw) = u.kernel, u.stride
    _oh, ow = u.out_hw
    st = []
    if (kw, sw) != (1, 1):
        st.append((w, kw, sw, cf))
    if (kh, sh) != (1, 1):
        st.append((h, kh, sh, ow * cf))
    return st


def pool_timeline(u, avail, frames):
    """Max-pool / global sum-pool: one input beat per clock, the output beat of a window
    ``POOL_STAGE_LATENCY`` per stage after the beat that closes it."""
    r = asap(avail)
    t = r
    for n, k, s, inner in _pool_stages(u):
        t = t[_closing(n, k, s, inner, t.size // (n * inner))] + POOL_STAGE_LATENCY
    return r, t


def pool_latest(u, dl, frames, earliest):
    stages = _pool_stages(u)
    sizes = [earliest.size]
    for n, k, s, inner in stages:
        sizes.append(sizes[-1] // (n * inner) * ((n - k) // s + 1) * inner)
    for (n, k, s, inner), size in zip(reversed(stages), reversed(sizes[:-1])):
        late = np.full(size, BIG, dtype=np.int64)
        late[_closing(n, k, s, inner, size // (n * inner))] = dl - POOL_STAGE_LATENCY
        dl = late
    return _unbounded_tail(rchain(dl), earliest)


for _k in ("maxpool", "gsumpool"):
    timeline_of(_k)(pool_timeline)
    latest_of(_k)(pool_latest)


@timeline_of("swg")
def swg_timeline(u, avail, frames, pace=1):
    if getattr(u, "parallel", False):
        return _parallel_timeline(u, avail, frames, pace)
    sg = _SwgFrames(u, frames)
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
    return w, _swg_outs(np.array(starts, dtype=np.int64), wb, pace)


def _swg_outs(starts: np.ndarray, wb: int, pace: int = 1) -> np.ndarray:
    """Output beat times of windows whose reads start at ``starts`` (``wb`` beats, one every
    ``pace`` cycles)."""
    steps = np.arange(wb, dtype=np.int64) * pace + SWG_LATENCY
    return (starts[:, None] + steps[None, :]).reshape(-1)


@latest_of("swg")
def swg_latest(u, dl, frames, earliest, pace=1):
    """Latest writes and window starts; the reader may wait between windows (its outputs are
    returned too: they are the latest, not the natural ones of the returned writes)."""
    if getattr(u, "parallel", False):
        return _parallel_latest(u, dl, frames, earliest, pace)
    sg = _SwgFrames(u, frames)
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
    if not swg_schedule_ok(sg, w, starts, pace) or np.any(w < earliest):
        return swg_timeline(u, earliest, frames, pace)  # (never seen) fall back to the earliest
    return w, _swg_outs(starts, wb, pace)


def swg_schedule_ok(sg: "_SwgFrames", w: np.ndarray, starts: np.ndarray, pace: int = 1) -> bool:
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


def _parallel_steps(u, frames: int):
    """Whole-window generator (:mod:`streamfold.hw.parallel_window`), one scan step per clock
    (:func:`streamfold.compiler.memory.parallel_scan`): per frame ``n`` steps; global indices of
    the pixel-taking steps ``gt`` and of the window-emitting steps ``ge``; ``pre``: the steps
    before a frame's first pixel (top/left padding), which wait for that pixel to be offered."""
    from .memory import parallel_scan

    takes, emits = parallel_scan(u)
    n = takes.size
    off = (np.arange(frames, dtype=np.int64) * n)[:, None]
    gt = (off + np.flatnonzero(takes)[None, :]).reshape(-1)
    ge = (off + np.flatnonzero(emits)[None, :]).reshape(-1)
    pre = int(np.argmax(takes))  # steps before the first pixel of a frame
    return gt, ge, n, pre


def _parallel_timeline(u, avail, frames, pace=1):
    gt, ge, n, pre = _parallel_steps(u, frames)
    if pace > 1:
        return _parallel_paced(u, avail, frames, pace)
    hw = u.in_stream.beats_per_frame
    if pre:  # a frame's first step waits for its first pixel too
        gc = np.concatenate((gt, np.arange(frames, dtype=np.int64) * n))
        ec = np.concatenate((avail, avail[np.arange(frames) * hw]))
        order = np.argsort(gc, kind="stable")
        tc = chain(ec[order], gc[order])
        r = np.empty_like(avail)
        pos = np.empty(order.size, dtype=np.int64)
        pos[order] = np.arange(order.size)
        r[:] = tc[pos[:gt.size]]
        gs = gc[order]
    else:
        r = chain(avail, gt)
        tc, gs = r, gt
    # an emitting step runs (g - g_c) after the last waiting step g_c before it
    j = np.searchsorted(gs, ge, side="right") - 1
    jj = np.maximum(j, 0)
    base = np.where(j >= 0, tc[jj] - gs[jj], 0)
    return r, ge + np.maximum(base, 0) + SWG_LATENCY


def _parallel_paced(u, avail, frames, pace):
    """Whole-window generator whose windows a splitter takes one every ``pace`` cycles: an
    emitting step fires only once the previous window is taken (the output register is free or
    being read); window ``j`` is taken at ``A_j = max(t_j + 1, A_{j-1} + pace)``. One Python step
    per scan step (the recurrence is not a plain chain)."""
    from .memory import parallel_scan

    takes, emits = parallel_scan(u)
    takes, emits = takes.tolist(), emits.tolist()
    pre = takes.index(True)
    av = avail.tolist()
    hw = u.in_stream.beats_per_frame
    reads, outs = [], []
    t, taken, k = -1, -(1 << 62), 0
    for f in range(frames):
        first = av[f * hw]
        for s in range(len(takes)):
            e = t + 1
            if takes[s]:
                e = max(e, av[k])
            elif s < pre:
                e = max(e, first)
            if emits[s]:
                e = max(e, taken)
                taken = max(e + 1, taken + pace)
                outs.append(taken)
            if takes[s]:
                reads.append(e)
                k += 1
            t = e
    return np.array(reads, dtype=np.int64), np.array(outs, dtype=np.int64) + (SWG_LATENCY - 1)


def _can_wait(u, pace: int) -> bool:
    """Whether the analysis has a late schedule for the unit (not for a whole-window generator
    behind a splitter or with padding steps before a frame's first pixel)."""
    if u.kind == "swg" and getattr(u, "parallel", False):
        return pace == 1 and not _parallel_steps(u, 1)[3]
    return True


def _parallel_latest(u, dl, frames, earliest, pace=1):
    gt, ge, n, pre = _parallel_steps(u, frames)
    if pace > 1 or pre:  # no late schedule: keep the earliest
        avail = earliest.copy()
        hw = u.in_stream.beats_per_frame
        avail[::hw] -= pre  # a frame's first pixel was offered when its padding steps began
        return _parallel_timeline(u, avail, frames, pace)
    # latest step times: t_g <= min over emitting steps e >= g of (dl_e - latency - (e - g))
    lim = np.minimum.accumulate((dl - SWG_LATENCY - ge)[::-1])[::-1]
    j = np.searchsorted(ge, gt, side="left")
    late = np.where(j < ge.size, gt + lim[np.minimum(j, ge.size - 1)], BIG)
    return _unbounded_tail(rchain(late, gt), earliest, gt)


class _SwgFrames:
    """Sliding-window bounds over ``frames`` frames, in beats of the input stream."""

    def __init__(self, u, frames: int):
        from .memory import window_bounds, window_geometry

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
    return _unbounded_tail(rchain(late), earliest)


#: unit kinds whose schedule models a splitting width converter after them (``pace``)
PACED = ("mvau", "swg")


def unit_timeline(u, avail: np.ndarray, frames: int, pace: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """``(read_times, out_times)`` of ``frames`` frames through unit ``u`` whose input beats are
    available from ``avail`` (as soon as possible; output never back-pressured, except that a
    splitting width converter after it takes a beat only every ``pace`` cycles)."""
    fn = _TIMELINES.get(u.kind, generic_timeline)
    kw = {"pace": pace} if pace > 1 and u.kind in PACED else {}
    return fn(u, np.asarray(avail, dtype=np.int64), frames, **kw)


def unit_latest(u, out_deadlines: np.ndarray, frames: int, earliest: np.ndarray,
                pace: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Latest read times of unit ``u``'s input beats such that every output beat leaves by its
    deadline (``earliest``: the as-soon-as-possible reads, for beats no deadline reaches), and
    output times that go with them (the natural ones, or later where the unit can wait)."""
    fn = _LATEST.get(u.kind, generic_latest)
    kw = {"pace": pace} if pace > 1 and u.kind in PACED else {}
    res = fn(u, np.asarray(out_deadlines, dtype=np.int64), frames,
             np.asarray(earliest, dtype=np.int64), **kw)
    if isinstance(res, tuple):
        return res
    return res, unit_timeline(u, res, frames, pace)[1]


def splitter_pace(units, k: int) -> int:
    """Cycles per output beat of unit ``k`` that the width converter after it allows: ``ceil(a/b)``
    for ``a`` elements per beat split into ``b < a``, else 1."""
    if k + 1 >= len(units):
        return 1
    a, b = units[k].out_stream.fold, units[k + 1].in_stream.fold
    return -(-a // b) if a > b else 1


def _dwc_src(n_in: int, a: int, b: int) -> np.ndarray:
    j = np.arange(n_in * a // b, dtype=np.int64)
    return ((j + 1) * b - 1) // a


def dwc_timeline(out_times: np.ndarray, a: int, b: int) -> tuple[np.ndarray, int]:
    """Output times of a width converter from ``a`` to ``b`` elements per beat fed at
    ``out_times``, and how many input beats a splitter would have had to hold back."""
    if a == b:
        return out_times, 0
    o = chain(out_times[_dwc_src(out_times.size, a, b)] + 1)
    throttled = 0
    if a > b and a % b == 0 and out_times.size > 1:  # splitter: next input when the last piece leaves
        throttled = int(np.count_nonzero(np.diff(out_times) < a // b))
    return o, throttled


def dwc_latest(deadlines: np.ndarray, n_in: int, a: int, b: int) -> np.ndarray:
    """Latest times of a width converter's ``n_in`` input beats such that its output beats
    leave by ``deadlines``."""
    if a == b:
        return deadlines
    late = np.full(n_in, BIG, dtype=np.int64)
    np.minimum.at(late, _dwc_src(n_in, a, b), rchain(deadlines) - 1)
    return rchain(late)


def reads_before(r: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``#{j : r_j < w_k}`` for every ``k`` (``r`` and ``w`` nondecreasing)."""
    if r.size == 0:
        return np.zeros(w.size, dtype=np.int64)
    lo = int(min(r[0], w[0]))
    span = int(max(r[-1], w[-1])) - lo + 1
    if span <= 2 * (r.size + w.size):  # a histogram over time beats a binary search
        c = np.concatenate(([0], np.cumsum(np.bincount(r - lo, minlength=span))))
        return c[w - lo]
    return np.searchsorted(r, w, side="left")


def fifo_occupancy(w: np.ndarray, r: np.ndarray) -> np.ndarray:
    """For each write ``k``: beats in the FIFO once it lands, ``k + 1 - #{j : r_j < w_k}``."""
    return np.arange(1, w.size + 1, dtype=np.int64) - reads_before(r, w)


# ----------------------------------------------------------------------------- analysis
@dataclass
class FifoAnalysis:
    """Result of :func:`analyse_fifos` (lists have one entry per FIFO, ``len(units) + 1``, or
    per unit where said)."""

    ii: int  # cycles per frame the input was fed at (the bottleneck's, or a slower unit's)
    frames: int  # frames simulated
    modes: list  # per unit: "earliest" or "latest for <unit>" (see the module docstring)
    peaks: list  # analysed peak occupancy (beats; 0 for the source and sink FIFOs)
    depths: list  # chosen depths
    capped: list  # True where the cap cut the depth
    periods: list  # per unit: cycles between its last two output frames (earliest schedule)
    bits: int = 0  # total FIFO bits of ``depths``
    earliest_bits: int = 0  # total FIFO bits if every unit ran as early as possible
    dwc_throttled: list = field(default_factory=list)  # per unit: splitter hold-backs (see docs)
    frame_peaks: list = field(default_factory=list)  # per FIFO: peak per frame (last left out)
    cost_ii: int = 0  # the cost model's cycles per frame (:func:`.cost.pipeline_cycles`)
    #: the first unit whose schedule needs more than ``cost_ii`` cycles per frame (a width
    #: converter splitting its output), or None; ``ii`` is then the pipeline's real pace
    slow_unit: str | None = None


def _source(units, frames: int, ii: int) -> np.ndarray:
    nb0 = units[0].in_stream.beats_per_frame
    j = np.arange(frames * nb0, dtype=np.int64)
    return (j // nb0) * ii + (j % nb0) * ii // nb0  # evenly paced: one frame per II


class _Modes:
    """Schedules of every unit: earliest, and latest for each anchor within reach.

    ``reads[k][i]`` / ``outs[k][i]``: unit ``k``'s times in its mode ``i``; ``anchor[k][i]``: -1
    for the earliest mode, else the unit ``b >= k`` whose output times (earliest) the mode keeps.
    """

    def __init__(self, units, frames: int, ii: int, reach: int):
        n = len(units)
        self.units, self.frames = units, frames
        self.reads = [[] for _ in range(n)]
        self.outs = [[] for _ in range(n)]
        self.anchor = [[] for _ in range(n)]
        self.throttled = [0] * n
        self.pace = [splitter_pace(units, k) for k in range(n)]
        a = _source(units, frames, ii)
        for k, u in enumerate(units):
            if k > 0:
                w, self.throttled[k - 1] = self._dwc(k, self.outs[k - 1][0])
                a = w + FIFO_LATENCY
            r, o = unit_timeline(u, a, frames, self.pace[k])
            self._add(k, -1, r, o)
        for b in range(n):
            dl = self.outs[b][0]
            for k in range(b, max(-1, b - reach), -1):
                if not _can_wait(units[k], self.pace[k]):
                    break  # kept at its earliest schedule: so is everything upstream
                early = self.reads[k][0]
                r, o = unit_latest(units[k], dl, frames, early, self.pace[k])
                if r.shape != early.shape or np.any(r < early) or np.any(o > dl) or \
                        (k == b and not np.array_equal(o, self.outs[b][0])):
                    break
                if not self._add(k, b, r, o):
                    break  # the same as an earlier mode: so is everything upstream
                if k > 0:
                    dl = dwc_latest(r - FIFO_LATENCY, self.outs[k - 1][0].size,
                                    units[k - 1].out_stream.fold, units[k].in_stream.fold)

    def _dwc(self, k: int, outs: np.ndarray):
        return dwc_timeline(outs, self.units[k - 1].out_stream.fold, self.units[k].in_stream.fold)

    def _add(self, k: int, b: int, r, o) -> bool:
        for r0, o0 in zip(self.reads[k], self.outs[k]):
            if np.array_equal(r0, r) and np.array_equal(o0, o):
                return False
        self.reads[k].append(r)
        self.outs[k].append(o)
        self.anchor[k].append(b)
        return True

    def name(self, k: int, i: int) -> str:
        b = self.anchor[k][i]
        return "earliest" if b < 0 else f"latest for {self.units[b].name}"


def _choose(units, modes: _Modes) -> tuple[list, list]:
    """Modes of every unit minimising the FIFO bits (dynamic programme over the chain).

    Unit ``k-1`` in mode ``s`` may feed unit ``k`` in mode ``t`` when ``s`` is the earliest mode,
    or keeps unit ``k-1``'s own outputs (anchor ``k-1``), or has the same or an earlier anchor
    than ``t``, and every beat is written ``FIFO_LATENCY`` before it is read (checked)."""
    n = len(units)
    widths = [u.in_stream.beat_bits for u in units]
    best = [0] * len(modes.reads[0])
    back = [[None] * len(modes.reads[0])]
    occ_cache = {}
    for k in range(1, n):
        cap = max(MIN_DEPTH, min(MAX_DEPTH, units[k].in_stream.beats_per_frame + MARGIN))
        writes = {}
        n_counted = units[k].in_stream.beats_per_frame * (modes.frames - 1)
        nxt, bk = [], []
        for t, rt in enumerate(modes.reads[k]):
            at = modes.anchor[k][t]
            cand = None
            for s, os_ in enumerate(modes.outs[k - 1]):
                as_ = modes.anchor[k - 1][s]
                eff = -1 if as_ in (-1, k - 1) else as_
                if eff > at and at != -1 or (at == -1 and eff != -1):
                    continue
                if s not in writes:
                    writes[s] = modes._dwc(k, os_)[0]
                w = writes[s]
                if np.any(w + FIFO_LATENCY > rt):
                    continue
                key = (k, s, t)
                occ = fifo_occupancy(w[:n_counted], rt)  # the last frame has no successor
                occ_cache[key] = occ
                depth = min(max(MIN_DEPTH, int(occ.max()) + MARGIN), cap)
                c = best[s] + depth * widths[k]
                if cand is None or c < cand[0]:
                    cand = (c, s)
            nxt.append(float("inf") if cand is None else cand[0])
            bk.append(None if cand is None else cand[1])
        best = nxt
        back.append(bk)
    t = min(range(len(best)), key=lambda i: (best[i], i))
    choice = [t]
    for k in range(n - 1, 0, -1):
        t = back[k][t]
        choice.append(t)
    choice.reverse()
    occs = [None] + [occ_cache[(k, choice[k - 1], choice[k])] for k in range(1, n)] + [None]
    return choice, occs


def _result(units, ii, frames, modes: _Modes, choice, occs) -> FifoAnalysis:
    n = len(units)
    peaks, frame_peaks, depths, capped = [], [], [], []
    for k in range(n + 1):
        if k == 0 or k == n:
            peaks.append(0)
            frame_peaks.append([])
            depths.append(MIN_DEPTH)
            capped.append(False)
            continue
        per = occs[k].reshape(frames - 1, -1).max(axis=1)
        frame_peaks.append([int(v) for v in per])
        peaks.append(int(per.max()))
        want = max(MIN_DEPTH, peaks[-1] + MARGIN)
        cap = max(MIN_DEPTH, min(MAX_DEPTH, units[k].in_stream.beats_per_frame + MARGIN))
        depths.append(min(want, cap))
        capped.append(want > cap)
    periods = []
    for u, o in zip(units, modes.outs):
        ob = u.out_stream.beats_per_frame
        periods.append(int(o[0][-1] - o[0][-1 - ob]) if frames > 1 else None)
    widths = [u.in_stream.beat_bits for u in units] + [units[-1].out_stream.beat_bits]
    bits = sum(d * w for d, w in zip(depths, widths))
    early = [MIN_DEPTH]
    for k in range(1, n):
        w = modes._dwc(k, modes.outs[k - 1][0])[0]
        occ = fifo_occupancy(w, modes.reads[k][0]).reshape(frames, -1)[:-1]  # noqa: the last frame
        cap = max(MIN_DEPTH, min(MAX_DEPTH, units[k].in_stream.beats_per_frame + MARGIN))
        early.append(min(max(MIN_DEPTH, int(occ.max()) + MARGIN), cap))
    early.append(MIN_DEPTH)
    ebits = sum(d * w for d, w in zip(early, widths))
    return FifoAnalysis(ii, frames, [modes.name(k, i) for k, i in enumerate(choice)], peaks, depths,
                        capped, periods, bits, ebits, list(modes.throttled), frame_peaks)


def analyse_fifos(pipeline: Pipeline, frames: int | None = None, ii: int | None = None,
                  reach: int | None = None) -> FifoAnalysis:
    """Schedules of the pipeline with unbounded FIFOs, input fed at ``ii`` (default: the
    bottleneck's cycles per frame), and the depth every FIFO needs (see the module docstring).
    ``reach``: how many units upstream of its anchor a late schedule extends (default
    ``LATE_REACH``)."""
    from .cost import pipeline_cycles

    units = pipeline.units
    fixed_ii = ii is not None
    cost_ii = int(ii) if fixed_ii else pipeline_cycles(pipeline)[0]
    ii, reach = cost_ii, (LATE_REACH if reach is None else int(reach))
    nfr = int(frames or DEFAULT_FRAMES)
    first_periods = None
    for _ in range(8):
        modes = _Modes(units, nfr, ii, reach)
        choice, occs = _choose(units, modes)
        res = _result(units, ii, nfr, modes, choice, occs)
        if first_periods is None:
            first_periods = res.periods
        # a unit slower than the cost model says (a splitter after it): pace the source at its
        # rate instead, or the FIFOs in front of it would grow without bound
        slow = max((p for p in res.periods if p is not None), default=ii)
        if not fixed_ii and slow > ii:
            ii = slow
            continue
        # steady state: the last frame counted asks no more than the ones before
        converged = all(len(p) < 2 or p[-1] <= max(p[:-1]) for p in res.frame_peaks)
        if frames is not None or converged or nfr >= MAX_FRAMES:
            break
        nfr = min(MAX_FRAMES, nfr * 2)
    res.cost_ii = cost_ii
    res.slow_unit = next((u.name for u, p in zip(units, first_periods)
                          if p is not None and p > cost_ii), None)
    return res


def expected_pace(pipeline: Pipeline, analysis: FifoAnalysis | None = None) -> tuple[int, str]:
    """Cycles per frame the pipeline will run at, and what sets it: the cost model's bottleneck
    (:func:`.cost.pipeline_cycles`), unless the schedule analysis finds a unit held back by the
    width converter that splits its output (``"<unit> + width converter"``); that pace is what
    Verilator measures."""
    from .cost import pipeline_cycles

    cycles, bottleneck = pipeline_cycles(pipeline)
    a = analysis or analyse_fifos(pipeline)
    if a.ii > cycles and a.slow_unit is not None:
        return int(a.ii), f"{a.slow_unit} + width converter"
    return int(cycles), bottleneck


def size_fifos(pipeline: Pipeline) -> Pipeline:
    """The pipeline with every FIFO as deep as the analysis of its units' bursts asks."""
    return Pipeline(list(pipeline.units), analyse_fifos(pipeline).depths)


# ----------------------------------------------------------------------------- report
def fifo_width(pipeline: Pipeline, k: int) -> int:
    """Beat width (bits) of FIFO ``k``: unit ``k``'s input stream, or the output stream."""
    units = pipeline.units
    return (units[k].in_stream if k < len(units) else pipeline.out_stream).beat_bits


def fifo_report(pipeline: Pipeline, analysis: FifoAnalysis | None = None) -> list[dict]:
    """One row per FIFO of the pipeline as it stands (its ``fifo_depths``): name, consumer, depth
    (beats), width and storage bits (``depth * width``: memory words plus output register), and
    the implementation (:mod:`streamfold.hw.fifo`). With an ``analysis`` (:func:`analyse_fifos`)
    the analysed peak occupancy, whether the cap cut it, and the schedule its consumer was
    analysed in join each row. Total: ``sum(row["bits"])`` (:func:`fifo_bits`)."""
    units = pipeline.units
    rows = []
    for k, depth in enumerate(pipeline.fifo_depths):
        width = fifo_width(pipeline, k)
        depth = int(depth)
        impl = {0: "wire", 1: "register", 2: "skid buffer"}.get(depth, "fifo")
        row = {"name": f"fifo{k}", "feeds": units[k].name if k < len(units) else "output",
               "depth": depth, "width": width, "bits": depth * width, "impl": impl}
        if analysis is not None:
            row["peak"] = int(analysis.peaks[k])
            row["capped"] = bool(analysis.capped[k])
            if k < len(units):
                row["consumer_schedule"] = analysis.modes[k]
        rows.append(row)
    return rows


def fifo_bits(pipeline: Pipeline) -> int:
    """Total FIFO storage of the pipeline in bits."""
    return sum(r["bits"] for r in fifo_report(pipeline))

"""FIFO depths between units, from an analysis of every unit's burst pattern.

Why FIFOs matter
----------------
Every unit is faster than, or as fast as, the bottleneck (:func:`.cost.pipeline_cycles`), but
most are *bursty*: a matrix-vector unit with ``NF > 1`` neuron folds reads a whole input vector in
``SF`` cycles and then computes ``(NF - 1) * SF`` cycles without reading; a sliding window emits
``kh*kw`` windows' worth of beats per input pixel and stalls its input while its line buffer is
full; pools read evenly and emit in bursts. With shallow FIFOs a producer's burst meets a busy
consumer, back-pressure propagates, and the pipeline runs slower than its bottleneck.

Method
------
1. **Schedules.** For each unit kind a *timeline* function gives, for a sequence of input beats
   with known availability times ``a_k`` (the cycle from which beat ``k`` can be taken), the
   cycle in which the unit takes each input beat (``r_k``) and the cycle in which each output beat
   leaves (``o_j``), with its output never back-pressured. The schedules follow the hardware
   (:mod:`streamfold.hw`) cycle by cycle:

   * ``mvau``: one ``(nf, sf)`` step per clock; input beat ``sf`` of vector ``v`` is taken at
     step ``(v, 0, sf)``, no other step waits. With step index ``g_k = (k // SF)*NF*SF + k % SF``
     of the step taking beat ``k``, ``r_k = max(r_{k-1} + g_k - g_{k-1}, a_k)``, which is
     ``r = g + cummax(a - g)``. Output beat ``(v, nf)`` leaves ``MVAU_LATENCY`` cycles after
     step ``(v, nf, SF-1)``, i.e. at ``r[v*SF + SF-1] + nf*SF + MVAU_LATENCY``.
   * ``vvau``: one input beat per clock, ``r = k + cummax(a - k)``; the output beat of a channel
     group leaves ``VVAU_LATENCY`` after its ``K``-th input beat.
   * ``maxpool`` / ``gsumpool``: one input beat per clock; the output beat of a window leaves
     ``POOL_STAGE_LATENCY`` per window-reduce stage after the input beat that closes the window.
   * ``swg``: writer and reader of the circular buffer of ``D`` pixels (see
     :mod:`.memory`): window ``m`` (frames counted on, ``Lg``/``Fg`` its global ``L``/``F``)
     starts at ``s_m = max(e_{m-1} + 1, W(Lg(m)) + 1)`` (``W(P)``: write cycle of pixel ``P``'s
     last beat), emits ``K*C/simd`` beats in consecutive cycles and ends at ``e_m``; a beat of
     pixel ``P`` is written at ``max(w_prev + 1, a, e_{m(P)-1} + 1)`` where ``m(P)`` is the first
     window with ``Fg(m) + D > P``. One vectorised recurrence per window.
   * width converters: output beat ``j`` leaves one cycle after the input beat holding its last
     element, at most one per cycle: ``o = j + cummax(c - j)``.

   Unknown unit kinds fall back to "one input beat per clock, outputs in proportion".

2. **Timeline of the whole pipeline** with unbounded FIFOs: frame ``f`` is available to the first
   unit from cycle ``f * II`` (``II``: the bottleneck's cycles per frame), the source being as fast
   as the first unit wants within that budget. Unit by unit in stream order, the producer's
   output times (through the width converter, if any) are the FIFO's write times ``w_k``; the FIFO
   shows a beat ``FIFO_LATENCY`` cycles after its write, ``a_k = w_k + FIFO_LATENCY``; the
   consumer's timeline gives its read times ``r_k``. Every step is a NumPy max-plus recurrence (a
   cumulative maximum), the sliding window one per window.

3. **Depth.** A beat written at ``w_k`` finds ``k - #{j : r_j < w_k}`` beats in the FIFO; the FIFO
   (``amaranth.lib.fifo.SyncFIFOBuffered`` or the depth-2 skid buffer of :mod:`streamfold.hw.fifo`)
   takes it without back-pressure when that count is below its depth, so the FIFO needs::

       peak = max_k ( k + 1 - #{j : r_j < w_k} )        (searchsorted over the read times)

   beats of the consumer's input stream, and ``depth = max(MIN_DEPTH, peak + MARGIN)``, capped at
   ``MAX_DEPTH`` and at one frame of the stream plus the margin. The run goes over enough frames
   for steady state: it starts with ``DEFAULT_FRAMES`` and doubles until the last frame's peak of
   every FIFO equals the frame before.

Why this is enough: with every FIFO at least as deep as its peak, the unbounded schedule is also
a schedule of the bounded pipeline (no write ever meets a full FIFO), and a hardware pipeline of
"as early as allowed" handshakes (a max-plus system) is never later than any of its feasible
schedules, even with a source that runs ahead. So each frame leaves no later than in the analysed
schedule, whose period is ``II``. The margin covers the few cycles by which a schedule may differ
from the hardware (latencies are taken at their largest, e.g. ``FIFO_LATENCY`` 2 also for skid
buffers, which only makes reads later and the peak larger).

The first FIFO (``fifo_depths[0]``) is fed by the source and the last one drained by the sink,
both assumed to keep up: they stay at ``MIN_DEPTH`` (2: a skid buffer, which also breaks the
combinational ready path).

Limitation: a width converter that *splits* (``a`` elements per input beat into ``b | a``) takes
its next input beat only when the last piece of the previous one leaves; a producer emitting
faster than one beat per ``a/b`` cycles is then stalled, which the analysis does not model (it
counts such beats in :attr:`FifoAnalysis.dwc_throttled`).
"""
from __future__ import annotations

import math
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
MAX_FRAMES = 24

_TIMELINES = {}
_LATEST = {}
#: "no deadline" (beats no later output depends on: the tail of the simulated stream)
BIG = np.int64(1) << 60


def timeline_of(kind: str):
    """Register ``fn(unit, avail, frames) -> (read_times, out_times)`` for a unit kind."""
    def deco(fn):
        _TIMELINES[kind] = fn
        return fn
    return deco


def latest_of(kind: str):
    """Register ``fn(unit, out_deadlines, frames) -> latest read times`` for a unit kind."""
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
def mvau_timeline(u, avail, frames):
    nf_, sf_ = u.neuron_fold, u.synapse_fold
    g = _mvau_steps(u, avail.size)
    r = chain(avail, g)
    last = r[sf_ - 1::sf_]  # step (v, 0, SF-1) of every vector
    out = last[:, None] + (np.arange(nf_, dtype=np.int64) * sf_)[None, :] + MVAU_LATENCY
    return r, out.reshape(-1)


def _mvau_steps(u, n: int) -> np.ndarray:
    """Step index of the step that takes input beat ``k`` (``(k // SF)*NF*SF + k % SF``)."""
    nf_, sf_ = u.neuron_fold, u.synapse_fold
    k = np.arange(n, dtype=np.int64)
    return (k // sf_) * (nf_ * sf_) + k % sf_


@latest_of("mvau")
def mvau_latest(u, dl, frames, earliest):
    nf_, sf_ = u.neuron_fold, u.synapse_fold
    n_in = earliest.size
    g = _mvau_steps(u, n_in)
    bound = (dl.reshape(-1, nf_) - (np.arange(nf_, dtype=np.int64) * sf_)[None, :]
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
def swg_timeline(u, avail, frames):
    sg = _SwgFrames(u, frames)
    cf, wb, n_in = sg.cf, sg.wb, sg.n_in
    w = np.empty(n_in, dtype=np.int64)
    out = np.empty(sg.n_win * wb, dtype=np.int64)
    ar = np.arange(wb, dtype=np.int64) + SWG_LATENCY
    written, w_next, e_prev = 0, 0, -1  # beats written, earliest next write, end of last window
    for m in range(sg.n_win):
        hi = int(sg.lim[m])
        if hi > written:  # the beats the buffer can take while the reader is on window m
            w[written:hi] = chain(np.maximum(avail[written:hi], e_prev + 1),
                                  np.arange(written, hi, dtype=np.int64), w_next - written)
            written, w_next = hi, int(w[hi - 1]) + 1
        s = max(e_prev + 1, int(w[sg.need[m]]) + 1)
        out[m * wb:(m + 1) * wb] = s + ar
        e_prev = s + wb - 1
    if written < n_in:  # pixels no window of the last frame needs
        w[written:] = chain(np.maximum(avail[written:], e_prev + 1),
                            np.arange(written, n_in, dtype=np.int64), w_next - written)
    return w, out


@latest_of("swg")
def swg_latest(u, dl, frames, earliest):
    sg = _SwgFrames(u, frames)
    wb, n_in, nw = sg.wb, sg.n_in, sg.n_win
    w = np.empty(n_in, dtype=np.int64)
    bound = (dl.reshape(nw, wb) - np.arange(wb, dtype=np.int64)[None, :] - SWG_LATENCY).min(axis=1)
    # the last window, then the beats no window needs (as early as possible after it)
    s_next = int(bound[-1])
    lo = int(sg.need[-1]) + 1
    if lo < n_in:
        w[lo:] = chain(np.maximum(earliest[lo:], s_next + wb), np.arange(lo, n_in, dtype=np.int64),
                       s_next - lo)
    for m in range(nw - 1, -1, -1):
        s = int(bound[m])
        if m < nw - 1:
            s = min(s, s_next - wb)  # window m ends before window m+1 starts
            if sg.frees[m] and sg.lim[m] < n_in:  # ... and before the writes it makes room for
                s = min(s, int(w[sg.lim[m]]) - wb)
        hi = int(sg.need[m])
        lo = int(sg.need[m - 1]) + 1 if m > 0 else 0
        if hi >= lo:
            top = s - 1 if hi + 1 >= n_in else min(s - 1, int(w[hi + 1]) - 1)
            w[lo:hi + 1] = top - (hi - np.arange(lo, hi + 1, dtype=np.int64))
        s_next = s
    return w


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


def unit_timeline(u, avail: np.ndarray, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """``(read_times, out_times)`` of ``frames`` frames through unit ``u`` whose input beats are
    available from ``avail`` (as soon as possible; output never back-pressured)."""
    fn = _TIMELINES.get(u.kind, generic_timeline)
    return fn(u, np.asarray(avail, dtype=np.int64), frames)


def unit_latest(u, out_deadlines: np.ndarray, frames: int, earliest: np.ndarray) -> np.ndarray:
    """Latest read times of unit ``u``'s input beats such that every output beat leaves by its
    deadline (``earliest``: the as-soon-as-possible reads, for beats no deadline reaches)."""
    fn = _LATEST.get(u.kind, generic_latest)
    return fn(u, np.asarray(out_deadlines, dtype=np.int64), frames, np.asarray(earliest, dtype=np.int64))


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


def fifo_peak(w: np.ndarray, r: np.ndarray) -> np.ndarray:
    """For each write ``k``: beats in the FIFO once it lands, ``k + 1 - #{j : r_j < w_k}``."""
    k = np.arange(w.size, dtype=np.int64)
    return k + 1 - np.searchsorted(r, w, side="left")


# ----------------------------------------------------------------------------- analysis
@dataclass
class Schedule:
    """Beat times of every stream of a pipeline (one entry per unit)."""

    reads: list  # cycle each unit takes each input beat
    outs: list  # cycle each unit's output beat leaves
    writes: list  # cycle each FIFO (1..n-1) takes each beat (after the width converter)
    throttled: list


@dataclass
class FifoAnalysis:
    """Result of :func:`analyse_fifos` (lists have one entry per FIFO, ``len(units) + 1``)."""

    ii: int  # cycles per frame the input was fed at (the bottleneck's)
    frames: int  # frames simulated
    schedule: str  # the schedule the depths come from ("earliest", "latest to <unit>")
    peaks: list  # analysed peak occupancy (beats; 0 for the source and sink FIFOs)
    depths: list  # chosen depths
    capped: list  # True where the cap cut the depth
    periods: list  # per unit: cycles between its last two output frames (earliest schedule)
    dwc_throttled: list = field(default_factory=list)  # per unit: splitter hold-backs (see docs)
    frame_peaks: list = field(default_factory=list)  # per FIFO: peak per frame
    other_peaks: list = field(default_factory=list)  # peaks of the schedule not chosen


def _earliest(units, frames: int, ii: int) -> Schedule:
    nb0 = units[0].in_stream.beats_per_frame
    j = np.arange(frames * nb0, dtype=np.int64)
    avail = (j // nb0) * ii + (j % nb0) * ii // nb0  # the source, evenly paced at II per frame
    reads, outs, writes, thr = [], [], [None], []
    for k, u in enumerate(units):
        if k == 0:
            a = avail
        else:
            w, t = dwc_timeline(outs[-1], units[k - 1].out_stream.fold, u.in_stream.fold)
            writes.append(w)
            thr.append(t)
            a = w + FIFO_LATENCY
        r, o = unit_timeline(u, a, frames)
        reads.append(r)
        outs.append(o)
    thr.append(0)
    return Schedule(reads, outs, writes, thr)


def _latest(units, frames: int, early: Schedule, upto: int) -> Schedule | None:
    """Units ``0..upto`` as late as possible such that unit ``upto``'s output beats leave when
    they do in ``early``; the units after it as in ``early``. ``None`` if the schedule could not
    be made consistent."""
    late_reads = [None] * (upto + 1)
    dl = early.outs[upto]
    for k in range(upto, -1, -1):
        r = unit_latest(units[k], dl, frames, early.reads[k])
        if r.shape != early.reads[k].shape or np.any(r < early.reads[k]):
            return None
        late_reads[k] = r
        if k > 0:
            dl = dwc_latest(r - FIFO_LATENCY, early.outs[k - 1].size,
                            units[k - 1].out_stream.fold, units[k].in_stream.fold)
    reads, outs, writes, thr = [], [], [None], []
    for k in range(upto + 1):
        u = units[k]
        if k > 0:
            w, t = dwc_timeline(outs[-1], units[k - 1].out_stream.fold, u.in_stream.fold)
            if np.any(w + FIFO_LATENCY > late_reads[k]):
                return None
            writes.append(w)
            thr.append(t)
        r, o = unit_timeline(u, late_reads[k], frames)
        if not np.array_equal(r, late_reads[k]):
            return None
        reads.append(r)
        outs.append(o)
    if not np.array_equal(outs[-1], early.outs[upto]):
        return None
    reads += early.reads[upto + 1:]
    outs += early.outs[upto + 1:]
    writes += early.writes[upto + 1:]
    thr += early.throttled[upto:]
    return Schedule(reads, outs, writes, thr)


def _peaks(sched: Schedule, frames: int) -> list:
    """Per FIFO: peak occupancy per frame, the last frame left out (it has no successor: a
    schedule as late as possible is not periodic there); empty for the source and sink FIFOs."""
    n = len(sched.reads)
    out = [[]]
    for k in range(1, n):
        occ = fifo_peak(sched.writes[k], sched.reads[k])
        out.append([int(v) for v in occ.reshape(frames, -1).max(axis=1)[:-1]])
    out.append([])
    return out


def _depths(units, peaks: list) -> tuple[list, list]:
    n = len(units)
    depths, capped = [], []
    for k, p in enumerate(peaks):
        if k == 0 or k == n:
            depths.append(MIN_DEPTH)
            capped.append(False)
            continue
        want = max(MIN_DEPTH, p + MARGIN)
        cap = max(MIN_DEPTH, min(MAX_DEPTH, units[k].in_stream.beats_per_frame + MARGIN))
        depths.append(min(want, cap))
        capped.append(want > cap)
    return depths, capped


def _fifo_bits(units, depths) -> int:
    widths = [u.in_stream.beat_bits for u in units] + [units[-1].out_stream.beat_bits]
    return sum(d * w for d, w in zip(depths, widths))


def analyse_fifos(pipeline: Pipeline, frames: int | None = None, ii: int | None = None) -> FifoAnalysis:
    """Timelines of the pipeline with unbounded FIFOs, input fed at ``ii`` (default: the
    bottleneck's cycles per frame), and the depth every FIFO needs (see the module docstring)."""
    from .cost import pipeline_cycles, unit_cycles

    units = pipeline.units
    if ii is None:
        ii, _ = pipeline_cycles(pipeline)
    ii = int(ii)
    # candidate schedules: every unit as early as possible, or the units up to a bottleneck (or
    # up to the last unit) as late as the bottleneck's schedule allows
    cyc = [unit_cycles(u) for u in units]
    split_points = sorted({k for k, c in enumerate(cyc) if c == max(cyc)} | {len(units) - 1})
    nfr = int(frames or DEFAULT_FRAMES)
    while True:
        early = _earliest(units, nfr, ii)
        cands = [("earliest", early)]
        for b in split_points:
            late = _latest(units, nfr, early, b)
            if late is not None:
                cands.append((f"latest to {units[b].name}", late))
        results = []
        for name, sched in cands:
            fp = _peaks(sched, nfr)
            peaks = [max(p) if p else 0 for p in fp]
            depths, capped = _depths(units, peaks)
            results.append((_fifo_bits(units, depths), name, sched, fp, peaks, depths, capped))
        # steady state: the last frame counted asks no more than the ones before
        converged = all(len(p) < 2 or p[-1] <= max(p[:-1]) for r in results for p in r[3])
        if frames is not None or converged or nfr >= MAX_FRAMES:
            break
        nfr = min(MAX_FRAMES, nfr * 2)
    results.sort(key=lambda r: r[0])  # fewest bits; the earliest schedule first at a tie
    _, name, sched, fp, peaks, depths, capped = results[0]
    periods = []
    for u, o in zip(units, early.outs):
        ob = u.out_stream.beats_per_frame
        periods.append(int(o[-1] - o[-1 - ob]) if nfr > 1 else None)
    other = results[1][4] if len(results) > 1 else []
    return FifoAnalysis(ii, nfr, name, peaks, depths, capped, periods, sched.throttled, fp, other)


def size_fifos(pipeline: Pipeline) -> Pipeline:
    """The pipeline with every FIFO as deep as the analysis of its units' bursts asks."""
    a = analyse_fifos(pipeline)
    return Pipeline(list(pipeline.units), a.depths)


# ----------------------------------------------------------------------------- report
def fifo_width(pipeline: Pipeline, k: int) -> int:
    """Beat width (bits) of FIFO ``k``: unit ``k``'s input stream, or the output stream."""
    units = pipeline.units
    return (units[k].in_stream if k < len(units) else pipeline.out_stream).beat_bits


def fifo_report(pipeline: Pipeline, analysis: FifoAnalysis | None = None) -> list[dict]:
    """One row per FIFO of the pipeline as it stands (its ``fifo_depths``): name, consumer, depth
    (beats), width and storage bits (``depth * width``: memory words plus output register), and
    the implementation (:mod:`streamfold.hw.fifo`). With an ``analysis`` (:func:`analyse_fifos`)
    the analysed peak occupancy joins each row. Total: ``sum(row["bits"])``."""
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
        rows.append(row)
    return rows


def fifo_bits(pipeline: Pipeline) -> int:
    """Total FIFO storage of the pipeline in bits."""
    return sum(r["bits"] for r in fifo_report(pipeline))

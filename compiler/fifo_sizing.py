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

Branches
--------
A graph with forks and joins (:func:`analyse_graph_fifos`) is analysed the same way, edge by edge
in topological order. A fork takes beat ``k`` once, and every output port gets it that cycle
(its ``timeline`` gives the same times on every port); an add takes beat ``k`` of both inputs in
one cycle, when the later of the two has arrived; a concat takes its inputs' beats in output
order. With unbounded FIFOs the short path of a reconvergent pair simply waits in its FIFO until
the long path's beat reaches the join, so the *skip FIFO's* peak is what the long path holds in
flight: its line buffers, window latency and folding bursts, which can exceed one frame (a global
pool on the long path); a graph's FIFOs are therefore capped only by :data:`MAX_DEPTH`, not at a
frame. Late schedules: every unit also gets its latest schedule (from the graph's output back,
through forks as the earliest of their ports' deadlines), and the units in late mode form a
suffix of the topological order, chosen to minimise the FIFO bits; a suffix is closed downstream,
so every edge still has its beat written ``FIFO_LATENCY`` before it is read.

Why a graph sized this way cannot deadlock: every unit, FIFO, fork and join is a monotone
max-plus element (a beat moves at the earliest cycle its inputs, its own state and the space
downstream allow), so the hardware's handshake times are the *least* schedule satisfying all of
them. The analysed schedule satisfies the units' and joins' constraints by construction and, with
every FIFO at least its analysed peak deep, never writes into a full FIFO: it is a schedule of
the bounded design. The hardware is therefore never later than it, beat for beat, and every
frame leaves within the analysed time, at the analysed pace. A FIFO shallower than its peak
breaks that: on a reconvergent pair the fork stops at the full skip FIFO while the join waits
for the long path, which waits for the fork, a cycle of waits, i.e. a deadlock
(``tests/test_graph_flow.py`` halves a skip FIFO and reads the stall report that names it).

Limitations: paced schedules (splitters after a unit) are exact for the output but approximate,
on the late side, for the reads; splitters after vector-vector units and pools are not paced
(:attr:`FifoAnalysis.dwc_throttled` counts beats that would be held back). The analysis costs
about one second for CNV-sized pipelines (17 units, ~10^5 beats per stream per frame).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import topology
from .cost import pipeline_cycles
from .schedule import BIG, chain, generic_latest, generic_timeline, rchain
from .units import kind_of

MIN_DEPTH = 2
#: beats added to every analysed peak (schedules vs hardware, see the module docstring)
MARGIN = 2
#: no FIFO deeper than this (beats), whatever the analysis says
MAX_DEPTH = 1 << 16
#: cycles from a FIFO's write to the cycle its consumer may take the beat (SyncFIFOBuffered: 2)
FIFO_LATENCY = 2
DEFAULT_FRAMES = 4
#: units upstream of its anchor that a late schedule reaches (see the module docstring)
LATE_REACH = 6
MAX_FRAMES = 24

def unit_timeline(u, avail: np.ndarray, frames: int, pace: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """``(read_times, out_times)`` of ``frames`` frames through unit ``u`` whose input beats are
    available from ``avail`` (as soon as possible; output never back-pressured, except that a
    splitting width converter after it takes a beat only every ``pace`` cycles)."""
    k = kind_of(u)
    fn = k.timeline or generic_timeline
    kw = {"pace": pace} if pace > 1 and k.paced else {}
    return fn(u, np.asarray(avail, dtype=np.int64), frames, **kw)


def unit_latest(u, out_deadlines: np.ndarray, frames: int, earliest: np.ndarray,
                pace: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Latest read times of unit ``u``'s input beats such that every output beat leaves by its
    deadline (``earliest``: the as-soon-as-possible reads, for beats no deadline reaches), and
    output times that go with them (the natural ones, or later where the unit can wait)."""
    k = kind_of(u)
    fn = k.latest or generic_latest
    kw = {"pace": pace} if pace > 1 and k.paced else {}
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
                if not kind_of(units[k]).can_wait(units[k], self.pace[k]):
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


def analyse_fifos(pipeline, frames: int | None = None, ii: int | None = None,
                  reach: int | None = None) -> FifoAnalysis:
    """Schedules of the pipeline with unbounded FIFOs, input fed at ``ii`` (default: the
    bottleneck's cycles per frame), and the depth every FIFO needs (see the module docstring).
    ``reach``: how many units upstream of its anchor a late schedule extends (default
    ``LATE_REACH``). A graph that branches is analysed by :func:`analyse_graph_fifos`."""
    if not topology.is_chain(pipeline):
        return analyse_graph_fifos(pipeline, frames, ii)
    units = topology.chain(pipeline, "the FIFO analysis")
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


# ----------------------------------------------------------------------------- graphs
class _GraphSchedule:
    """Earliest and latest schedules of every unit of a branching graph, edge by edge.

    ``writes[e]`` / ``reads[e]``: when edge ``e``'s FIFO is written (the producer's output beats
    through the edge's width converter) and read (its consumer's input port), per mode:
    ``"early"`` (every unit as soon as possible, unbounded FIFOs) and ``"late"`` (as late as
    possible while the graph's output keeps its earliest times).
    """

    def __init__(self, graph, frames: int, ii: int):
        self.graph, self.frames = graph, frames
        self.units = topology.order(graph)
        self.edges = graph.edges
        self.eno = {id(e): i for i, e in enumerate(self.edges)}
        n_in = graph.in_stream.beats_per_frame
        j = np.arange(frames * n_in, dtype=np.int64)
        source = (j // n_in) * ii + (j % n_in) * ii // n_in
        self.throttled = {}
        self.pace = {u.name: self._pace(u) for u in self.units}
        ew, er, self.early_out = {}, {}, {}
        out_of = {(None, 0): source}
        for u in self.units:
            avails = []
            for e in topology.in_edges(graph, u.name):
                i = self.eno[id(e)]
                ew[i], self.throttled[i] = self._dwc(e, out_of[(e.src, e.src_port)])
                avails.append(ew[i] + FIFO_LATENCY)
            reads, outs = self._timeline(u, avails)
            for e, r in zip(topology.in_edges(graph, u.name), reads):
                er[self.eno[id(e)]] = r
            for p, o in enumerate(outs):
                out_of[(u.name, p)] = o
            self.early_out[u.name] = outs
        e = graph.output_edge
        i = self.eno[id(e)]
        ew[i], self.throttled[i] = self._dwc(e, out_of[(e.src, e.src_port)])
        er[i] = ew[i] + FIFO_LATENCY  # the sink keeps up
        self.writes, self.reads = {"early": ew}, {"early": er}
        self._late()

    def _pace(self, u) -> int:
        """Cycles per output beat a splitting width converter after single-output unit ``u`` allows."""
        outs = topology.out_edges(self.graph, u.name)
        if len(outs) != 1:
            return 1
        a, b = self.graph.source_stream(outs[0]).fold, self.graph.stream_of(outs[0]).fold
        return -(-a // b) if a > b else 1

    def _dwc(self, e, outs):
        return dwc_timeline(outs, self.graph.source_stream(e).fold, self.graph.stream_of(e).fold)

    def _timeline(self, u, avails):
        k = kind_of(u)
        if k.multiport:
            return k.timeline(u, avails, self.frames)
        r, o = unit_timeline(u, avails[0], self.frames, self.pace[u.name])
        return [r], [o]

    def _late(self):
        """Latest schedules, from the output back; a unit that cannot wait (or whose latest
        schedule would not be a schedule) keeps its earliest one, and so does everything upstream."""
        g, frames = self.graph, self.frames
        lw, lr = dict(self.writes["early"]), dict(self.reads["early"])
        self.late_units = set()
        blocked = set()
        for u in reversed(self.units):
            outs = topology.out_edges(g, u.name)
            if u.name in blocked or any(e.dst is not None and e.dst not in self.late_units for e in outs):
                blocked.add(u.name)
                continue
            k = kind_of(u)
            dls = []
            for e in outs:
                i = self.eno[id(e)]
                read = lr[i] if e.dst is not None else self.writes["early"][i]
                dls.append(dwc_latest(read - (FIFO_LATENCY if e.dst is not None else 0),
                                      self.early_out[u.name][e.src_port].size,
                                      g.source_stream(e).fold, g.stream_of(e).fold))
            ins = topology.in_edges(g, u.name)
            early = [self.reads["early"][self.eno[id(e)]] for e in ins]
            if k.multiport:
                reads, outs_t = _multiport_latest(u, dls, early)
            elif k.can_wait(u, self.pace[u.name]):
                r, o = unit_latest(u, dls[0], frames, early[0], self.pace[u.name])
                reads, outs_t = [r], [o]
            else:
                reads = None
            if reads is None or any(r.shape != a.shape or np.any(r < a) for r, a in zip(reads, early)) or \
                    any(np.any(o > d) for o, d in zip(outs_t, dls)):
                blocked.add(u.name)
                continue
            self.late_units.add(u.name)
            for e, r in zip(ins, reads):
                lr[self.eno[id(e)]] = r
            for e in outs:
                i = self.eno[id(e)]
                lw[i] = self._dwc(e, outs_t[e.src_port])[0]
        self.writes["late"], self.reads["late"] = lw, lr


def _multiport_latest(u, deadlines: list, early: list):
    """Latest reads of a fork, add or concat whose outputs leave by ``deadlines``."""
    if u.kind == "fork":
        r = np.maximum(rchain(np.minimum.reduce(deadlines)), early[0])
        return [r], [r] * len(deadlines)
    if u.kind == "add":
        r = np.maximum(rchain(deadlines[0] - u.latency), np.maximum(early[0], early[1]))
        return [r, r], [r + u.latency]
    if u.kind == "concat":
        ports, _ = u.beat_order(deadlines[0].size // u.out_stream.beats_per_frame)
        e = np.empty(ports.size, dtype=np.int64)
        for p, a in enumerate(early):
            e[ports == p] = a
        r = np.maximum(rchain(deadlines[0]), e)
        return [r[ports == p] for p in range(len(early))], [r]
    return None, None


def analyse_graph_fifos(graph, frames: int | None = None, ii: int | None = None) -> FifoAnalysis:
    """The FIFO analysis of a graph with forks and joins (see "Branches" in the module docstring).

    Every unit's schedule is taken earliest or latest; the latest units form a downstream-closed
    set (a late unit's consumers are late too, so every beat is still written before it is read),
    chosen among the suffixes of the topological order to minimise the FIFO bits. Depths are
    peaks plus the margin, as for a chain, but a reconvergent edge is not capped at one frame:
    the short path of a branch holds what the long path keeps in flight, which can exceed a frame.
    """
    topology.check_graph(graph)
    fixed_ii = ii is not None
    cost_ii = int(ii) if fixed_ii else pipeline_cycles(graph)[0]
    ii = cost_ii
    nfr = int(frames or DEFAULT_FRAMES)
    units = topology.order(graph)
    edges = graph.edges
    widths = [graph.stream_of(e).beat_bits for e in edges]
    first_periods = None
    for _ in range(8):
        sch = _GraphSchedule(graph, nfr, ii)
        periods = []
        for u in units:
            o = sch.early_out[u.name][0]
            ob = u.out_stream.beats_per_frame
            periods.append(int(o[-1] - o[-1 - ob]) if nfr > 1 else None)
        if first_periods is None:
            first_periods = periods
        slow = max((p for p in periods if p is not None), default=ii)
        if not fixed_ii and slow > ii:
            ii = slow
            continue
        best = None
        order_idx = {u.name: k for k, u in enumerate(units)}
        for j in range(len(units), -1, -1):  # units j.. late
            late = {u.name for u in units[j:]}
            if not late <= sch.late_units:
                break
            occs, bits = [], 0
            for i, e in enumerate(edges):
                if e.src is None or e.dst is None:
                    occs.append(None)
                    bits += MIN_DEPTH * widths[i]
                    continue
                wm = "late" if e.src in late else "early"
                rm = "late" if e.dst in late else "early"
                w, r = sch.writes[wm][i], sch.reads[rm][i]
                n_counted = graph.stream_of(e).beats_per_frame * (nfr - 1)
                occ = fifo_occupancy(w[:n_counted], r)
                occs.append(occ)
                bits += min(MAX_DEPTH, max(MIN_DEPTH, int(occ.max()) + MARGIN)) * widths[i]
            if j == len(units):
                early_bits = bits  # nothing late: every unit at its earliest schedule
            if best is None or bits < best[0]:
                best = (bits, j, occs)
        _bits, j, occs = best
        peaks, frame_peaks, depths, capped = [], [], [], []
        for i, e in enumerate(edges):
            if occs[i] is None:
                peaks.append(0)
                frame_peaks.append([])
                depths.append(MIN_DEPTH)
                capped.append(False)
                continue
            per = occs[i].reshape(nfr - 1, -1).max(axis=1)
            frame_peaks.append([int(v) for v in per])
            peaks.append(int(per.max()))
            want = max(MIN_DEPTH, peaks[-1] + MARGIN)
            depths.append(min(want, MAX_DEPTH))
            capped.append(want > MAX_DEPTH)
        modes = ["latest for output" if order_idx[u.name] >= j else "earliest" for u in units]
        res = FifoAnalysis(ii, nfr, modes, peaks, depths, capped, periods,
                           sum(d * w for d, w in zip(depths, widths)), early_bits,
                           [sch.throttled.get(i, 0) for i in range(len(edges))], frame_peaks)
        converged = all(len(p) < 2 or p[-1] <= max(p[:-1]) for p in frame_peaks)
        if frames is not None or converged or nfr >= MAX_FRAMES:
            break
        nfr = min(MAX_FRAMES, nfr * 2)
    res.cost_ii = cost_ii
    res.slow_unit = next((u.name for u, p in zip(units, first_periods)
                          if p is not None and p > cost_ii), None)
    return res


def expected_pace(pipeline, analysis: FifoAnalysis | None = None) -> tuple[int, str]:
    """Cycles per frame the pipeline will run at, and what sets it: the cost model's bottleneck
    (:func:`.cost.pipeline_cycles`), unless the schedule analysis finds a unit held back by the
    width converter that splits its output (``"<unit> + width converter"``); that pace is what
    Verilator measures."""
    cycles, bottleneck = pipeline_cycles(pipeline)
    a = analysis or analyse_fifos(pipeline)
    if a.ii > cycles and a.slow_unit is not None:
        return int(a.ii), f"{a.slow_unit} + width converter"
    return int(cycles), bottleneck


def size_fifos(pipeline):
    """The graph with every FIFO as deep as the analysis of its units' bursts asks."""
    return pipeline.with_depths(analyse_fifos(pipeline).depths)


# ----------------------------------------------------------------------------- report
def fifo_report(pipeline, analysis: FifoAnalysis | None = None) -> list[dict]:
    """One row per FIFO of the graph as it stands (its edges' depths), in edge order: name,
    consumer, depth (beats), width and storage bits (``depth * width``: memory words plus output
    register), and the implementation (:mod:`streamfold.hw.fifo`). With an ``analysis``
    (:func:`analyse_fifos`) the analysed peak occupancy, whether the cap cut it, and the schedule
    its consumer was analysed in join each row. Total: ``sum(row["bits"])`` (:func:`fifo_bits`)."""
    rows = []
    unit_no = {u.name: k for k, u in enumerate(topology.order(pipeline))}
    for p in topology.fifo_pieces(pipeline):
        k, depth, width = p.index, p.depth, p.width
        impl = {0: "wire", 1: "register", 2: "skid buffer"}.get(depth, "fifo")
        row = {"name": p.name, "from": p.edge.src or "input", "feeds": p.edge.dst or "output",
               "depth": depth, "width": width, "bits": depth * width, "impl": impl}
        if analysis is not None:
            row["peak"] = int(analysis.peaks[k])
            row["capped"] = bool(analysis.capped[k])
            if p.edge.dst is not None:
                row["consumer_schedule"] = analysis.modes[unit_no[p.edge.dst]]
        rows.append(row)
    return rows


def fifo_bits(pipeline) -> int:
    """Total FIFO storage of the graph in bits."""
    return sum(r["bits"] for r in fifo_report(pipeline))

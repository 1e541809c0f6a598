"""The whole-window sliding window (kind ``swg_whole``): one pixel in, one whole window out per beat.

Chosen by the fold when ``simd == kh*kw*C`` (never depthwise; fields, window order and
reference: :mod:`.window`). The generator (:mod:`streamfold.hw.parallel_window`) scans the padded
frame one step per clock (:class:`streamfold.compiler.memory.ParallelWindowGeometry`): a step takes
a pixel where the image is and emits a window where one ends; ``kh-1`` rows of ``W`` pixels are
kept in one memory.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..datatypes import StreamSpec
from ..memory import MemSpec, parallel_geometry, parallel_scan
from ..resource_model import clog2, exact, mem_features
from ..schedule import BIG, chain, rchain, unbounded_tail
from .base import UnitKind
from .sliding_window import SWG_LATENCY
from .window import WindowUnit, column_step, for_strip, reference


@dataclass
class WholeWindowUnit(WindowUnit):
    """Whole-window sliding window: ``simd == kh*kw*C`` (see :mod:`.window`)."""

    kind: ClassVar[str] = "swg_whole"

    @classmethod
    def fits(cls, unit) -> bool:
        return not unit.depthwise and unit.simd == unit.window_elems

    @property
    def in_stream(self) -> StreamSpec:
        return StreamSpec(tuple(self.in_shape), self.dtype, int(self.in_shape[2]))

    @property
    def out_stream(self) -> StreamSpec:
        oh, ow = self.out_hw
        return StreamSpec((oh, ow, self.window_elems), self.dtype, self.window_elems)


def cycles(u) -> int:
    """One scan step per clock: ``(vy1 - vy0 + 1) * (vx1 - vx0 + 1)`` steps per frame
    (:func:`streamfold.compiler.memory.parallel_geometry`): ``H*W`` without padding, plus the
    padded rows/columns that end a window (e.g. ``(H+1)*(W+1)`` for a 3x3 "same" convolution)."""
    return parallel_geometry(u).steps


def scan_steps(u, frames: int):
    """Whole-window generator (:mod:`streamfold.hw.parallel_window`), one scan step per clock
    (:func:`streamfold.compiler.memory.parallel_scan`): per frame ``n`` steps; global indices of
    the pixel-taking steps ``gt`` and of the window-emitting steps ``ge``; ``pre``: the steps
    before a frame's first pixel (top/left padding), which wait for that pixel to be offered."""
    takes, emits = parallel_scan(u)
    n = takes.size
    off = (np.arange(frames, dtype=np.int64) * n)[:, None]
    gt = (off + np.flatnonzero(takes)[None, :]).reshape(-1)
    ge = (off + np.flatnonzero(emits)[None, :]).reshape(-1)
    pre = int(np.argmax(takes))  # steps before the first pixel of a frame
    return gt, ge, n, pre


def timeline(u, avail, frames, pace=1):
    """One scan step per clock (:func:`streamfold.compiler.memory.parallel_scan`), pixel-taking
    steps chained as the matrix-vector unit's."""
    gt, ge, n, pre = scan_steps(u, frames)
    if pace > 1:
        return _paced(u, avail, frames, pace)
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


def _paced(u, avail, frames, pace):
    """Whole-window generator whose windows a splitter takes one every ``pace`` cycles: an
    emitting step fires only once the previous window is taken (the output register is free or
    being read), with ``skid`` once the one before it was taken in an earlier clock (the skid
    register is empty); window ``j`` is taken at ``A_j = max(t_j + 1, A_{j-1} + pace)``. One Python
    step per scan step (the recurrence is not a plain chain)."""
    takes, emits = parallel_scan(u)
    takes, emits = takes.tolist(), emits.tolist()
    pre = takes.index(True)
    av = avail.tolist()
    hw = u.in_stream.beats_per_frame
    reads, outs = [], []
    t, taken, k = -1, -(1 << 62), 0
    before = -(1 << 62)  # A_{j-2}
    for f in range(frames):
        first = av[f * hw]
        for s in range(len(takes)):
            e = t + 1
            if takes[s]:
                e = max(e, av[k])
            elif s < pre:
                e = max(e, first)
            if emits[s]:
                e = max(e, before + 1) if u.skid else max(e, taken)
                before, taken = taken, max(e + 1, taken + pace)
                outs.append(taken)
            if takes[s]:
                reads.append(e)
                k += 1
            t = e
    return np.array(reads, dtype=np.int64), np.array(outs, dtype=np.int64) + (SWG_LATENCY - 1)


def can_wait(u, pace: int) -> bool:
    """A late schedule exists except behind a splitter or with padding steps before a frame's
    first pixel."""
    return pace == 1 and not scan_steps(u, 1)[3]


def latest(u, dl, frames, earliest, pace=1):
    gt, ge, n, pre = scan_steps(u, frames)
    if pace > 1 or pre:  # no late schedule: keep the earliest
        avail = earliest.copy()
        hw = u.in_stream.beats_per_frame
        avail[::hw] -= pre  # a frame's first pixel was offered when its padding steps began
        return timeline(u, avail, frames, pace)
    # latest step times: t_g <= min over emitting steps e >= g of (dl_e - latency - (e - g))
    lim = np.minimum.accumulate((dl - SWG_LATENCY - ge)[::-1])[::-1]
    j = np.searchsorted(ge, gt, side="left")
    late = np.where(j < ge.size, gt + lim[np.minimum(j, ge.size - 1)], BIG)
    return unbounded_tail(rchain(late, gt), earliest, gt)


def memories(u) -> list[MemSpec]:
    """The line buffer: ``W`` words of ``(kh-1)*C*bits`` (none for kh=1)."""
    g = parallel_geometry(u)
    return [MemSpec("line_buffer", g.w, g.line_buffer_width(u.dtype.bits), "sdp")] if g.kh > 1 else []


#: LUTs per window bit of the skid register's multiplexer into the output register (the demo's
#: conv1_win on ECP5, whole design: 297 LUTs more for its 288-bit window)
SKID_LUT_PER_BIT = 1.0
#: window bits per copy of the skid and output flags (hw.parallel_window): one flag flip-flop
#: driving a 288-bit window's multiplexers and enables was the demo's critical path after
#: placement (18.5 ns, 16.8 of them routing)
SKID_FANOUT = 32


def features(u, family: str) -> dict:
    """The ``kh x kw`` output register and the ``kh x (kw-1)`` column history (``win`` FFs,
    clock-enabled: no LUTs), pad multiplexers on the incoming column and, with left padding, on
    the row-start clear of the history, scan counters and the line-buffer memory."""
    g = parallel_geometry(u)
    pix = g.c * u.dtype.bits
    mem = mem_features(memories(u), family)
    padded = any(g.pads)
    clear = (g.kw - 1) * g.kh * pix if (g.cols[0] > 0 and g.kw > 1) else 0
    ctr = clog2(g.rows[1] + 1) + clog2(g.cols[1] + 1) + clog2(g.w) * (g.kh > 1) + clog2(g.sh) + clog2(g.sw)
    lut = {"const": 1, "pad": g.kh * pix * padded, "clear": clear, "ctr": ctr,
           "ram": mem["ram_bits"], "lutmux": mem["lutram_mux"]}
    ff = {"const": 1, "win": g.kh * (2 * g.kw - 1) * pix, "ctr": ctr, "mem": mem["mem_reg"],
          "ram": mem["ram_bits"]}
    out = {"LUT": lut, "FF": ff, "exact": exact(mem), "memories": mem["maps"]}
    if u.skid:  # the skid register and the output register's choice between it and the window
        bits = g.kh * g.kw * pix
        out["fixed"] = {"FF": bits + 1 + 2 * -(-bits // SKID_FANOUT), "LUT": SKID_LUT_PER_BIT * bits}
    return out


KIND = UnitKind(
    name="swg_whole", ir=WholeWindowUnit, reference=reference, cycles=cycles,
    hardware="streamfold.hw.parallel_window:ParallelWindowHW",
    timeline=timeline, latest=latest, paced=True, can_wait=can_wait, memories=memories,
    line_buffer=True, features=features, model_key="swg",
    feature_names={"LUT": ["const", "pad", "clear", "ctr", "ram", "lutmux"],
                   "FF": ["const", "win", "ctr", "mem", "ram"]},
    # checked by hand against Yosys synth_xilinx (xc7) on six whole-window units (3x3 ... 5x5,
    # 1 to 64 channels, with and without padding): LUT within ~15 (+-10%), FF within ~5
    default_coef={"LUT": {"const": 5, "pad": 1.0, "clear": 1.0, "ctr": 1.5, "ram": 0.3, "lutmux": 1.0},
                  "FF": {"const": 2, "win": 1, "ctr": 1, "mem": 0.05, "ram": 1}},
    column_step=column_step, for_strip=for_strip,
)

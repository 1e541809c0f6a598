"""What the row-reordering kinds share (:mod:`.depth_to_space`, :mod:`.upsample`): a two-row
ping-pong buffer that takes one input row in stream order and reads it out in another order,
its exact schedule, memories and resource features.

Both kinds map input row ``h`` (``W`` pixels of ``C`` channels, ``n_in = W*C/pe`` beats) to a
block of output rows that needs that row and nothing else (``r`` rows of a DepthToSpace,
``sh`` rows of an upsampling): the output of row ``h`` is a fixed permutation (with repeats, for
an upsampling) of its elements, ``n_out`` beats of ``pe`` elements.

Hardware (:mod:`streamfold.hw.row_buffer`), fully back-pressured, at most one beat per clock on
each side:

* the buffer holds two rows (halves ``0``/``1``, ``n_in`` words each, a ``full`` flag each);
* the **writer** stores input row ``k`` in half ``k mod 2``, one word per input beat, while that
  half is not full (``i.ready = ~full[half]``, registered: no path from ``o.ready``); its last
  beat sets ``full``;
* the **reader** reads half ``k mod 2`` while it is full, one synchronous read per clock in the
  output order (address counters, see :class:`RowPlan`), and clears ``full`` with the row's last
  read; the output beat is the read data one cycle after the read (``LATENCY``).

A beat is a word of ``pe`` elements, except for a DepthToSpace in CRD mode with ``pe > 1``,
whose output beat gathers ``pe`` elements of ``pe`` different input beats: ``pe`` banks of one
element, skewed so that the ``pe`` elements of an input beat and those of an output beat are each
in ``pe`` different banks (see :class:`RowPlan`).

Schedule (exact, checked against Amaranth's simulator in ``tests/test_reorder_units.py``), rows
``k`` counted on across frames, ``W_k``/``R_k`` the cycles of row ``k``'s last write and last
read, ``a`` the input's availability:

* input beat ``t`` of row ``k`` is taken at ``max(a_t, prev + 1)``, and the row's first beat not
  before ``R_{k-2} + 1`` (its half is free once row ``k-2`` is read);
* row ``k``'s reads start at ``S_k = max(W_k, R_{k-1}) + 1`` and run one per clock
  (``R_k = S_k + n_out - 1``); output beat ``j`` of the row leaves at ``S_k + 1 + j``.

With the input always there and the output always ready, writing row ``k+1`` starts in the cycle
reading row ``k`` starts (``S_{k+1} = S_k + P``, ``P = max(n_in, n_out)``): the busier side never
waits, a frame takes ``H * P`` cycles at steady state, with no bubble at row or frame boundaries.
Latency: with the unit idle, a row's first output beat leaves two cycles after its last input
beat (``n_in + 1`` cycles after the first input beat of a frame); the frame's last output beat
``n_in + (H-1)*P + n_out`` cycles after its first input beat.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..memory import MemSpec
from ..resource_model import clog2, exact, mem_features, shapes_to_specs
from ..schedule import BIG, chain
from .base import FoldError, Unit, divisors

#: cycles from a read (the cycle it is issued) to the output beat: the synchronous read port
LATENCY = 1


@dataclass(frozen=True)
class RowPlan:
    """How a row-reordering unit's hardware reads a row: the read address of output beat
    ``(idx_0, .., idx_{L-1})`` (nested loops ``loops = ((name, count, stride), ..)``, outer
    first) is ``half*n_in + sum(idx_l * stride_l)``, plus, when banked, a per-bank offset.

    Banked (``banks == pe > 1``, DepthToSpace CRD): the ``pe*R`` channels of channel group ``g``
    of a pixel (``R = r*r``; channel ``(g*pe + p)*R + s`` has local index ``l = p*R + s``) are
    stored in bank ``(l + l // L) mod pe`` (``L = lcm(pe, R)``) at word ``l // pe`` of the
    group: input beat ``b`` of a pixel puts its lane ``q`` in bank ``(q + rot[b mod R]) mod pe``
    (``rot[x] = x*pe // L``), every bank at the beat's word; output beat ``(s, g)`` reads, in
    bank ``q``, word ``group + offset[s][q]`` and gives lane ``p`` bank ``select[s][p]``. (Both
    are permutations: an input beat's elements share ``l // L``; an output beat's ``pe``
    elements ``p = p0 + t*pe/d``, ``d = gcd(pe, R)``, differ in ``l // L`` by ``t``.)
    """

    rows: int  # input rows per frame
    n_in: int  # words (input beats) per row
    lanes: int  # elements per beat (pe)
    bits: int  # bits per element
    loops: tuple  # ((name, count, stride), ...), outer first, simplified
    banks: int = 1
    r: int = 1  # banked: the block size; s = idx_i * r + idx_j
    rot: tuple = ()  # banked: write rotation per input beat mod R
    offset: tuple = ()  # banked: offset[s][bank]
    select: tuple = ()  # banked: select[s][lane]

    @property
    def n_out(self) -> int:
        return math.prod(c for _, c, _ in self.loops)

    @property
    def words(self) -> int:
        """Words of the buffer (two rows)."""
        return 2 * self.n_in

    @property
    def word_bits(self) -> int:
        return self.lanes * self.bits // self.banks

    def read_addresses(self) -> np.ndarray:
        """Word read by each output beat of a row in half 0, ``(n_out, banks)`` (tests, docs)."""
        idx = np.indices([c for _, c, _ in self.loops]).reshape(len(self.loops), -1)
        base = sum(i * st for i, (_, _, st) in zip(idx, self.loops))
        if self.banks == 1:
            return base[:, None]
        names = [n for n, _, _ in self.loops]
        s = idx[names.index("i")] * self.r + idx[names.index("j")]
        return base[:, None] + np.asarray(self.offset)[s]


def simplify_loops(loops, keep=()) -> tuple:
    """Drop loops of one iteration, merge an outer loop into the inner one it continues
    (``stride_outer == count_inner * stride_inner``); loops named in ``keep`` stay as they are."""
    out = [tuple(lp) for lp in loops if lp[1] > 1 or lp[0] in keep]
    merged = True
    while merged:
        merged = False
        for a in range(len(out) - 1):
            (n0, c0, s0), (n1, c1, s1) = out[a], out[a + 1]
            if s0 == c1 * s1 and n0 not in keep and n1 not in keep:
                out[a:a + 2] = [(n1, c0 * c1, s1)]
                merged = True
                break
    return tuple(out) if out else (("t", 1, 1),)


def skew_tables(pe: int, R: int) -> tuple:
    """``(rot, offset, select)`` of the banked layout (:class:`RowPlan`)."""
    L = pe * R // math.gcd(pe, R)
    rot = tuple((x * pe) // L % pe for x in range(R))
    offset, select = [], []
    for s in range(R):
        off, sel = [0] * pe, [0] * pe
        for p in range(pe):
            l = p * R + s
            b = (l + l // L) % pe
            off[b], sel[p] = l // pe, b
        assert sorted(sel) == list(range(pe))
        offset.append(tuple(off))
        select.append(tuple(sel))
    return rot, tuple(offset), tuple(select)


class RowReorder(Unit):
    """Base of the row-reordering units: ``in_shape (H, W, C)``, ``dtype``, ``pe`` channels
    per beat; a subclass gives :meth:`row_plan` and the channel count ``pe`` divides."""

    @property
    def channels(self) -> int:  # the channels pe must divide
        raise NotImplementedError

    def row_plan(self) -> RowPlan:  # pragma: no cover - abstract
        raise NotImplementedError

    def folding(self) -> dict:
        return {"pe": self.pe}

    def fold_choices(self) -> dict:
        return {"pe": divisors(self.channels)}

    def check_shape(self) -> None:
        if len(self.in_shape) != 3 or min(int(v) for v in self.in_shape) < 1:
            raise FoldError(f"layer {self.name}: in_shape must be (H, W, C), got {self.in_shape}")

    def check_folding(self) -> None:
        self.check_shape()
        c = self.channels
        if self.pe < 1 or c % self.pe:
            raise FoldError(f"layer {self.name}: PE={self.pe} does not divide its {c} output "
                            f"channels; pick one of {divisors(c)}")


def cycles(u) -> int:
    """``H * max(n_in, n_out)``: the busier side moves a beat every clock, no bubble."""
    p = u.row_plan()
    return p.rows * max(p.n_in, p.n_out)


def _rows(u, frames: int):
    p = u.row_plan()
    return p, frames * p.rows


def timeline(u, avail, frames):
    """Reads and output beats (module docstring): a scalar recurrence per row, vectorised within."""
    p, rows = _rows(u, frames)
    n_in, n_out = p.n_in, p.n_out
    a = np.asarray(avail, dtype=np.int64).reshape(rows, n_in)
    # last write of row k if it starts no earlier than g: max(g + n_in - 1, M_k)
    m_row = (a - np.arange(n_in, dtype=np.int64)[None, :]).max(axis=1) + (n_in - 1)
    gates = np.empty(rows, dtype=np.int64)
    starts = np.empty(rows, dtype=np.int64)
    m_row = m_row.tolist()
    w_prev, r1, r2 = -1, -1, -1  # last write of row k-1, last read of rows k-1 and k-2
    for k in range(rows):
        g = max(w_prev + 1, r2 + 1)
        w = max(g + n_in - 1, m_row[k])
        s = max(w, r1) + 1
        gates[k], starts[k] = g, s
        w_prev, r2, r1 = w, r1, s + n_out - 1
    a = a.copy()
    a[:, 0] = np.maximum(a[:, 0], gates)
    reads = chain(a.reshape(-1))
    outs = (starts[:, None] + LATENCY + np.arange(n_out, dtype=np.int64)[None, :]).reshape(-1)
    return reads, outs


def latest(u, dl, frames, earliest):
    """Latest reads meeting output deadlines ``dl``: row ``k``'s reads start by
    ``min_j(dl_j - 1 - j)``, by ``S_{k+1} - n_out`` and so that its last read precedes row
    ``k+2``'s first write; its writes end before both ``S_k`` and row ``k+1``'s first write.
    Rows no deadline reaches run as early as possible after the others."""
    p, rows = _rows(u, frames)
    n_in, n_out = p.n_in, p.n_out
    d = np.asarray(dl, dtype=np.int64).reshape(rows, n_out)
    bound = (d - LATENCY - np.arange(n_out, dtype=np.int64)[None, :]).min(axis=1).tolist()
    first = [0] * rows
    s_next, f1, f2 = None, None, None  # S_{k+1}, first write of rows k+1 and k+2
    for k in range(rows - 1, -1, -1):
        s = bound[k]
        if s_next is not None:
            s = min(s, s_next - n_out)
        if f2 is not None:
            s = min(s, f2 - n_out)
        w = s - 1 if f1 is None else min(s - 1, f1 - 1)
        first[k] = w - n_in + 1
        s_next, f2, f1 = s, f1, first[k]
    late = (np.array(first, dtype=np.int64)[:, None] + np.arange(n_in, dtype=np.int64)[None, :]).reshape(-1)
    e = np.asarray(earliest, dtype=np.int64)
    late = np.where(late >= BIG // 2, e, np.maximum(late, e))
    return timeline(u, late, frames)


def memories(u) -> list[MemSpec]:
    """The two-row buffer: one memory of ``2*W*C/pe`` words of ``pe`` elements, or ``pe`` banks
    of one element when banked."""
    p = u.row_plan()
    if p.banks == 1:
        return [MemSpec("rows", p.words, p.word_bits, "sdp")]
    return [MemSpec(f"rows{b}", p.words, p.word_bits, "sdp") for b in range(p.banks)]


def structure(p: RowPlan) -> dict:
    """Register and multiplexer counts of the hardware of plan ``p`` (:mod:`streamfold.hw.row_buffer`):
    ``ctr`` counter/address register bits (write address; per loop an index and, but for the
    innermost, a start mark of each coordinate; banked: ``s`` and the write beat mod ``R``),
    ``mux`` multiplexer data inputs beyond the first (banked: write rotator, output crossbar),
    ``bank`` bank-address adder and table output bits, ``sel`` lane-select register bits."""
    ab = clog2(p.words)
    nl = len(p.loops)
    idx = sum(clog2(c) for _, c, _ in p.loops)
    out = {"ctr": ab + idx + ab * nl, "mux": 0, "bank": 0, "sel": 0}
    if p.banks == 1:
        return out
    R = p.r * p.r
    sb = clog2(R)
    rots = len(set(p.rot))
    out["ctr"] += sb * nl + (sb if rots > 1 else 0)
    opts = [len({sel[q] for sel in p.select}) for q in range(p.lanes)]
    out["mux"] = p.bits * (p.lanes * (rots - 1) + sum(n - 1 for n in opts))
    moving = sum(len({off[b] for off in p.offset}) > 1 for b in range(p.banks))
    out["bank"] = moving * (ab + sb) + sum(clog2(n) for n in opts) + clog2(rots) * (rots > 1)
    out["sel"] = sum(clog2(n) for n in opts)
    return out


def features(u, family: str) -> dict:
    """Two-row buffer (:mod:`streamfold.hw.row_buffer`, counts from :func:`structure`): the
    memories (``bram_w``: data bits of those in block RAM, which get fabric registers and muxes
    on some families), the counters, the half flags and the output valid (``const``); banked:
    the rotator and crossbar multiplexers, bank-address adders and the lane selects."""
    p = u.row_plan()
    mems = shapes_to_specs(memories(u), "sdp")
    mem = mem_features(mems, family)
    st = structure(p)
    bram_w = sum(m.width for m in mems if mem["where"].get(m.name) == "bram")
    lut = {"const": 1, "ctr": st["ctr"], "ram": mem["ram_bits"], "lutmux": mem["lutram_mux"],
           "bram_w": bram_w, "mux": st["mux"], "bank": st["bank"]}
    ff = {"const": 1, "ctr": st["ctr"], "mem": mem["mem_reg"], "ram": mem["ram_bits"],
          "bram_w": bram_w, "sel": st["sel"]}
    return {"LUT": lut, "FF": ff, "exact": exact(mem), "memories": mem["maps"]}


FEATURE_NAMES = {"LUT": ["const", "ctr", "ram", "lutmux", "bram_w", "mux", "bank"],
                 "FF": ["const", "ctr", "mem", "ram", "bram_w", "sel"]}
#: fitted (non-negative least squares, ``ram``/``mem`` fixed) on Yosys 0.70 ``synth_xilinx``
#: runs of 8 designs (depth_to_space DCR/CRD, banked or not, LUT-RAM or block RAM; upsample):
#: LUT within 9%, FF within 1%. The ECP5 fit (9 designs, LUT and FF within 9%): LUT const 27.55,
#: ctr 2.291, lutmux 0.732, bram_w 0.953, mux 0.74, bank 0; FF const 6.873, ctr 0.994,
#: bram_w 2.186, sel 0 (a block RAM's read enable costs fabric registers there).
DEFAULT_COEF = {"LUT": {"const": 0.0, "ctr": 1.105, "ram": 0.3, "lutmux": 0.879, "bram_w": 0.0, "mux": 0.297,
                        "bank": 0.45},
                "FF": {"const": 8.36, "ctr": 0.92, "mem": 1.0, "ram": 1.0, "bram_w": 0.016, "sel": 0.0}}

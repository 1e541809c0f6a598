"""On-chip memory of the stream units, without Amaranth: geometry, bits and BRAM18 blocks.

The hardware (:mod:`streamfold.hw`) sizes its memories with these same functions, so the cost
model and the generated Verilog always agree.

Block RAM
---------
:func:`bram18_blocks` counts Xilinx 18 Kib block RAMs (RAMB18, simple dual port) for one memory of
``width x depth`` bits: the best of the aspect ratios ``1x16K, 2x8K, 4x4K, 9x2K, 18x1K, 36x512``,
each tiled ``ceil(width / w) * ceil(depth / d)`` times. (A synthesis tool may put small memories
in LUT RAM instead; the count is what the memory needs *if* it goes to block RAM.)

Sliding-window line buffer
--------------------------
The generator (:mod:`streamfold.hw.sliding_window`) keeps the input frame's pixels in a circular
buffer of ``D`` pixels (``D * C/simd`` words of ``simd * bits``), indexed by the pixel's linear
index ``y*W + x`` modulo ``D``. For output window ``n`` (row-major over ``(oy, ox)``) let, with
``ybase = oy*sh - pad_top``, ``xbase = ox*sw - pad_left`` and ``clip`` to the image,

* ``ymin = clip(ybase)``, ``ymax = clip(ybase + kh - 1)`` (same for x),
* ``L(n) = ymax*W + xmax``: the last input pixel the window needs,
* ``F(n) = ymin*W`` if there is a next output row and it starts on the same input row
  (``ymin(oy+1) == ymin``), else ``ymin*W + xmin``: the first pixel the window *or any later window of the frame* needs.

Window ``n`` is emitted once pixel ``L(n)`` is in; an input pixel ``P`` may overwrite the slot of
pixel ``P - D`` only when ``P < F(n) + D``. The buffer is the smallest that never stalls the
window stream inside a frame::

    D = max over n of  L(n+1) - F(n) + 1   (n, n+1 in the same frame; and L(n) - F(n) + 1)

which is ``(kh-1)*W + kw + 1`` pixels for stride 1 with "same" padding, ``(kh-1)*W + 2*kw`` for
stride 1 without padding, about ``kh*W + 2*kw`` for stride 2: (K-1) rows plus a few pixels, one
more row for stride 2 (the next output row needs two new input rows), never a whole frame.

Parallel (whole-window) mode
----------------------------
With ``simd == kh*kw*C`` (:class:`~streamfold.compiler.units.whole_window.WholeWindowUnit`) the
generator (:mod:`streamfold.hw.parallel_window`, the whole-window kind) reads one pixel per input beat and emits one
whole window per output beat. It scans the *padded* frame row by row, one step per clock: a step
at virtual position ``(vy, vx)`` (padded coordinates, the image at ``[pt, pt+H) x [pl, pl+W)``)
takes an input pixel when it is an image position, shifts the column ``vy-kh+1 .. vy`` into a
``kh x kw`` register window and emits it when ``(vy, vx)`` is the bottom-right corner of an
output window. Only rows ``vy0 .. vy1`` and columns ``vx0 .. vx1`` are scanned (see
:func:`parallel_geometry`): padding before the first window corner or after the last image
pixel that no window ends on costs no step. Memory: ``kh-1`` rows of ``W`` pixels
(one memory of ``W`` words of ``(kh-1)*C*bits``), nothing for the padding.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

#: Xilinx RAMB18 aspect ratios (width, depth) in simple-dual-port mode
BRAM18_ASPECTS = ((1, 16384), (2, 8192), (4, 4096), (9, 2048), (18, 1024), (36, 512))


def bram18_blocks(width: int, depth: int) -> int:
    """RAMB18 blocks for one ``width``-bit, ``depth``-word memory (0 for an empty memory)."""
    width, depth = int(width), int(depth)
    if width <= 0 or depth <= 0:
        return 0
    return min(math.ceil(width / w) * math.ceil(depth / d) for w, d in BRAM18_ASPECTS)


@dataclass(frozen=True)
class MemSpec:
    """One memory of a unit or FIFO: ``depth`` words of ``width`` bits.

    ``kind``: ``rom`` (one synchronous read port, initialised), ``sp`` (a write and a read port on
    the same address), ``sdp`` (a write and a read port on different addresses). ``style``: the
    unit's ``ram_style`` (auto/block/distributed/ultra). ``image``: a ROM's contents as a bit
    matrix (or a function returning it), for the resource model's soft-logic ROM features.
    """

    name: str
    depth: int
    width: int
    kind: str = "rom"
    style: str = "auto"
    image: object = field(default=None, compare=False, repr=False)

    @property
    def bits(self) -> int:
        return self.width * self.depth

    @property
    def bram18(self) -> int:
        return bram18_blocks(self.width, self.depth)


# ----------------------------------------------------------------------------- sliding window
@dataclass(frozen=True)
class WindowGeometry:
    """Everything the sliding-window hardware and its cost model derive from the IR unit."""

    h: int
    w: int
    c: int
    cf: int  # channel folds, C / simd
    kh: int
    kw: int
    sh: int
    sw: int
    pads: tuple  # (top, left, bottom, right)
    oh: int
    ow: int
    buffer_pixels: int  # D
    first_last: int  # L of the frame's first window
    last_first: int  # F of the frame's last window

    @property
    def hw(self) -> int:
        return self.h * self.w

    @property
    def k(self) -> int:
        return self.kh * self.kw

    @property
    def buffer_words(self) -> int:
        return self.buffer_pixels * self.cf

    @property
    def in_beats(self) -> int:
        return self.hw * self.cf

    @property
    def out_beats(self) -> int:
        return self.oh * self.ow * self.k * self.cf


def _clip(v, hi):
    return np.clip(v, 0, hi)


def window_bounds(u):
    """Arrays ``(L, F)`` of shape ``(OH, OW)``: see the module docstring."""
    h, w, _ = u.in_shape
    (kh, kw), (sh, sw), (pt, pl, _pb, _pr) = u.kernel, u.stride, u.pads
    oh, ow = u.out_hw
    ybase = np.arange(oh, dtype=np.int64) * sh - pt
    xbase = np.arange(ow, dtype=np.int64) * sw - pl
    ymin, ymax = _clip(ybase, h - 1), _clip(ybase + kh - 1, h - 1)
    xmin, xmax = _clip(xbase, w - 1), _clip(xbase + kw - 1, w - 1)
    hold = _clip(ybase + sh, h - 1) == ymin
    hold[-1] = False  # the last row has no next row
    big_l = ymax[:, None] * w + xmax[None, :]
    e = ymin[:, None] * w + xmin[None, :]
    big_f = np.where(hold[:, None], (ymin * w)[:, None], e)
    return big_l, big_f


def window_geometry(u, cf: int | None = None) -> WindowGeometry:
    """The :class:`WindowGeometry` of a sliding-window unit with ``cf`` beats per pixel (default
    ``C / simd``; a whole-window unit asks for ``cf = 1``: the geometry the circular-buffer
    generator would have at one pixel per beat)."""
    h, w, c = (int(v) for v in u.in_shape)
    oh, ow = u.out_hw
    if oh < 1 or ow < 1:
        raise ValueError(f"layer {u.name}: kernel {u.kernel} does not fit the padded input {u.in_shape}")
    big_l, big_f = (a.reshape(-1) for a in window_bounds(u))
    need = big_l - big_f + 1
    if big_l.size > 1:
        need = np.maximum(need[:-1], big_l[1:] - big_f[:-1] + 1)
    d = int(max(1, need.max()))
    cf = c // u.simd if cf is None else int(cf)
    return WindowGeometry(h, w, c, cf, int(u.kernel[0]), int(u.kernel[1]),
                          int(u.stride[0]), int(u.stride[1]), tuple(int(p) for p in u.pads), oh, ow,
                          d, int(big_l[0]), int(big_f[-1]))


# ----------------------------------------------------------------------------- parallel window
@dataclass(frozen=True)
class ParallelWindowGeometry:
    """The scan of the whole-window generator (see "Parallel mode" in the module docstring).

    ``rows = (vy0, vy1)`` and ``cols = (vx0, vx1)`` are the virtual (padded) rows and columns
    scanned per frame, one step per (row, column): ``vy0 = min(pt, kh-1)`` (the first image row
    or the first window's bottom row, whichever comes first), ``vy1 = max(pt+H-1, (OH-1)*sh+kh-1)``
    (the last image row or the last window's bottom row), likewise for columns.
    """

    h: int
    w: int
    c: int
    kh: int
    kw: int
    sh: int
    sw: int
    pads: tuple  # (top, left, bottom, right)
    oh: int
    ow: int
    rows: tuple  # (vy0, vy1)
    cols: tuple  # (vx0, vx1)

    @property
    def n_rows(self) -> int:
        return self.rows[1] - self.rows[0] + 1

    @property
    def n_cols(self) -> int:
        return self.cols[1] - self.cols[0] + 1

    @property
    def steps(self) -> int:
        """Steps (clock cycles at full rate) per frame."""
        return self.n_rows * self.n_cols

    @property
    def last_row(self) -> int:
        """Virtual row of the last output row's window bottom, ``(OH-1)*sh + kh-1``."""
        return (self.oh - 1) * self.sh + self.kh - 1

    @property
    def last_col(self) -> int:
        return (self.ow - 1) * self.sw + self.kw - 1

    def image_row(self, vy):
        """Whether virtual row(s) ``vy`` hold image pixels (NumPy-friendly)."""
        return (vy >= self.pads[0]) & (vy < self.pads[0] + self.h)

    def image_col(self, vx):
        return (vx >= self.pads[1]) & (vx < self.pads[1] + self.w)

    def emit_row(self, vy):
        """Whether virtual row(s) ``vy`` are the bottom row of an output row's windows."""
        return (vy >= self.kh - 1) & (vy <= self.last_row) & ((vy - (self.kh - 1)) % self.sh == 0)

    def emit_col(self, vx):
        return (vx >= self.kw - 1) & (vx <= self.last_col) & ((vx - (self.kw - 1)) % self.sw == 0)

    def line_buffer_width(self, bits: int) -> int:
        """Bits of one line-buffer word: the ``kh-1`` rows above of one column."""
        return (self.kh - 1) * self.c * int(bits)


def parallel_geometry(u) -> ParallelWindowGeometry:
    """The :class:`ParallelWindowGeometry` of a sliding-window unit (whatever its fold)."""
    h, w, c = (int(v) for v in u.in_shape)
    oh, ow = u.out_hw
    if oh < 1 or ow < 1:
        raise ValueError(f"layer {u.name}: kernel {u.kernel} does not fit the padded input {u.in_shape}")
    (kh, kw), (sh, sw) = (int(v) for v in u.kernel), (int(v) for v in u.stride)
    pt, pl, _pb, _pr = (int(p) for p in u.pads)
    rows = (min(pt, kh - 1), max(pt + h - 1, (oh - 1) * sh + kh - 1))
    cols = (min(pl, kw - 1), max(pl + w - 1, (ow - 1) * sw + kw - 1))
    return ParallelWindowGeometry(h, w, c, kh, kw, sh, sw, (pt, pl, _pb, _pr), oh, ow, rows, cols)


def parallel_scan(u) -> tuple[np.ndarray, np.ndarray]:
    """Per step of one frame, in scan order: ``(takes, emits)`` (bool arrays of ``steps``): the
    step takes an input pixel / emits a window. ``takes.sum() == H*W``, ``emits.sum() == OH*OW``."""
    g = parallel_geometry(u)
    vy = np.arange(g.rows[0], g.rows[1] + 1, dtype=np.int64)[:, None]
    vx = np.arange(g.cols[0], g.cols[1] + 1, dtype=np.int64)[None, :]
    takes = g.image_row(vy) & g.image_col(vx)
    emits = g.emit_row(vy) & g.emit_col(vx)
    return takes.reshape(-1), emits.reshape(-1)


# ----------------------------------------------------------------------------- pooling
def pool_phases(k: int, s: int) -> int:
    """Windows of size ``k``, stride ``s`` open at once along one axis: ``ceil(k / s)``."""
    return -(-int(k) // int(s))

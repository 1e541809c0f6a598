"""Tiled streaming: wide frames cut into column strips that share one narrow pipeline.

A sliding-window unit's line buffers hold ``(K-1)`` rows of the frame, so they grow with the row
width ``W``. For a fully convolutional network (sliding windows, matrix-vector and vector-vector
units on pixels, max-pool) the host can instead cut each frame into vertical strips of
``strip_width`` columns that overlap by the halo the network's receptive field needs. Every strip
streams through the *same* pipeline, built for the strip width, as if it were a frame of its
own; of each strip's output only the columns computed from real data are kept, and the kept
columns are put back together into the full output map.

Which output columns of a strip are right is worked out exactly, layer by layer, rather than
from a halo formula: an output column is right when each input column it reads is either a
right column of the strip or, beyond the strip's edge, padding that the full frame pads there too
(the frame's own left and right edges). Strip starts are multiples of the network's total column
stride, so a strip's columns land on the full map's columns at every layer, and the last strip
ends on the frame's right edge.

Costs (:func:`tiling_options`): the line buffers shrink roughly in proportion to the strip width;
the halo columns are computed more than once, so a frame takes ``strips * strip_cycles`` cycles
instead of ``frame_cycles``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .errors import StreamfoldError
from .fifo_sizing import expected_pace, size_fifos
from .ir import DataflowGraph
from .units import PER_PIXEL, ColumnStep, kind_of


class TilingError(StreamfoldError):
    """A network, strip width or memory budget that tiling cannot serve."""


def column_steps(pipeline: DataflowGraph) -> list[ColumnStep]:
    """The column-changing layers of a tileable pipeline, in order; raises :class:`TilingError`
    naming the first layer that needs a whole frame."""
    for u in pipeline.units:
        if len(u.input_streams()) > 1 or len(u.output_streams()) > 1:
            what = "joins branches" if len(u.input_streams()) > 1 else "splits the stream into branches"
            raise TilingError(f"layer {u.name} ({u.kind}, from node {getattr(u, 'source', '')!r}) {what}; "
                              "tiling covers networks without branches for now, so this model cannot be "
                              "tiled: compile it without --strip-width/--line-buffer-budget")
    steps = []
    for u in pipeline.units:
        step = kind_of(u).column_step(u)
        if step is PER_PIXEL:
            continue  # columns map one to one
        if step is None:
            raise TilingError(f"layer {u.name} is a {u.kind} unit that needs the whole frame; tiling covers fully "
                              "convolutional networks (convolutions, depthwise convolutions and max-pools "
                              "up to a feature-map output), so this model cannot be tiled: compile it "
                              "without --strip-width/--line-buffer-budget")
        steps.append(step)
    out = pipeline.out_stream.shape
    if len(out) != 3:
        raise TilingError(f"the pipeline's output is not a feature map (shape {tuple(out)}); tiling "
                          "needs a fully convolutional network")
    return steps


def total_stride(steps: list[ColumnStep]) -> int:
    return math.prod(s.stride for s in steps)


def receptive_field(steps: list[ColumnStep]) -> int:
    """Input columns one output column depends on."""
    rf, jump = 1, 1
    for s in steps:
        rf += (s.kernel - 1) * jump
        jump *= s.stride
    return rf


def strip_columns(steps: list[ColumnStep], width: int, strip_width: int, start: int) -> tuple[int, np.ndarray]:
    """For the strip of input columns ``start .. start+strip_width-1`` of a ``width``-column
    frame: ``(offset, right)``, where local output column ``j`` is the full map's column
    ``offset + j`` and ``right[j]`` says whether the strip computes it from real data."""
    ok = np.ones(strip_width, dtype=bool)
    off, wl, wg = start, strip_width, width
    for s in steps:
        if off % s.stride:
            raise TilingError(f"strip start {start} is not a multiple of the column stride")
        wl_out, wg_out = s.out_width(wl), s.out_width(wg)
        if wl_out < 1:
            return off // s.stride, np.zeros(0, dtype=bool)
        new = np.ones(wl_out, dtype=bool)
        j = np.arange(wl_out)
        for t in range(s.kernel):
            i = j * s.stride - s.pad_left + t
            inside = (i >= 0) & (i < wl)
            g = off + i
            frame_pad = (g < 0) | (g >= wg)
            good = np.where(inside, ok[np.clip(i, 0, wl - 1)], frame_pad)
            new &= good
        ok, off, wl, wg = new, off // s.stride, wl_out, wg_out
    return off, ok


@dataclass
class TilePlan:
    """Where the strips of one frame start and which of their output columns are kept.

    ``starts[i]`` is strip ``i``'s first input column; its local output columns
    ``keep[i][0] .. keep[i][1]-1`` become the full map's columns from ``place[i]`` on.
    """

    width: int
    strip_width: int
    out_width: int
    strip_out_width: int
    starts: list
    keep: list
    place: list
    stride: int = 1
    receptive_field: int = 1
    summary: dict = field(default_factory=dict)  # cost against the untiled design (tiling_summary)

    @property
    def strips(self) -> int:
        return len(self.starts)

    def cut(self, x: np.ndarray) -> np.ndarray:
        """``(frames, H, W, C)`` -> ``(frames * strips, H, strip_width, C)``, frame by frame."""
        x = np.asarray(x)
        if x.shape[2] != self.width:
            raise TilingError(f"input frames are {x.shape[2]} columns wide; this build's strips cut "
                              f"frames of {self.width} columns")
        parts = [x[:, :, a:a + self.strip_width] for a in self.starts]
        return np.stack(parts, axis=1).reshape((-1,) + (x.shape[1], self.strip_width) + x.shape[3:])

    def assemble(self, y: np.ndarray) -> np.ndarray:
        """``(frames * strips, Ho, strip_out_width, C)`` -> ``(frames, Ho, out_width, C)``."""
        y = np.asarray(y)
        n = y.shape[0] // self.strips
        y = y.reshape((n, self.strips) + y.shape[1:])
        out = np.zeros((n, y.shape[2], self.out_width) + y.shape[4:], dtype=y.dtype)
        for i, ((lo, hi), g) in enumerate(zip(self.keep, self.place)):
            out[:, :, g:g + hi - lo] = y[:, i, :, lo:hi]
        return out

    def to_json(self) -> dict:
        return {k: getattr(self, k) for k in ("width", "strip_width", "out_width", "strip_out_width",
                                              "starts", "keep", "place", "stride", "receptive_field",
                                              "summary")}

    @staticmethod
    def from_json(d: dict) -> "TilePlan":
        return TilePlan(int(d["width"]), int(d["strip_width"]), int(d["out_width"]),
                        int(d["strip_out_width"]), [int(a) for a in d["starts"]],
                        [tuple(int(v) for v in k) for k in d["keep"]], [int(g) for g in d["place"]],
                        int(d.get("stride", 1)), int(d.get("receptive_field", 1)), dict(d.get("summary", {})))


def valid_strip_widths(pipeline: DataflowGraph) -> list[int]:
    """Strip widths whose strips align with the column stride and end on the frame's edge."""
    steps = column_steps(pipeline)
    w, s = int(pipeline.in_stream.shape[1]), total_stride(steps)
    return [ws for ws in range(1, w + 1) if (w - ws) % s == 0]


def _geometry(pipeline: DataflowGraph) -> tuple[list[ColumnStep], int, int, int]:
    """(column steps, frame width, output width, total column stride)."""
    steps = column_steps(pipeline)
    w = int(pipeline.in_stream.shape[1])
    wout = w
    for st in steps:
        wout = st.out_width(wout)
    return steps, w, wout, total_stride(steps)


def _cover(steps: list[ColumnStep], w: int, wout: int, s: int, ws: int) -> tuple[list, int] | int:
    """Strips of ``ws`` columns covering the ``wout`` output columns: ``([(start, lo, hi, place),
    ...], strip output width)``, or the first output column no strip computes from real data."""
    strips, c, strip_out = [], 0, 0
    while c < wout:
        a = min(w - ws, c * s)
        while a >= 0:
            off, ok = strip_columns(steps, w, ws, a)
            strip_out = len(ok)
            lc = c - off
            if 0 <= lc < len(ok) and ok[lc]:
                hi = lc
                while hi + 1 < len(ok) and ok[hi + 1]:
                    hi += 1
                strips.append((a, lc, hi + 1, c))
                c += hi + 1 - lc
                break
            a -= s
        else:
            return c
    return strips, strip_out


def plan_strips(pipeline: DataflowGraph, strip_width: int) -> TilePlan:
    """The strips of ``strip_width`` input columns that cover the output (fewest strips, each
    starting as far right as still leaves no gap)."""
    steps, w, wout, s = _geometry(pipeline)
    rf = receptive_field(steps)
    ws = int(strip_width)
    if ws < 1 or ws > w:
        raise TilingError(f"strip width {ws} is outside 1..{w} (the frame is {w} columns wide)")
    if (w - ws) % s:
        near = [v for v in valid_strip_widths(pipeline) if abs(v - ws) <= 2 * s]
        raise TilingError(f"strip width {ws}: strips must start on multiples of the network's column "
                          f"stride {s} and the last one end on column {w}, so the width must be "
                          f"{w} minus a multiple of {s}; nearby widths: {near}")
    got = _cover(steps, w, wout, s, ws)
    if isinstance(got, int):
        raise TilingError(f"strips of {ws} columns are too narrow: no strip computes output column "
                          f"{got} from real data (the receptive field is {rf} input columns); "
                          f"use at least {min_strip_width(pipeline)} columns")
    strips, strip_out = got
    return TilePlan(w, ws, wout, int(strip_out), [x[0] for x in strips], [(x[1], x[2]) for x in strips],
                    [x[3] for x in strips], s, rf)


def min_strip_width(pipeline: DataflowGraph) -> int:
    """The narrowest strip width that covers the output."""
    steps, w, wout, s = _geometry(pipeline)
    for ws in valid_strip_widths(pipeline):
        if not isinstance(_cover(steps, w, wout, s, ws), int):
            return ws
    return w


def strip_pipeline(pipeline: DataflowGraph, strip_width: int, size: bool = True) -> DataflowGraph:
    """The same units and folding, built for frames ``strip_width`` columns wide; FIFOs sized for
    it (``size``)."""
    column_steps(pipeline)
    units, w = [], int(strip_width)
    for u in pipeline.units:
        u = kind_of(u).for_strip(u, w)
        w = u.output_streams()[0].shape[1]
        units.append(u)
    p = pipeline.with_units(units)
    p.check()
    if size:
        p = size_fifos(p)
    return p


def line_buffers(pipeline: DataflowGraph) -> list[dict]:
    """Line-buffer memory of each window and pool unit: bits and BRAM18 blocks."""
    rows = []
    for u in pipeline.units:
        k = kind_of(u)
        if k.line_buffer:
            mems = k.memories(u)
            rows.append({"layer": u.name, "kind": u.kind, "bits": int(sum(m.bits for m in mems)),
                         "bram18": int(sum(m.bram18 for m in mems))})
    return rows


def tiling_summary(pipeline: DataflowGraph, plan: TilePlan, strips: DataflowGraph | None = None) -> dict:
    """What tiling ``pipeline`` by ``plan`` costs and saves: line-buffer bits per layer, columns
    processed per frame, cycles per frame (``strips * strip_cycles``)."""
    strips = strips or strip_pipeline(pipeline, plan.strip_width, size=False)
    full_lb, tiled_lb = line_buffers(pipeline), line_buffers(strips)
    full_cyc, _ = expected_pace(pipeline)
    strip_cyc, bottleneck = expected_pace(strips)
    layers = [{"layer": f["layer"], "kind": f["kind"], "untiled_bits": f["bits"], "tiled_bits": t["bits"],
               "untiled_bram18": f["bram18"], "tiled_bram18": t["bram18"]}
              for f, t in zip(full_lb, tiled_lb)]
    ub, tb = sum(f["bits"] for f in full_lb), sum(t["bits"] for t in tiled_lb)
    cols = plan.strips * plan.strip_width
    return {
        "strip_width": plan.strip_width, "strips": plan.strips, "frame_width": plan.width,
        "receptive_field": plan.receptive_field, "column_stride": plan.stride,
        "columns_per_frame": cols, "halo_recompute": round(cols / plan.width - 1, 4),
        "line_buffer_bits": {"untiled": ub, "tiled": tb, "saved": ub - tb},
        "line_buffer_bram18": {"untiled": sum(f["bram18"] for f in full_lb),
                               "tiled": sum(t["bram18"] for t in tiled_lb)},
        "cycles_per_frame": {"untiled": int(full_cyc), "tiled": int(plan.strips * strip_cyc),
                             "per_strip": int(strip_cyc), "bottleneck": bottleneck,
                             "extra": round(plan.strips * strip_cyc / full_cyc - 1, 4)},
        "layers": layers,
    }


def tiling_options(pipeline: DataflowGraph, widths: list[int] | None = None) -> list[dict]:
    """:func:`tiling_summary` for each strip width that covers the output (all valid widths, or
    ``widths``), narrowest first."""
    out = []
    ws_min = min_strip_width(pipeline)
    for ws in widths or [w for w in valid_strip_widths(pipeline) if w >= ws_min]:
        try:
            plan = plan_strips(pipeline, ws)
        except TilingError:
            continue
        out.append(tiling_summary(pipeline, plan))
    return out


def choose_strip_width(pipeline: DataflowGraph, budget_bits: int) -> int:
    """The strip width whose line buffers fit ``budget_bits`` with the fewest columns streamed per
    frame (the least halo recomputation; a tie goes to the smaller line buffers)."""
    ws_min = min_strip_width(pipeline)
    best = None  # (columns per frame, bits, width)
    for ws in [w for w in valid_strip_widths(pipeline) if w >= ws_min]:
        bits = sum(b["bits"] for b in line_buffers(strip_pipeline(pipeline, ws, size=False)))
        if bits > budget_bits:
            continue
        key = (plan_strips(pipeline, ws).strips * ws, bits, ws)
        best = key if best is None or key < best else best
    if best is None:
        bits_min = sum(b["bits"] for b in line_buffers(strip_pipeline(pipeline, ws_min, size=False)))
        raise TilingError(f"no strip width fits a line-buffer budget of {budget_bits} bits: the "
                          f"narrowest strip that covers the output ({ws_min} columns) needs "
                          f"{bits_min} bits; raise the budget")
    return best[2]


def tile(pipeline: DataflowGraph, strip_width: int | None = None, budget_bits: int | None = None
         ) -> tuple[DataflowGraph, TilePlan]:
    """Tile a folded pipeline: ``(strip pipeline, plan)`` for ``strip_width`` columns, or for
    the strip width :func:`choose_strip_width` picks for ``budget_bits``."""
    if strip_width is None:
        if budget_bits is None:
            raise TilingError("tiling needs a strip width or a line-buffer budget")
        strip_width = choose_strip_width(pipeline, int(budget_bits))
    plan = plan_strips(pipeline, strip_width)
    strips = strip_pipeline(pipeline, plan.strip_width)
    plan.summary = tiling_summary(pipeline, plan, strips)
    return strips, plan

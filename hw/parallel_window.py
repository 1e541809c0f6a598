"""Whole-window (parallel) sliding-window generator: one pixel in, one whole window out per beat.

:class:`ParallelWindowHW` implements the whole-window kind,
:class:`streamfold.compiler.ir.WholeWindowUnit` (``simd == kh*kw*C``): input beats are whole
pixels (``C`` elements), output beats whole windows (``kh*kw*C`` elements, ``(ky, kx, c)`` order, element 0 in the LSBs), one
per output pixel ``(oy, ox)`` in row-major order. Padded positions carry
``dtype.encode(pad_value)``.

Scan
----
The frame is scanned in padded ("virtual") coordinates, one *step* per clock, rows
``vy0 .. vy1`` by columns ``vx0 .. vx1`` (:func:`streamfold.compiler.memory.parallel_geometry`).
A step at ``(vy, vx)``:

* takes one input pixel if ``(vy, vx)`` is an image position (``pt <= vy < pt+H``,
  ``pl <= vx < pl+W``), otherwise none;
* builds the column of rows ``vy-kh+1 .. vy`` at ``vx``: the ``kh-1`` upper rows from the line
  buffer, the bottom one from the input; an element whose row or column is padding is the pad
  word;
* forms the window: the ``kw-1`` previous columns, kept in a ``kh x (kw-1)`` history register
  (read as padding at a row's first step when the left padding needs it), and this column;
  the history then shifts by one column (the oldest drops out);
* emits the window into the output register when ``(vy, vx)`` is the bottom-right corner of an
  output window: ``vy = oy*sh + kh-1``, ``vx = ox*sw + kw-1``.

Registers: ``kh*(kw-1)*C*bits`` of history plus the ``kh*kw*C*bits`` output register (and as
many again in the skid register, with ``skid``). The
separate output register lets the steps that emit nothing (the first ``kh-1`` rows, the start of
every row, every other step for stride 2) go on while a window waits for a slow consumer (e.g. a
width converter splitting it for an MVAU with ``SF > 1``).

Line buffer
-----------
One ``amaranth.lib.memory.Memory`` of ``W`` words (image columns only), each word the
``kh-1`` pixels above the current row at that column (``(kh-1)*C*bits``; none when ``kh == 1``).
A step at image column ``x`` writes back the word shifted by one row with the new pixel at the
bottom. The read is synchronous and one step ahead: the read address is the image column of the
next image-column step, advanced in the clock its predecessor fires; the read port is transparent
to the write port (``W == 1`` reads the word written in the same clock). Rows above the frame's
first scanned row are never read: they are padding (``vy0 <= pt``), masked by row.

Handshake
---------
A step fires when, if it emits, the output register is free or being read
(``~o.valid | o.ready``) and, if it takes a pixel, ``i.valid``; ``i.ready`` is that condition for
a pixel-taking step. With ``skid`` (a timing knob) an emitting step waits only for the skid
register to be empty: a window formed while the output register is held waits there, and moves
to the output register when that frees. ``i.ready`` then depends on registers alone, which cuts
the combinational ready chain from the consumer through this unit to its producer, and the
consumer's ready reaches only the output and skid registers' enables. Padding steps
before the frame's first pixel also wait for ``i.valid`` (without taking the pixel), so no window
of a frame leaves before that frame's input has begun. Fully
back-pressured; at full rate one step per clock, so a frame takes ``steps`` clocks
(:func:`streamfold.compiler.cost.swg_cycles`): ``H*W`` for an unpadded convolution.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from streamfold.compiler.ir import WholeWindowUnit
from streamfold.compiler.memory import ParallelWindowGeometry, parallel_geometry
from streamfold.compiler.units.whole_window import SKID_FANOUT

from .sliding_window import check_window


def _all(conds):
    """AND of Amaranth values; ``None`` when ``conds`` is empty (always true)."""
    expr = None
    for c in conds:
        expr = c if expr is None else expr & c
    return expr


class ParallelWindowHW(wiring.Component):
    """Whole-window sliding-window generator (see the module docstring).

    Members
    -------
    i : In(stream.Signature(unsigned(C * bits)))
    o : Out(stream.Signature(unsigned(kh * kw * C * bits)))

    Attributes
    ----------
    geometry : ParallelWindowGeometry
    """

    def __init__(self, unit: WholeWindowUnit):
        check_window(unit)
        if not isinstance(unit, WholeWindowUnit):
            raise ValueError(f"layer {unit.name}: the whole-window generator needs SIMD = kh*kw*C = "
                             f"{unit.window_elems}, got {unit.simd}")
        self.unit = unit
        self.geometry: ParallelWindowGeometry = parallel_geometry(unit)
        super().__init__({
            "i": In(stream.Signature(unsigned(unit.in_stream.beat_bits))),
            "o": Out(stream.Signature(unsigned(unit.out_stream.beat_bits))),
        })

    def pad_word(self) -> int:
        """One pixel of padding: ``C`` lanes of ``dtype.encode(pad_value)``."""
        u = self.unit
        code = int(u.dtype.encode(u.pad_value))
        return sum(code << (s * u.dtype.bits) for s in range(u.in_shape[2]))

    def elaborate(self, platform):
        u, g = self.unit, self.geometry
        m = Module()
        H, W, C = g.h, g.w, g.c
        kh, kw, sh, sw = g.kh, g.kw, g.sh, g.sw
        pt, pl, _pb, _pr = g.pads
        (vy0, vy1), (vx0, vx1) = g.rows, g.cols
        pix = C * u.dtype.bits
        pad = Const(self.pad_word(), pix)

        # ------------------------------------------------------------------ scan counters
        vy = Signal(range(vy1 + 1), name="vy", init=vy0)
        vx = Signal(range(vx1 + 1), name="vx", init=vx0)
        row_first = vx == vx0
        row_last = vx == vx1
        frame_last = vy == vy1

        def phase(n_stride: int, first: int, k: int, name: str):
            """Counter of ``(v - (k-1)) mod stride`` along a scanned axis (None for stride 1)."""
            if n_stride == 1:
                return None, 0
            init = (first - (k - 1)) % n_stride
            return Signal(range(n_stride), name=name, init=init), init

        phy, phy0 = phase(sh, vy0, kh, "phase_y")
        phx, phx0 = phase(sw, vx0, kw, "phase_x")

        # constant-folded range tests: v in [lo, hi] for v scanned over [first, last]
        def in_range(v, lo: int, hi: int, first: int, last: int):
            conds = []
            if lo > first:
                conds.append(v >= lo)
            if hi < last:
                conds.append(v <= hi)
            if lo > last or hi < first:
                return Const(0, 1)
            return _all(conds)

        def truth(expr):
            return Const(1, 1) if expr is None else expr

        # rows of the incoming column: slot j holds virtual row vy-(kh-1)+j
        row_ok = [in_range(vy, pt + kh - 1 - j, pt + H - 1 + kh - 1 - j, vy0, vy1) for j in range(kh)]
        col_img = in_range(vx, pl, pl + W - 1, vx0, vx1)
        # does padding ever reach an emitted window? (if not, skip the masks)
        emit_vy = [v for v in range(vy0, vy1 + 1) if g.emit_row(v)]
        emit_vx = [v for v in range(vx0, vx1 + 1) if g.emit_col(v)]
        row_mask_needed = [any(not g.image_row(v - (kh - 1) + j) for v in emit_vy) for j in range(kh)]
        col_mask_needed = any(not g.image_col(v - dx) for v in emit_vx for dx in range(kw))

        need_in = truth(_all([c for c in (row_ok[kh - 1], col_img) if c is not None]))

        emit_conds = [in_range(vy, kh - 1, g.last_row, vy0, vy1), in_range(vx, kw - 1, g.last_col, vx0, vx1)]
        if phy is not None:
            emit_conds.append(phy == 0)
        if phx is not None:
            emit_conds.append(phx == 0)
        emit = truth(_all([c for c in emit_conds if c is not None]))

        # steps before the frame's first pixel (top/left padding) wait for that pixel to be
        # offered (without taking it): no output of a frame leaves before its input starts
        pre_conds = []
        if pt > vy0:
            pre_conds.append(vy < pt)
        if pl > vx0:
            pre_conds.append((vy == pt) & (vx < pl))
        wait_in = need_in
        for c_ in pre_conds:
            wait_in = wait_in | c_

        # ------------------------------------------------------------------ handshake
        pending = Signal(name="out_valid")
        adv = Signal(name="adv")
        fire = Signal(name="fire")
        skid_valid = Signal(name="skid_valid")
        m.d.comb += [
            # with a skid register the step waits on a register, never on the consumer's ready
            adv.eq(~emit | (~skid_valid if u.skid else ~pending | self.o.ready)),
            fire.eq(adv & (self.i.valid | ~wait_in)),
            self.i.ready.eq(adv & need_in),
        ]

        # ------------------------------------------------------------------ line buffer
        column = []  # kh pixels, top row first
        img_fire = fire & truth(col_img)
        new_px = self.i.payload
        if kh > 1:
            lbw = g.line_buffer_width(u.dtype.bits)
            mem = m.submodules.line_buffer = Memory(shape=unsigned(lbw), depth=max(W, 2), init=[])
            wport = mem.write_port()
            rport = mem.read_port(transparent_for=(wport,))
            xi = Signal(range(max(W, 2)), name="lb_col")
            xi_next = Mux(xi == W - 1, 0, xi + 1) if W > 1 else Const(0, 1)
            m.d.comb += [rport.addr.eq(Mux(img_fire, xi_next, xi)), rport.en.eq(1)]
            with m.If(img_fire):
                m.d.sync += xi.eq(xi_next)
            above = [rport.data[j * pix:(j + 1) * pix] for j in range(kh - 1)]
            m.d.comb += [wport.addr.eq(xi), wport.en.eq(img_fire),
                         wport.data.eq(Cat(*above[1:], new_px))]
            for j in range(kh - 1):
                conds = []
                if row_mask_needed[j] and row_ok[j] is not None:
                    conds.append(row_ok[j])
                if col_mask_needed and col_img is not None:
                    conds.append(col_img)
                ok = _all(conds)
                column.append(above[j] if ok is None else Mux(ok, above[j], pad))
        bottom_ok = []
        if (row_mask_needed[kh - 1] or col_mask_needed) and not isinstance(need_in, Const):
            bottom_ok.append(need_in)
        column.append(Mux(bottom_ok[0], new_px, pad) if bottom_ok else new_px)

        # ------------------------------------------------------------------ window, output
        hist = [[Signal(pix, name=f"hist_{ky}_{kx}", init=self.pad_word()) for kx in range(kw - 1)]
                for ky in range(kh)]
        clear_left = vx0 > 0 and kw > 1  # older columns of a row's first step are padding
        window = [[(Mux(row_first, pad, hist[ky][kx]) if clear_left else hist[ky][kx])
                   for kx in range(kw - 1)] + [column[ky]] for ky in range(kh)]
        with m.If(fire):
            for ky in range(kh):
                for kx in range(kw - 1):
                    m.d.sync += hist[ky][kx].eq(window[ky][kx + 1])
        out = Signal(self.unit.out_stream.beat_bits, name="out_window")
        formed = Cat(*[window[ky][kx] for ky in range(kh) for kx in range(kw)])
        m.d.comb += [self.o.valid.eq(pending), self.o.payload.eq(out)]
        if not u.skid:
            with m.If(fire & emit):
                m.d.sync += [out.eq(formed), pending.eq(1)]
            with m.Elif(self.o.ready):
                m.d.sync += pending.eq(0)
        else:
            # a window formed while the output register is held goes to the skid register (empty
            # then: an emitting step waits for it); it moves on when the output register frees.
            # The two flags are copied once per SKID_FANOUT window bits, each copy kept apart in
            # synthesis ("fanout_copy"), so no one flip-flop drives the whole window's
            # multiplexers and enables; the copies hold the same values as the flags
            bits = self.unit.out_stream.beat_bits
            skid = Signal(bits, name="skid_window")
            groups = range(-(-bits // SKID_FANOUT))
            sv = [Signal(name=f"skid_valid_fanout_copy_{k}", attrs={"keep": 1}) for k in groups]
            pv = [Signal(name=f"out_valid_fanout_copy_{k}", attrs={"keep": 1}) for k in groups]
            new = Signal(name="window_new")  # an emitting step that fires once the skid is empty
            m.d.comb += new.eq(emit & (self.i.valid | ~wait_in))
            for p_, s_ in [(pending, skid_valid)] + list(zip(pv, sv)):
                with m.If(~p_ | self.o.ready):
                    with m.If(s_):
                        m.d.sync += [p_.eq(1), s_.eq(0)]
                    with m.Elif(new):
                        m.d.sync += p_.eq(1)
                    with m.Else():
                        m.d.sync += p_.eq(0)
                with m.Elif(new & ~s_):
                    m.d.sync += s_.eq(1)
            for k in groups:
                sl = slice(k * SKID_FANOUT, min(bits, (k + 1) * SKID_FANOUT))
                with m.If((~pv[k] | self.o.ready) & (sv[k] | new)):
                    m.d.sync += out[sl].eq(Mux(sv[k], skid[sl], formed[sl]))
                with m.If(~sv[k]):  # an empty skid register follows the window (read once full)
                    m.d.sync += skid[sl].eq(formed[sl])

        # ------------------------------------------------------------------ scan
        with m.If(fire):
            with m.If(row_last):
                m.d.sync += vx.eq(vx0)
                if phx is not None:
                    m.d.sync += phx.eq(phx0)
                with m.If(frame_last):
                    m.d.sync += vy.eq(vy0)
                    if phy is not None:
                        m.d.sync += phy.eq(phy0)
                with m.Else():
                    m.d.sync += vy.eq(vy + 1)
                    if phy is not None:
                        m.d.sync += phy.eq(Mux(phy == sh - 1, 0, phy + 1))
            with m.Else():
                m.d.sync += vx.eq(vx + 1)
                if phx is not None:
                    m.d.sync += phx.eq(Mux(phx == sw - 1, 0, phx + 1))
        return m

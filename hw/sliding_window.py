"""Sliding-window generator (FINN's ConvolutionInputGenerator) with a circular line buffer.

:class:`SlidingWindowHW` implements :class:`streamfold.compiler.ir.SlidingWindowUnit`: input frames
``(H, W, C)`` arrive pixel by pixel, ``simd`` channels per beat; for every output pixel
``(oy, ox)`` (row-major) it emits the ``kh x kw`` window, ``C/simd`` beats per kernel position,
in ``(ky, kx, c)`` order, or ``(c // simd, ky, kx, c % simd)`` when ``depthwise``. Padded
positions carry ``dtype.encode(pad_value)`` in every lane.

Buffer
------
One ``amaranth.lib.memory.Memory`` (one write port, one synchronous read port, so it maps to block
RAM) of ``D * CF`` words of ``simd * bits`` (``CF = C/simd``): input pixel ``P`` (linear index
``y*W + x``, counted on across frames) lives at pixel slot ``P mod D``, its channel fold ``cf`` at
word ``(P mod D)*CF + cf``. ``D`` is :func:`streamfold.compiler.memory.window_geometry`'s
``buffer_pixels`` (about ``(kh-1)`` input rows plus a few pixels; one more row for stride 2),
never a whole frame. The module docstring of :mod:`streamfold.compiler.memory` defines ``L(n)``
(last pixel window ``n`` needs) and ``F(n)`` (first pixel window ``n`` or a later one needs).

Writer and reader
-----------------
The writer (input side) and the reader (output side) run concurrently, one word / one beat per
clock:

* writer: accepts an input beat while its pixel ``P`` satisfies ``P < F(n) + D`` for the window
  ``n`` the reader is on (frames are told apart by 2-bit frame counters on both sides); its
  ``i.ready`` never depends on ``o.ready``, and ``L(n)`` and ``F(n) + D`` are registers written
  when the reader moves to a window, so ``i.ready`` is a compare of registers (CNV-W1A1 on ECP5
  had its critical path through the adders that formed them);
* reader: emits the beats of window ``n`` once the writer is past pixel ``L(n)``; read addresses
  and padding come from counters (no multiplier, no division), the memory read is synchronous
  and the output beat is ``Mux(pad, pad_word, read_data)``.

The whole-window kind (``simd == kh*kw*C``, :mod:`streamfold.compiler.units.whole_window`) has its
own generator, :class:`streamfold.hw.parallel_window.ParallelWindowHW`: line buffers plus a
``kh x kw`` register window, one pixel in and one window out per clock.

Timing (exact, verified in Verilator; see :func:`streamfold.compiler.units.sliding_window.cycles`): at steady
state the output emits one beat per clock inside a frame; per frame the unit needs
``max(out_beats + fill, in_beats)`` clocks, where ``fill`` is the time to bring in the part of a
frame's first window that the buffer could not take while the previous frame's last windows were
being read out (zero for "same"-padded stride-1 convolutions).
"""
from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from streamfold.compiler.ir import WindowUnit
from streamfold.compiler.memory import WindowGeometry, window_geometry



def check_window(unit: WindowUnit) -> None:
    """The checks both window generators make of their IR unit: legal fold, (H, W, C) input,
    non-negative pads, positive stride and kernel, a pad value of the datatype."""
    unit.check_folding()
    if len(unit.in_shape) != 3:
        raise ValueError(f"layer {unit.name}: in_shape must be (H, W, C), got {unit.in_shape}")
    if any(int(p) < 0 for p in unit.pads) or min(unit.stride) < 1 or min(unit.kernel) < 1:
        raise ValueError(f"layer {unit.name}: bad window geometry kernel={unit.kernel} "
                         f"stride={unit.stride} pads={unit.pads}")
    if any(p for p in unit.pads) and not unit.dtype.contains([unit.pad_value]):
        raise ValueError(f"layer {unit.name}: pad value {unit.pad_value} is not a "
                         f"{unit.dtype.name} value")


def _counter(n: int, name: str):
    """A counter register over ``range(n)``, or the constant 0 when ``n == 1``."""
    return Signal(range(n), name=name) if n > 1 else Const(0, 1)


def _inc(c) -> list:
    """``c.eq(c + 1)`` for a counter register, nothing for a constant counter."""
    return [c.eq(c + 1)] if isinstance(c, Signal) else []


def _clip(m_value, lo_val: int, hi_val: int, vmin: int, vmax: int):
    """``clip(value, lo_val, hi_val)`` where ``value`` is known to lie in ``[vmin, vmax]``."""
    v = m_value
    if vmin < lo_val:
        v = Mux(v < lo_val, lo_val, v)
    if vmax > hi_val:
        v = Mux(v > hi_val, hi_val, v)
    return v


class SlidingWindowHW(wiring.Component):
    """Sliding-window generator (see the module docstring).

    Members
    -------
    i : In(stream.Signature(unsigned(simd * bits)))
    o : Out(stream.Signature(unsigned(simd * bits)))

    Attributes
    ----------
    geometry : WindowGeometry
        Sizes derived from the unit (buffer depth ``buffer_pixels``/``buffer_words`` included).
    """

    def __init__(self, unit: WindowUnit):
        check_window(unit)
        self.unit = unit
        self.geometry: WindowGeometry = window_geometry(unit)
        bits = unit.in_stream.beat_bits
        super().__init__({
            "i": In(stream.Signature(unsigned(bits))),
            "o": Out(stream.Signature(unsigned(bits))),
        })

    def pad_word(self) -> int:
        u = self.unit
        code = int(u.dtype.encode(u.pad_value))
        return sum(code << (s * u.dtype.bits) for s in range(u.simd))

    def elaborate(self, platform):
        u, g = self.unit, self.geometry
        m = Module()
        H, W, CF = g.h, g.w, g.cf
        kh, kw, sh, sw = g.kh, g.kw, g.sh, g.sw
        pt, pl, _pb, _pr = g.pads
        OH, OW = g.oh, g.ow
        HW, D = g.hw, g.buffer_pixels
        M = g.buffer_words
        width = u.in_stream.beat_bits

        def addmod(x, c: int):
            """(x + c) mod M for x in [0, M)."""
            c %= M
            if c == 0:
                return x
            s = x + c
            return Mux(s >= M, s - M, s)

        mem = m.submodules.buffer = Memory(shape=unsigned(width), depth=max(M, 2), init=[])
        wport = mem.write_port()
        rport = mem.read_port()

        # ------------------------------------------------------------------ reader state
        # window loops, outer -> inner: (name, count, address stride in words)
        if u.depthwise:
            loops = [("cf", CF, 1), ("ky", kh, W * CF), ("kx", kw, CF)]
        else:
            loops = [("ky", kh, W * CF), ("kx", kw, CF), ("cf", CF, 1)]
        cnt = [_counter(n, f"win_{name}") for name, n, _ in loops]
        last = [(c == n - 1) if n > 1 else Const(1, 1) for c, (_, n, _) in zip(cnt, loops)]
        ky = cnt[[lp[0] for lp in loops].index("ky")]
        kx = cnt[[lp[0] for lp in loops].index("kx")]

        ox, oy = _counter(OW, "ox"), _counter(OH, "oy")
        ox_last = (ox == OW - 1) if OW > 1 else Const(1, 1)
        oy_last = (oy == OH - 1) if OH > 1 else Const(1, 1)
        span = max(H, W) + max(kh, kw) + max(sh, sw) + max(g.pads) + 2
        xbase = Signal(signed(span.bit_length() + 1), name="xbase", init=-pl)
        ybase = Signal(signed(span.bit_length() + 1), name="ybase", init=-pt)
        xb_lo, xb_hi = -pl, (OW - 1) * sw - pl
        yb_lo, yb_hi = -pt, (OH - 1) * sh - pt

        # row-level window bounds (ymin/ymax clipped to the image), kept with their multiples of W
        def ymin_of(yb):
            return min(max(yb, 0), H - 1)

        def ymax_of(yb):
            return min(max(yb + kh - 1, 0), H - 1)

        def hold_of(yb):  # only used for the first row
            return OH > 1 and ymin_of(yb + sh) == ymin_of(yb)

        ymin = Signal(range(max(H, 2)), name="ymin", init=ymin_of(-pt))
        ymax = Signal(range(max(H, 2)), name="ymax", init=ymax_of(-pt))
        yminw = Signal(range(max(HW, 2)), name="yminw", init=ymin_of(-pt) * W)
        ymaxw = Signal(range(max(HW, 2)), name="ymaxw", init=ymax_of(-pt) * W)
        hold = Signal(name="hold", init=hold_of(-pt))

        # L and F + D are registers, each written with the window bounds it follows, so the
        # writer's and reader's conditions compare registers (no adder before i.ready)
        def f_plus_d(xb, yminw_v, hold_v, xb_hi_v: int):
            xmin = _clip(xb, 0, W - 1, xb_lo, xb_hi_v)
            return Mux(hold_v, yminw_v, yminw_v + xmin) + D

        def last_of(xb, ymaxw_v, xb_hi_v: int):
            return ymaxw_v + _clip(xb + (kw - 1), 0, W - 1, xb_lo + kw - 1, xb_hi_v + kw - 1)

        xmin0, xmax0 = min(max(-pl, 0), W - 1), min(max(-pl + kw - 1, 0), W - 1)
        f0 = ymin_of(-pt) * W + (0 if hold_of(-pt) else xmin0) + D
        l0 = ymax_of(-pt) * W + xmax0
        big_l = Signal(range(max(HW, 2)), name="L", init=l0)
        big_fd = Signal(range(HW + D + 1), name="F_plus_D", init=f0)

        # addresses (words, mod M): current beat, run starts of the two outer loops, window,
        # first window of the output row, first window of the frame
        a0 = (-(pt * W + pl) * CF) % M
        addr = Signal(range(max(M, 2)), name="raddr", init=a0)
        run1 = Signal(range(max(M, 2)), name="run1", init=a0)
        run2 = Signal(range(max(M, 2)), name="run2", init=a0)
        waddr_win = Signal(range(max(M, 2)), name="win_addr", init=a0)
        waddr_row = Signal(range(max(M, 2)), name="row_addr", init=a0)
        waddr_frame = Signal(range(max(M, 2)), name="frame_addr", init=a0)
        rframe = Signal(2, name="rframe")

        # ------------------------------------------------------------------ writer state
        wcf = _counter(CF, "wcf")
        wlin = Signal(range(max(HW, 2)), name="wlin")
        wframe = Signal(2, name="wframe")
        waddr = Signal(range(max(M, 2)), name="waddr")

        diff = Signal(2, name="frame_diff")
        m.d.comb += diff.eq(wframe - rframe)
        avail = Signal(name="avail")
        can_write = Signal(name="can_write")
        m.d.comb += [
            avail.eq((diff == 1) | ((diff == 0) & (wlin > big_l))),
            can_write.eq((diff == 3) | ((diff == 0) & (wlin < big_fd))
                         | ((diff == 1) & (wlin + HW < big_fd))),
        ]

        # writer
        wfire = Signal()
        m.d.comb += [
            self.i.ready.eq(can_write),
            wfire.eq(self.i.valid & can_write),
            wport.addr.eq(waddr), wport.data.eq(self.i.payload), wport.en.eq(wfire),
        ]
        wcf_last = (wcf == CF - 1) if CF > 1 else Const(1, 1)
        with m.If(wfire):
            m.d.sync += waddr.eq(Mux(waddr == M - 1, 0, waddr + 1) if M > 1 else 0)
            if CF > 1:
                m.d.sync += wcf.eq(Mux(wcf_last, 0, wcf + 1))
            with m.If(wcf_last):
                with m.If(wlin == HW - 1):
                    m.d.sync += [wlin.eq(0), wframe.eq(wframe + 1)]
                with m.Else():
                    m.d.sync += wlin.eq(wlin + 1)

        # ------------------------------------------------------------------ reader
        v1 = Signal(name="out_valid")
        en = Signal(name="en")
        go = Signal(name="go")
        m.d.comb += [en.eq(~v1 | self.o.ready), go.eq(en & avail)]

        # padding of the current beat
        pad = Const(0, 1)
        conds = []
        y = ybase + ky
        x = xbase + kx
        if pt > 0:
            conds.append(y < 0)
        if yb_hi + kh - 1 > H - 1:
            conds.append(y >= H)
        if pl > 0:
            conds.append(x < 0)
        if xb_hi + kw - 1 > W - 1:
            conds.append(x >= W)
        if conds:
            pad = Signal(name="pad")
            expr = conds[0]
            for c_ in conds[1:]:
                expr = expr | c_
            m.d.comb += pad.eq(expr)

        m.d.comb += [rport.addr.eq(addr), rport.en.eq(en)]
        pad1 = Signal(name="out_pad")
        with m.If(en):
            m.d.sync += [v1.eq(avail), pad1.eq(pad)]
        payload = rport.data
        if conds:
            payload = Mux(pad1, Const(self.pad_word(), width), rport.data)
        m.d.comb += [self.o.valid.eq(v1), self.o.payload.eq(payload)]

        # counters and addresses
        s0, s1, s2 = (lp[2] for lp in loops)

        def restart_window(new_addr):
            """Start a window whose first word is at new_addr (an Amaranth value)."""
            stmts = [addr.eq(new_addr), run1.eq(new_addr), run2.eq(new_addr)]
            stmts += [c.eq(0) for c in cnt if isinstance(c, Signal)]
            return stmts

        # bounds of the next output row (ybase + sh)
        yb_next = ybase + sh
        ymin_n = _clip(yb_next, 0, H - 1, yb_lo + sh, yb_hi + sh)
        ymax_n = _clip(yb_next + (kh - 1), 0, H - 1, yb_lo + sh + kh - 1, yb_hi + sh + kh - 1)
        hold_n = _clip(yb_next + sh, 0, H - 1, yb_lo + 2 * sh, yb_hi + 2 * sh) == ymin_n
        if OH > 1:
            hold_n = hold_n & (oy != OH - 2)  # the last row has no next row to hold for
        dmin = Signal(range(sh + 1), name="dymin")
        dmax = Signal(range(sh + 1), name="dymax")
        m.d.comb += [dmin.eq(ymin_n - ymin), dmax.eq(ymax_n - ymax)]

        def times_w(dv):
            e = Const(0, 1)
            for d in range(1, sh + 1):
                e = Mux(dv == d, d * W, e)
            return e

        yminw_n, ymaxw_n = yminw + times_w(dmin), ymaxw + times_w(dmax)
        row_update = [ybase.eq(yb_next), ymin.eq(ymin_n), ymax.eq(ymax_n),
                      yminw.eq(yminw_n), ymaxw.eq(ymaxw_n), hold.eq(hold_n),
                      # the next row starts at xbase = -pl
                      big_fd.eq(Mux(hold_n, yminw_n, yminw_n + xmin0) + D), big_l.eq(ymaxw_n + xmax0)]

        with m.If(go):
            with m.If(~last[2]):
                m.d.sync += _inc(cnt[2]) + [addr.eq(addmod(addr, s2))]
            with m.Elif(~last[1]):
                nxt = addmod(run2, s1)
                m.d.sync += _inc(cnt[1]) + [run2.eq(nxt), addr.eq(nxt)]
                if isinstance(cnt[2], Signal):
                    m.d.sync += cnt[2].eq(0)
            with m.Elif(~last[0]):
                nxt = addmod(run1, s0)
                m.d.sync += _inc(cnt[0]) + [run1.eq(nxt), run2.eq(nxt), addr.eq(nxt)]
                m.d.sync += [c.eq(0) for c in cnt[1:] if isinstance(c, Signal)]
            with m.Else():
                # window done: next window, next row or next frame
                with m.If(~ox_last):
                    nxt = addmod(waddr_win, sw * CF)
                    m.d.sync += _inc(ox) + [xbase.eq(xbase + sw), waddr_win.eq(nxt),
                                            big_fd.eq(f_plus_d(xbase + sw, yminw, hold, xb_hi + sw)),
                                            big_l.eq(last_of(xbase + sw, ymaxw, xb_hi + sw))]
                    m.d.sync += restart_window(nxt)
                with m.Elif(~oy_last):
                    nxt = addmod(waddr_row, sh * W * CF)
                    if isinstance(ox, Signal):
                        m.d.sync += ox.eq(0)
                    m.d.sync += _inc(oy) + [xbase.eq(-pl), waddr_row.eq(nxt),
                                 waddr_win.eq(nxt)]
                    m.d.sync += row_update
                    m.d.sync += restart_window(nxt)
                with m.Else():
                    nxt = addmod(waddr_frame, HW * CF)
                    m.d.sync += [c.eq(0) for c in (ox, oy) if isinstance(c, Signal)]
                    m.d.sync += [xbase.eq(-pl), ybase.eq(-pt), rframe.eq(rframe + 1),
                                 waddr_frame.eq(nxt), waddr_row.eq(nxt), waddr_win.eq(nxt),
                                 ymin.eq(ymin_of(-pt)), ymax.eq(ymax_of(-pt)),
                                 yminw.eq(ymin_of(-pt) * W), ymaxw.eq(ymax_of(-pt) * W),
                                 hold.eq(hold_of(-pt)), big_fd.eq(f0), big_l.eq(l0)]
                    m.d.sync += restart_window(nxt)
        return m

"""Stream data-width converter (gearbox).

:class:`StreamDWC` turns a stream of ``a`` elements per beat into a stream of ``b`` elements per
beat (``width`` bits per element, element 0 in the LSBs, order preserved). A beat moves when
``valid & ready``.

It is one element buffer of ``C = a + b - gcd(a, b)`` slots with a fill ``count`` (a multiple of
``g = gcd(a, b)``):

* ``o.valid = count >= b``; ``o.payload`` is slots ``0 .. b-1``; on output the buffer shifts
  down by ``b`` slots;
* an input beat is accepted when, after this cycle's output, ``a`` more elements fit
  (``i.ready`` depends combinationally on ``o.ready``); it lands at slot ``count`` (or
  ``count - b``), at one of ``(C - a)/g + 1`` fixed positions;
* slots at or above ``count`` always hold zero, so an insertion is a plain OR.

This covers every ratio with a buffer just large enough for full throughput,
``min(a * input beats/cycle, b * output beats/cycle)`` elements per cycle: for ``b | a`` it is
a plain splitter (one ``a``-element register), for ``a | b`` a plain gatherer (one
``b``-element register). ``a == b`` is a wire. No latency is added beyond the gathering itself:
an output beat is valid the cycle after the input beat that completes it.
"""
from __future__ import annotations

import math

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out


class StreamDWC(wiring.Component):
    """Converts ``a`` elements per beat into ``b`` elements per beat (``width`` bits each).

    Members
    -------
    i : In(stream.Signature(unsigned(a * width)))
    o : Out(stream.Signature(unsigned(b * width)))
    """

    def __init__(self, width: int, a: int, b: int):
        if width < 1 or a < 1 or b < 1:
            raise ValueError(f"bad DWC geometry: width={width}, a={a}, b={b}")
        self.width, self.a, self.b = int(width), int(a), int(b)
        self.g = math.gcd(self.a, self.b)
        self.capacity = self.a + self.b - self.g
        super().__init__({
            "i": In(stream.Signature(unsigned(self.a * self.width))),
            "o": Out(stream.Signature(unsigned(self.b * self.width))),
        })

    def elaborate(self, platform):
        m = Module()
        a, b, g, w, C = self.a, self.b, self.g, self.width, self.capacity
        if a == b:
            m.d.comb += [
                self.o.payload.eq(self.i.payload),
                self.o.valid.eq(self.i.valid),
                self.i.ready.eq(self.o.ready),
            ]
            return m

        # fill level in units of g elements
        A, B, CU = a // g, b // g, C // g
        buf = Signal(C * w)
        count = Signal(range(CU + 1))
        ofire = Signal()
        ifire = Signal()
        rem = Signal(range(CU + 1))  # fill after this cycle's output
        m.d.comb += [
            self.o.valid.eq(count >= B),
            self.o.payload.eq(buf[:b * w]),
            ofire.eq(self.o.valid & self.o.ready),
            rem.eq(Mux(ofire, count - B, count)),
            self.i.ready.eq(rem <= CU - A),
            ifire.eq(self.i.valid & self.i.ready),
        ]
        shifted = Signal(C * w)
        m.d.comb += shifted.eq(Mux(ofire, buf[b * w:], buf))  # zero-filled from the top
        m.d.sync += count.eq(Mux(ifire, rem + A, rem))
        with m.If(ifire):
            positions = CU - A + 1
            if positions == 1:
                m.d.sync += buf.eq(shifted | self.i.payload)
            else:
                with m.Switch(rem):
                    for pos in range(positions):
                        # the last position doubles as the default (no other value occurs)
                        with (m.Case(pos) if pos < positions - 1 else m.Default()):
                            m.d.sync += buf.eq(shifted | (self.i.payload << (pos * g * w)))
        with m.Else():
            m.d.sync += buf.eq(shifted)
        return m

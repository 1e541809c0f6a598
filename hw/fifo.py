"""Stream FIFO between units.

:class:`StreamFIFO` has the same two members as every unit (``i`` in, ``o`` out, payload/valid/
ready, a beat moves when ``valid & ready``):

* ``depth == 0``: a direct wire (``o`` mirrors ``i``; no storage, no latency);
* ``depth == 1``: one register stage at full throughput (``i.ready = ~o.valid | o.ready``, so
  ``i.ready`` depends combinationally on ``o.ready``);
* ``depth == 2``: a skid buffer (two registers; ``i.ready`` is a register, no combinational
  path from ``o`` to ``i``). Full throughput, 1 cycle latency. (``SyncFIFOBuffered`` of depth 2
  would hold a 1-word memory with zero-width addresses, which lints badly and buys nothing.)
* ``depth >= 3``: ``amaranth.lib.fifo.SyncFIFOBuffered`` (``depth - 1`` words of memory with a
  synchronous read port, so Yosys can map it to block RAM, plus an output register). Full
  throughput; no combinational path from ``o`` to ``i``; 2 cycles from an empty FIFO's input to
  its output.
"""
from __future__ import annotations

from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out


class StreamFIFO(wiring.Component):
    """A ``width``-bit stream buffer holding up to ``depth`` beats (see the module docstring).

    Members
    -------
    i : In(stream.Signature(unsigned(width)))
    o : Out(stream.Signature(unsigned(width)))
    """

    def __init__(self, width: int, depth: int):
        if depth < 0:
            raise ValueError(f"FIFO depth must be >= 0, got {depth}")
        self.width = int(width)
        self.depth = int(depth)
        super().__init__({
            "i": In(stream.Signature(unsigned(self.width))),
            "o": Out(stream.Signature(unsigned(self.width))),
        })

    def elaborate(self, platform):
        m = Module()
        if self.depth == 0:
            m.d.comb += [
                self.o.payload.eq(self.i.payload),
                self.o.valid.eq(self.i.valid),
                self.i.ready.eq(self.o.ready),
            ]
        elif self.depth == 1:
            valid = Signal()
            m.d.comb += [self.o.valid.eq(valid), self.i.ready.eq(~valid | self.o.ready)]
            with m.If(self.i.ready):
                m.d.sync += [valid.eq(self.i.valid), self.o.payload.eq(self.i.payload)]
        elif self.depth == 2:
            out_valid, skid_valid = Signal(), Signal()
            skid = Signal(self.width)
            m.d.comb += [self.o.valid.eq(out_valid), self.i.ready.eq(~skid_valid)]
            with m.If(~out_valid | self.o.ready):  # the output register is free after this edge
                with m.If(skid_valid):
                    m.d.sync += [self.o.payload.eq(skid), out_valid.eq(1), skid_valid.eq(0)]
                with m.Else():
                    m.d.sync += [self.o.payload.eq(self.i.payload), out_valid.eq(self.i.valid)]
            with m.Elif(self.i.valid & ~skid_valid):  # output stalled: park the beat
                m.d.sync += [skid.eq(self.i.payload), skid_valid.eq(1)]
        else:
            fifo = m.submodules.fifo = SyncFIFOBuffered(width=self.width, depth=self.depth)
            wiring.connect(m, wiring.flipped(self.i), fifo.w_stream)
            wiring.connect(m, fifo.r_stream, wiring.flipped(self.o))
        return m

"""Stream fork (eager) in Amaranth.

:class:`ForkHW` implements :class:`streamfold.compiler.ir.ForkUnit`: the input stream ``i`` copied
to ``n_out`` output ports ``o``, ``o1``, ... (payload unchanged, ``pe * bits`` wide).

Handshake: the input beat is offered on every output port whose copy is not yet taken
(``o_k.valid = i.valid & ~taken_k``); port ``k`` takes its copy on an edge with ``o_k.valid &
o_k.ready`` and sets its ``taken_k`` flag. ``i.ready`` is high when every port has taken its copy
or takes it now (``&(taken_k | o_k.ready)``); the edge that takes the input beat clears every
flag. No register in the data path: with every consumer ready, each copy leaves the cycle the
input beat is taken (zero latency, one beat per clock). ``o_k.valid`` does not depend on any
``ready``; ``i.ready`` depends combinationally on the ``o_k.ready``.

Registers: the ``n_out`` taken flags.
"""
from __future__ import annotations

from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from streamfold.compiler.ir import ForkUnit


class ForkHW(wiring.Component):
    """Members: ``i``; ``o``, ``o1``, ... ``o<n_out-1>`` (all ``pe * bits`` wide)."""

    def __init__(self, unit: ForkUnit):
        unit.check_folding()
        self.unit = unit
        sig = stream.Signature(unsigned(unit.in_stream.beat_bits))
        members = {"i": In(sig)}
        for k in range(unit.n_out):
            members["o" if k == 0 else f"o{k}"] = Out(sig)
        super().__init__(members)

    @property
    def outputs(self) -> list:
        return [self.o] + [getattr(self, f"o{k}") for k in range(1, self.unit.n_out)]

    def elaborate(self, platform):
        m = Module()
        outs = self.outputs
        taken = [Signal(name=f"taken_{k}") for k in range(len(outs))]
        done = Signal()
        for t, o in zip(taken, outs):
            m.d.comb += [o.payload.eq(self.i.payload), o.valid.eq(self.i.valid & ~t)]
        all_done = taken[0] | outs[0].ready
        for t, o in zip(taken[1:], outs[1:]):
            all_done = all_done & (t | o.ready)
        m.d.comb += [done.eq(all_done), self.i.ready.eq(done)]
        with m.If(self.i.valid & done):
            m.d.sync += [t.eq(0) for t in taken]
        with m.Else():
            for t, o in zip(taken, outs):
                with m.If(o.valid & o.ready):
                    m.d.sync += t.eq(1)
        return m

"""Channel concatenation of streams in Amaranth.

:class:`ConcatHW` implements :class:`streamfold.compiler.ir.ConcatUnit`: input ports ``i``,
``i1``, ... (``pe * in_bits_j`` wide) and one output ``o`` (``pe * out_bits``). For every pixel
it passes ``C_0/pe`` beats of input 0, then ``C_1/pe`` beats of input 1, ...; each element is
widened to ``out_bits`` (sign-extended when its input is signed, zero-extended otherwise; a
bipolar element stays the one bit it is).

Handshake: a beat counter (``sum(C_j)/pe`` beats per pixel) and the register of the current
input ``j`` (advanced with the beat that ends input ``j``'s share of the pixel) select it;
``o.valid = i_j.valid``, ``i_j.ready = o.ready`` and every other input is held (ready low). No
register in the data path: a beat leaves the cycle it is taken, one beat per clock. ``o.valid``
does not depend on ``o.ready``.

Registers: the beat counter and the input index.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from streamfold.compiler.ir import ConcatUnit

from .elements import lanes


class ConcatHW(wiring.Component):
    """Members: ``i``, ``i1``, ... (one per input, ``pe * in_bits``), ``o`` (``pe * out_bits``)."""

    def __init__(self, unit: ConcatUnit):
        unit.check_folding()
        self.unit = unit
        members = {}
        for j, s in enumerate(unit.input_streams()):
            members["i" if j == 0 else f"i{j}"] = In(stream.Signature(unsigned(s.beat_bits)))
        members["o"] = Out(stream.Signature(unsigned(unit.out_stream.beat_bits)))
        super().__init__(members)

    @property
    def inputs(self) -> list:
        return [self.i] + [getattr(self, f"i{j}") for j in range(1, len(self.unit.channels))]

    def elaborate(self, platform):
        u = self.unit
        m = Module()
        per = [c // u.pe for c in u.channels]
        total = sum(per)
        ends = [sum(per[:j + 1]) for j in range(len(per))]  # beat after each input's last one
        # beat in the pixel, and the input it comes from (a register, so the output multiplexer
        # selects on flip-flops and not on comparisons of the counter)
        ctr = Signal(range(total), name="beat")
        sel = Signal(range(len(per)), name="port")
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += ctr.eq(Mux(ctr == total - 1, 0, ctr + 1))
            last = ctr == ends[0] - 1
            for e in ends[1:]:
                last = last | (ctr == e - 1)
            with m.If(last):
                m.d.sync += sel.eq(Mux(sel == len(per) - 1, 0, sel + 1))

        # every input's elements, widened to out_bits (the assignment sign-extends a signed value)
        words = []
        for j, (inp, d) in enumerate(zip(self.inputs, u.in_dtypes)):
            els = []
            for p, e in enumerate(lanes(inp.payload, u.pe, d.bits)):
                w = Signal(u.out_dtype.bits, name=f"in{j}_{p}")
                m.d.comb += w.eq(e.as_signed() if d.signed else e)
                els.append(w)
            words.append(Cat(*els))

        with m.Switch(sel):
            for j, inp in enumerate(self.inputs):
                with m.Case(j) if j < len(per) - 1 else m.Default():
                    m.d.comb += [self.o.valid.eq(inp.valid), inp.ready.eq(self.o.ready),
                                 self.o.payload.eq(words[j])]
        return m

"""Elementwise add of two streams, with an optional multi-threshold activation, in Amaranth.

:class:`AddHW` implements :class:`streamfold.compiler.ir.AddUnit`: inputs ``i`` (``a``, ``pe *
a_bits``) and ``i1`` (``b``, ``pe * b_bits``), output ``o`` (``pe * out_bits``); per lane
``acc = a_mul*a + b_mul*b`` (bipolar inputs decoded as -1/+1; the constant factors as shifted
additions and subtractions, no multiplier), then, with thresholds,
``out = out_bias + #{k : acc >= T[c, k]}`` (bipolar output: the bit is the count), else
``out = acc``.

Handshake: a beat is taken from both inputs on the same edge, when both are valid and the
pipeline advances (``i.ready = en & i1.valid``, ``i1.ready = en & i.valid``). Every register
advances on the global enable ``en = ~o.valid | o.ready``::

    sum register       acc (pe lanes; the output register itself without thresholds)
    output register    threshold count + out_bias (only with thresholds)

so, with the output never back-pressured, an output beat leaves ``unit.latency`` cycles after
its inputs are taken (1, or 2 with thresholds), one beat per clock. ``o.valid`` does not depend
on ``o.ready``.

Thresholds (:func:`.thresholding.threshold_stage`): a :class:`~.rom.ROM` of ``C/pe`` words (:func:`streamfold.compiler.units.add
.threshold_image`) read at the channel group of the beat being taken, on the edge that loads the
sum register (a constant when ``C == pe``). Comparators and the balanced adder tree of their
bits are the ones of the dot-product units (:mod:`.dot_product`).
"""
from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from streamfold.compiler.ir import AddUnit

from .dot_product import check_thresholds
from .elements import decode, lanes, shape_of, tree_sum
from .thresholding import threshold_stage


def signed_digits(n: int) -> list[tuple[int, int]]:
    """``n`` as ``sum(d * 2**k)`` with digits ``d`` of +-1, no two adjacent (non-adjacent form)."""
    out, k = [], 0
    while n:
        if n & 1:
            d = 2 - n % 4
            out.append((k, d))
            n -= d
        n >>= 1
        k += 1
    return out


def lane_sum(x_code, x_dtype, x_mul: int, y_code, y_dtype, y_mul: int):
    """``x_mul * x + y_mul * y`` of two element codes as shifted additions and subtractions (no
    multiplier: Yosys would map a constant product to a DSP block)."""
    pos, neg = [], []
    for code, dtype, mul in ((x_code, x_dtype, x_mul), (y_code, y_dtype, y_mul)):
        v = decode(code, dtype)
        for k, d in signed_digits(mul):
            (pos if d > 0 else neg).append(v << k if k else v)
    return tree_sum(pos) - tree_sum(neg) if neg else tree_sum(pos)


class AddHW(wiring.Component):
    """Members: ``i`` (a), ``i1`` (b), ``o``."""

    def __init__(self, unit: AddUnit):
        check_thresholds(unit, unit.channels, "channels")
        self.unit = unit
        a, b = unit.input_streams()
        super().__init__({
            "i": In(stream.Signature(unsigned(a.beat_bits))),
            "i1": In(stream.Signature(unsigned(b.beat_bits))),
            "o": Out(stream.Signature(unsigned(unit.out_stream.beat_bits))),
        })

    def elaborate(self, platform):
        u = self.unit
        m = Module()
        pe, ob = u.pe, u.out_dtype.bits
        a, b, o = self.i, self.i1, self.o
        thresholded = u.thresholds is not None

        en, take = Signal(), Signal()
        m.d.comb += [en.eq(~o.valid | o.ready),
                     a.ready.eq(en & b.valid), b.ready.eq(en & a.valid),
                     take.eq(a.valid & b.valid & en)]

        sums = [lane_sum(x, u.a_dtype, u.a_mul, y, u.b_dtype, u.b_mul)
                for x, y in zip(lanes(a.payload, pe, u.a_dtype.bits), lanes(b.payload, pe, u.b_dtype.bits))]

        # ---- sum register (the output register when there are no thresholds)
        v1 = Signal()
        if not thresholded:
            out = [Signal(ob, name=f"out_{p}") for p in range(pe)]
            with m.If(en):
                # the sum fits out_dtype (checked by the unit): truncation keeps its code
                m.d.sync += [v1.eq(take)] + [r.eq(s) for r, s in zip(out, sums)]
            m.d.comb += [o.valid.eq(v1), o.payload.eq(Cat(*out))]
            return m

        acc = [Signal(shape_of(u.acc_dtype), name=f"acc_{p}") for p in range(pe)]
        with m.If(en):
            m.d.sync += [v1.eq(take)] + [r.eq(s) for r, s in zip(acc, sums)]

        # ---- thresholds of the channel group in the sum register, the count register
        out, v2 = threshold_stage(m, u, acc, v1, en, take)
        m.d.comb += [o.valid.eq(v2), o.payload.eq(Cat(*out))]
        return m

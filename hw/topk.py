"""Top-k label selection in Amaranth (FINN's LabelSelect).

:class:`TopKHW` implements :class:`streamfold.compiler.units.topk.TopKUnit`: input ``i`` (``pe *
in_bits``, ``F = C/pe`` beats per vector), output ``o`` (``out_bits``, one index per beat, ``k``
per vector, largest value first, equal values lower index first).

Structure:

* input register ``x`` (the beat's ``pe`` element codes, valid ``v1``) and ``base``, the index of
  its element 0 (counts ``0, pe, 2*pe ... C-pe`` as beats leave the register);
* the sorted list: ``k`` registered entries (value, index, full), entry 0 the largest, the empty
  ones at the end. One insertion of value ``v`` (index ``n``) is ``k`` comparators ``gt_j =
  ~full_j | v > value_j`` (a strict ``>``: an equal later value goes behind) and a multiplexer
  per entry, ``new_j = gt_{j-1} ? old_{j-1} : gt_j ? (v, n) : old_j``; the beat's ``pe``
  elements are inserted in lane order, a chain of ``pe`` insertions in one clock;
* the output buffer: ``k`` index registers and a count; ``o.payload`` is entry 0,
  ``o.valid = count != 0``, each output beat shifts the buffer by one.

The beat in the input register moves on (``adv``) unless it is the vector's last beat and the
output buffer is not free (``count == 0``, or ``count == 1`` with its index leaving now); a last
beat loads the list with its elements inserted into the output buffer (``count = k``) and
empties the list, so the next vector's first beat is inserted in the very next clock. ``i.ready
= ~v1 | adv`` (combinational from ``o.ready`` only through a waiting last beat).

Timing (the kind's ``timeline``): a vector's last beat taken at cycle ``t`` leaves the register
at ``s = max(t + 1, s_prev + k)``, its indices at ``s + 1 .. s + k``: ``max(C/pe, k)`` cycles per
vector at full rate.
"""
from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from streamfold.compiler.units.topk import TopKUnit

from .elements import lanes


def _value(code, dtype):
    """Element code -> comparable value (bipolar and unsigned compare as codes)."""
    return code.as_signed() if dtype.signed else code.as_unsigned()


class TopKHW(wiring.Component):
    """Members: ``i``, ``o`` (see the module docstring)."""

    def __init__(self, unit: TopKUnit):
        unit.check_folding()
        self.unit = unit
        super().__init__({
            "i": In(stream.Signature(unsigned(unit.in_stream.beat_bits))),
            "o": Out(stream.Signature(unsigned(unit.out_stream.beat_bits))),
        })

    def elaborate(self, platform):
        u = self.unit
        m = Module()
        i, o = self.i, self.o
        pe, k, c = u.pe, u.k, u.channels
        w, ob = u.in_dtype.bits, u.out_dtype.bits

        # input register
        x = Signal(pe * w, name="x")
        v1 = Signal(name="x_valid")
        base = Signal(range(c), name="base")
        last = Signal(name="last")
        m.d.comb += last.eq(base == c - pe)

        # the sorted list and the output buffer
        val = [Signal(w, name=f"val{j}") for j in range(k)]
        idx = [Signal(ob, name=f"idx{j}") for j in range(k)]
        full = [Signal(name=f"full{j}") for j in range(k)]
        obuf = [Signal(ob, name=f"obuf{j}") for j in range(k)]
        count = Signal(range(k + 1), name="count")

        free = Signal()
        adv = Signal()
        m.d.comb += [
            free.eq((count == 0) | ((count == 1) & o.ready)),
            adv.eq(v1 & (~last | free)),
            i.ready.eq(~v1 | adv),
            o.valid.eq(count != 0),
            o.payload.eq(obuf[0]),
        ]
        with m.If(i.ready):
            m.d.sync += v1.eq(i.valid)
            with m.If(i.valid):
                m.d.sync += x.eq(i.payload)

        # the chain of pe insertions
        cur = [(val[j], idx[j], full[j]) for j in range(k)]
        for p, code in enumerate(lanes(x, pe, w)):
            v = _value(code, u.in_dtype)
            n = (base + p)[:ob]
            gt = [~f | (v > _value(a, u.in_dtype)) for a, _, f in cur]
            nxt = []
            for j in range(k):
                a, b, f = cur[j]
                ins_a, ins_b, ins_f = Mux(gt[j], code, a), Mux(gt[j], n, b), gt[j] | f
                if j > 0:
                    pa, pb, pf = cur[j - 1]
                    ins_a, ins_b, ins_f = (Mux(gt[j - 1], pa, ins_a), Mux(gt[j - 1], pb, ins_b),
                                           Mux(gt[j - 1], pf, ins_f))
                sa, sb, sf = (Signal(w, name=f"ins{p}_val{j}"), Signal(ob, name=f"ins{p}_idx{j}"),
                              Signal(name=f"ins{p}_full{j}"))
                m.d.comb += [sa.eq(ins_a), sb.eq(ins_b), sf.eq(ins_f)]
                nxt.append((sa, sb, sf))
            cur = nxt

        with m.If(adv):
            with m.If(last):
                m.d.sync += [base.eq(0), count.eq(k)]
                m.d.sync += [f.eq(0) for f in full]
                m.d.sync += [ob_.eq(b) for ob_, (_, b, _) in zip(obuf, cur)]
            with m.Else():
                m.d.sync += base.eq(base + pe)
                m.d.sync += [d.eq(s) for d, s in zip(val + idx + full,
                                                     [e[0] for e in cur] + [e[1] for e in cur]
                                                     + [e[2] for e in cur])]
        with m.If(o.valid & o.ready & ~(adv & last)):
            m.d.sync += count.eq(count - 1)
            m.d.sync += [obuf[j].eq(obuf[j + 1]) for j in range(k - 1)]
        return m

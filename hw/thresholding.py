"""Multi-threshold activation of a stream in Amaranth, and the threshold stage it shares with the add.

:class:`ThresholdHW` implements :class:`streamfold.compiler.ir.ThresholdUnit`: input ``i``
(``pe * in_bits``), output ``o`` (``pe * out_bits``); per lane ``out = out_bias + #{k : x >= T[c,
k]}`` (bipolar output: the bit is the count). Two registers, both advancing on the global enable
``en = ~o.valid | o.ready``: the input register (``x``), then the count register, so an output
beat leaves :data:`~streamfold.compiler.units.thresholding.LATENCY` (2) cycles after its input is
taken, one beat per clock; ``i.ready = en``.

:func:`threshold_stage` is the second register: the thresholds of the channel group in the first
register (a :class:`~.rom.ROM` of ``C/pe`` words read on the edge that loads it, or a constant
when ``C == pe``), the comparators and the balanced adder tree of their bits.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from streamfold.compiler.ir import ThresholdUnit
from streamfold.compiler.units.add import threshold_image

from .dot_product import check_thresholds
from .elements import decode, lanes, shape_of, tree_sum
from .rom import ROM, file_stem


def threshold_stage(m: Module, u, acc: list, valid, en, take):
    """The count register after the ``pe`` registered values ``acc`` (of ``u.acc_dtype``, valid
    ``valid``) of a unit with ``thresholds``/``out_bias``/``out_dtype``/``channels``/``pe``;
    ``take`` loads the next beat into ``acc``. Returns ``(out lanes, out valid)``."""
    pe, ob = u.pe, u.out_dtype.bits
    img = threshold_image(u)
    n_thr = u.n_thresholds
    if img.in_rom:
        groups = u.channels // pe
        group = Signal(range(groups), name="group")
        with m.If(take):
            m.d.sync += group.eq(Mux(group == groups - 1, 0, group + 1))
        rom = m.submodules.thresholds = ROM(img.width, img.depth, img.words(),
                                            name=file_stem(u.name, "thresholds"))
        m.d.comb += [rom.addr.eq(group), rom.en.eq(en)]
        t1 = rom.data
    else:
        t1 = Const(img.words()[0] if n_thr else 0, max(1, img.width))
    ts = lanes(t1, pe * n_thr, u.acc_dtype.bits) if n_thr else []
    v2 = Signal(name="count_valid")
    out = [Signal(ob, name=f"out_{p}") for p in range(pe)]
    for p in range(pe):
        lane_t = ts[p * n_thr:(p + 1) * n_thr]
        count = tree_sum([acc[p] >= (t.as_signed() if u.acc_dtype.signed else t) for t in lane_t])
        value = (count != 0) if u.out_dtype.bipolar else count + u.out_bias
        with m.If(en):
            m.d.sync += out[p].eq(value)  # truncated to out_bits: two's complement
    with m.If(en):
        m.d.sync += v2.eq(valid)
    return out, v2


class ThresholdHW(wiring.Component):
    """Members: ``i``, ``o`` (see the module docstring)."""

    def __init__(self, unit: ThresholdUnit):
        check_thresholds(unit, unit.channels, "channels")
        self.unit = unit
        super().__init__({
            "i": In(stream.Signature(unsigned(unit.in_stream.beat_bits))),
            "o": Out(stream.Signature(unsigned(unit.out_stream.beat_bits))),
        })

    def elaborate(self, platform):
        u = self.unit
        m = Module()
        i, o = self.i, self.o
        en, take = Signal(), Signal()
        m.d.comb += [en.eq(~o.valid | o.ready), i.ready.eq(en), take.eq(i.valid & en)]
        x = [Signal(shape_of(u.acc_dtype), name=f"x_{p}") for p in range(u.pe)]
        v1 = Signal()
        with m.If(en):
            m.d.sync += [v1.eq(take)] + [r.eq(decode(c, u.in_dtype))
                                         for r, c in zip(x, lanes(i.payload, u.pe, u.in_dtype.bits))]
        out, v2 = threshold_stage(m, u, x, v1, en, take)
        m.d.comb += [o.valid.eq(v2), o.payload.eq(Cat(*out))]
        return m

"""Elementwise table activation in Amaranth.

:class:`LookupHW` implements :class:`streamfold.compiler.units.lookup.LookupUnit`: input ``i``
(``pe * in_bits``), output ``o`` (``pe * out_bits``); per lane ``out = table[level(x)]`` (or the
lane's channel's table).

Structure: ``pe`` lanes, each one :class:`~.rom.ROM` of ``G * 2**in_bits`` words of
``out_bits`` (:func:`~streamfold.compiler.units.lookup.lane_image`; ``G = C/pe`` with one table
per channel, else 1), addressed by ``Cat(lane code, group)``: no arithmetic on the address.
The ROM's read register is the output register. A small table becomes LUT logic (one LUT per
distinct output bit column up to ``2**k`` words), a large one a block RAM per lane (Yosys'
choice; :func:`~streamfold.compiler.resource_model.map_memory` predicts it).

Timing: one register stage advancing on ``en = ~o.valid | o.ready``; ``i.ready = en``; the ROM
reads on every edge with ``en`` (and holds its data otherwise), so an output beat leaves
:data:`~streamfold.compiler.units.lookup.LATENCY` (1) cycle after its input is taken, one beat
per clock. Registers: the valid flag, the group counter (``G > 1``), the ROM read registers.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from streamfold.compiler.units.lookup import LookupUnit, lane_image

from .elements import lanes
from .rom import ROM, file_stem


class LookupHW(wiring.Component):
    """Members: ``i``, ``o`` (see the module docstring)."""

    def __init__(self, unit: LookupUnit):
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
        en, take = Signal(), Signal()
        m.d.comb += [en.eq(~o.valid | o.ready), i.ready.eq(en), take.eq(i.valid & en)]
        groups = u.groups
        group = None
        if groups > 1:
            group = Signal(range(groups), name="group")
            with m.If(take):
                m.d.sync += group.eq(Mux(group == groups - 1, 0, group + 1))
        valid = Signal(name="out_valid")
        with m.If(en):
            m.d.sync += valid.eq(take)
        datas = []
        for p, code in enumerate(lanes(i.payload, u.pe, u.in_dtype.bits)):
            img = lane_image(u, p)
            rom = ROM(img.width, img.depth, img.words(), name=file_stem(u.name, f"table{p}"))
            m.submodules[f"table{p}"] = rom
            addr = code if group is None else Cat(code, group)
            m.d.comb += [rom.addr.eq(addr), rom.en.eq(en)]
            datas.append(rom.data)
        m.d.comb += [o.valid.eq(valid), o.payload.eq(Cat(*datas))]
        return m

"""Global sum-pool in Amaranth.

:class:`GlobalSumPoolHW` implements :class:`streamfold.compiler.ir.GlobalSumPoolUnit`: per channel,
the exact integer sum of all ``H*W`` pixels (bipolar elements count as -1/+1), in ``out_dtype``.
It is one :class:`~.window_reduce.WindowReduce1D` (one window covering the whole frame): ``C/pe``
partial sums (a memory of ``C/pe`` words of ``pe * out_bits``, registers when ``C == pe``); the
output beats leave during the frame's last pixel.

Timing: one input beat per clock and no other stall: ``H * W * C/pe`` cycles per frame.
"""
from __future__ import annotations

from amaranth.hdl import Module, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from streamfold.compiler.ir import GlobalSumPoolUnit

from .window_reduce import WindowReduce1D


class GlobalSumPoolHW(wiring.Component):
    """Members: ``i`` (``pe * in_bits``), ``o`` (``pe * out_bits``)."""

    def __init__(self, unit: GlobalSumPoolUnit):
        unit.check_folding()
        self.unit = unit
        super().__init__({
            "i": In(stream.Signature(unsigned(unit.in_stream.beat_bits))),
            "o": Out(stream.Signature(unsigned(unit.out_stream.beat_bits))),
        })

    def elaborate(self, platform):
        u = self.unit
        m = Module()
        h, w, c = u.in_shape
        n = h * w
        red = m.submodules.sum = WindowReduce1D(u.pe, u.dtype, "sum", n, n, n, c // u.pe,
                                                acc_dtype=u.out_dtype)
        wiring.connect(m, wiring.flipped(self.i), red.i)
        wiring.connect(m, red.o, wiring.flipped(self.o))
        return m

"""Streaming max-pool (FINN's StreamingMaxPool) and windowed sum-pool in Amaranth.

:class:`MaxPoolHW` implements :class:`streamfold.compiler.ir.MaxPoolUnit` (and, with a sum in
place of the max and wider partials, :class:`~streamfold.compiler.units.sumpool.SumPoolUnit`,
its ``reduce_op``/``stage_dtypes``): ``kh x kw`` windows with
stride ``(sh, sw)``, no padding, ``pe`` channels per beat; on bipolar data the max is the OR of the
element bits. It is two :class:`~.window_reduce.WindowReduce1D` stages (a stage that would be the
identity, window 1 and stride 1, is left out):

1. along x: each input row of ``W`` pixels (``C/pe`` beats each) -> ``OW`` column maxima;
2. along y: ``H`` such rows (``OW * C/pe`` beats each) -> ``OH`` output rows.

Memory: ``ceil(kw/sw)`` banks of ``C/pe`` words and ``ceil(kh/sh)`` banks of ``OW * C/pe`` words
(``pe * bits`` wide); see :func:`streamfold.compiler.memory.maxpool_memories`.

Timing: one input beat per clock and no other stall: ``H * W * C/pe`` cycles per frame.
"""
from __future__ import annotations

from amaranth.hdl import Module, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from streamfold.compiler.ir import MaxPoolUnit

from .window_reduce import WindowReduce1D


class MaxPoolHW(wiring.Component):
    """Members: ``i``/``o``, ``pe * bits`` wide."""

    def __init__(self, unit: MaxPoolUnit):
        unit.check_folding()
        oh, ow = unit.out_hw
        if oh < 1 or ow < 1:
            raise ValueError(f"layer {unit.name}: pool {unit.kernel} does not fit {unit.in_shape}")
        self.unit = unit
        super().__init__({
            "i": In(stream.Signature(unsigned(unit.in_stream.beat_bits))),
            "o": Out(stream.Signature(unsigned(unit.out_stream.beat_bits))),
        })

    def elaborate(self, platform):
        u = self.unit
        m = Module()
        h, w, c = u.in_shape
        cf = c // u.pe
        (kh, kw), (sh, sw) = u.kernel, u.stride
        _oh, ow = u.out_hw
        d0, d1, d2 = u.stage_dtypes()
        op = u.reduce_op
        stages = []
        if (kw, sw) != (1, 1):
            stages.append(WindowReduce1D(u.pe, d0, op, w, kw, sw, cf, acc_dtype=d1))
        if (kh, sh) != (1, 1):
            stages.append(WindowReduce1D(u.pe, d1, op, h, kh, sh, ow * cf, acc_dtype=d2))
        if not stages:  # 1x1 window, stride 1: the identity
            wiring.connect(m, wiring.flipped(self.i), wiring.flipped(self.o))
            return m
        for j, st in enumerate(stages):
            m.submodules[f"stage{j}"] = st
        wiring.connect(m, wiring.flipped(self.i), stages[0].i)
        for a, b in zip(stages, stages[1:]):
            wiring.connect(m, a.o, b.i)
        wiring.connect(m, stages[-1].o, wiring.flipped(self.o))
        return m

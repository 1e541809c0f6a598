"""Vector-vector-activation unit (depthwise convolution, FINN's VVAU) in Amaranth.

:class:`VectorVectorUnitHW` implements :class:`streamfold.compiler.ir.VectorVectorUnit`
bit-exactly: per channel ``c``, ``acc[c] = sum_k W[c, k] * x[c, k]`` (values; in binary mode,
weights and inputs both bipolar, the number of matching signs), then the thresholds / output as
in the matrix-vector unit (see the ``ir`` module docstring).

Stream protocol
---------------
* ``i``: the depthwise sliding-window stream, ``pe`` channels per beat: per output pixel, for
  every channel group ``g`` (channels ``g*pe .. g*pe+pe-1``), ``K`` beats, one per kernel position.
* ``o``: ``pe`` output channels per beat; beat ``g`` of a pixel carries channel group ``g``.
* ``o.valid`` does not depend on ``o.ready``; ``i.ready`` depends combinationally on ``o.ready``.

Schedule: one input beat per clock, no other stall: ``rows * (C/pe) * K`` cycles per frame.

Pipeline (all registers advance together on ``en = ~o.valid | o.ready``)::

    counters, weight read -> products -> [registered products] -> accumulators
        -> [threshold read] -> output register

Everything after the counters is the shared :class:`~streamfold.hw.dot_product.DotProductDatapath`
with ``simd = 1`` and one input element per PE lane (input lane ``p`` feeds PE ``p``).

Memories (:class:`~streamfold.hw.rom.ROM` s, synchronous read ports enabled by ``en``; inline
``Memory`` or, when large in a design from :func:`~streamfold.hw.emit_design`, a ``$readmemh``
memory file ``<unit>_weights.hex`` / ``<unit>_thresholds.hex``):

* weights: ``(C/pe) * K`` words of ``pe * weight_bits``; word ``g*K + k``, lane ``p`` holds the code
  of ``W[g*pe + p, k]`` (a constant when there is a single word);
* thresholds: ``C/pe`` words of ``pe * n * acc_bits``; word ``g``, lane ``p*n + j`` holds
  ``T[g*pe + p, j]`` (a constant when ``C == pe``)

(both images: :func:`streamfold.compiler.rom_images.vvau_weight_image` /
:func:`~streamfold.compiler.rom_images.vvau_threshold_image`).
"""
from __future__ import annotations

import numpy as np
from amaranth.hdl import Const, Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from streamfold.compiler.ir import VectorVectorUnit
from streamfold.compiler.rom_images import vvau_threshold_image, vvau_weight_image

from .dot_product import LATENCY, DotProductDatapath, check_thresholds


class VectorVectorUnitHW(wiring.Component):
    """Depthwise dot products with optional multi-threshold activation.

    Members
    -------
    i : In(stream.Signature(unsigned(pe * in_bits)))
    o : Out(stream.Signature(unsigned(pe * out_bits)))

    Latency: the output beat of a channel group is valid 3 cycles after the edge that took its
    last kernel position (as in the matrix-vector unit).
    """

    #: clock edges between the edge that takes a group's last beat and the one that shows its output
    LATENCY = LATENCY

    def __init__(self, unit: VectorVectorUnit):
        unit.check_folding()
        w = np.asarray(unit.weights)
        if w.ndim != 2:
            raise ValueError(f"layer {unit.name}: weights must be (C, K), got {w.shape}")
        check_thresholds(unit, unit.channels, "C")
        self.unit = unit
        super().__init__({
            "i": In(stream.Signature(unsigned(unit.in_stream.beat_bits))),
            "o": Out(stream.Signature(unsigned(unit.out_stream.beat_bits))),
        })

    def weight_words(self) -> list[int]:
        """Weight memory image as one int per word (:func:`~streamfold.compiler.rom_images
        .vvau_weight_image`)."""
        return vvau_weight_image(self.unit).words()

    def threshold_words(self) -> list[int]:
        """Threshold memory image as one int per word (:func:`~streamfold.compiler.rom_images
        .vvau_threshold_image`)."""
        return vvau_threshold_image(self.unit).words()

    def elaborate(self, platform):
        u = self.unit
        m = Module()
        pe, K = u.pe, u.k
        CF = u.channels // pe
        dp = DotProductDatapath(
            m, self.o, pe=pe, simd=1, weight_dtype=u.weight_dtype, in_dtype=u.in_dtype,
            acc_dtype=u.acc_dtype, out_dtype=u.out_dtype, out_bias=u.out_bias, binary=u.binary,
            weights=vvau_weight_image(u),
            thresholds=vvau_threshold_image(u) if u.thresholds is not None else None,
            folds=CF, shared_inputs=False, name=u.name, ram_style=u.ram_style, dot_name="prod2",
            tree_stages=u.tree_stages, out_stages=u.out_stages, res_type=u.res_type,
            decoupled=bool(u.decoupled))
        en = dp.en

        # ---- stage 0: counters and weight address
        k = Signal(range(K), name="k") if K > 1 else Const(0, 1)
        g = Signal(range(CF), name="g") if CF > 1 else Const(0, 1)
        waddr = Signal(range(CF * K), name="waddr") if CF * K > 1 else None
        fire = Signal()
        m.d.comb += [self.i.ready.eq(dp.issue_ok), fire.eq(dp.issue_ok & self.i.valid)]
        k_last = (k == K - 1) if K > 1 else Const(1, 1)
        g_last = (g == CF - 1) if CF > 1 else Const(1, 1)
        with m.If(fire):
            if K > 1:
                m.d.sync += k.eq(Mux(k_last, 0, k + 1))
            if CF > 1:
                with m.If(k_last):
                    m.d.sync += g.eq(Mux(g_last, 0, g + 1))
            if waddr is not None:
                m.d.sync += waddr.eq(Mux(waddr == CF * K - 1, 0, waddr + 1))
        w1 = dp.weight_word(waddr)

        # ---- stage 1: the input beat (one kernel position of pe channels) -> products
        x1 = Signal(pe * u.in_dtype.bits)
        dp.step(fire, first=(k == 0), last=k_last, tag=g, also=[(x1, self.i.payload)])
        dp.finish(x1, w1)
        return m

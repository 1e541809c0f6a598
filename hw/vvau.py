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

Memories (:class:`~streamfold.hw.rom.ROM` s, synchronous read ports enabled by ``en``; inline
``Memory`` or, when large in a design from :func:`~streamfold.hw.emit_design`, a ``$readmemh``
memory file ``<unit>_weights.hex`` / ``<unit>_thresholds.hex``):

* weights: ``(C/pe) * K`` words of ``pe * weight_bits``; word ``g*K + k``, lane ``p`` holds the code
  of ``W[g*pe + p, k]`` (a constant when there is a single word);
* thresholds: ``C/pe`` words of ``pe * n * acc_bits``; word ``g``, lane ``p*n + j`` holds
  ``T[g*pe + p, j]`` (a constant when ``C == pe``).
"""
from __future__ import annotations

import numpy as np
from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from streamfold.compiler.ir import VectorVectorUnit

from .elements import lanes, pack_words, product, shape_of
from .rom import ROM, file_stem


class VectorVectorUnitHW(wiring.Component):
    """Depthwise dot products with optional multi-threshold activation.

    Members
    -------
    i : In(stream.Signature(unsigned(pe * in_bits)))
    o : Out(stream.Signature(unsigned(pe * out_bits)))
    """

    def __init__(self, unit: VectorVectorUnit):
        unit.check_folding()
        w = np.asarray(unit.weights)
        if w.ndim != 2:
            raise ValueError(f"layer {unit.name}: weights must be (C, K), got {w.shape}")
        if unit.thresholds is not None:
            t = np.asarray(unit.thresholds)
            if t.ndim != 2 or t.shape[0] != unit.channels:
                raise ValueError(f"layer {unit.name}: thresholds must be (C, n), got {t.shape}")
            if unit.out_dtype.bipolar and t.shape[1] != 1:
                raise ValueError(f"layer {unit.name}: a bipolar output needs exactly 1 threshold")
        self.unit = unit
        super().__init__({
            "i": In(stream.Signature(unsigned(unit.in_stream.beat_bits))),
            "o": Out(stream.Signature(unsigned(unit.out_stream.beat_bits))),
        })

    def weight_words(self) -> list[int]:
        u = self.unit
        cf = u.channels // u.pe
        codes = u.weight_dtype.encode(np.asarray(u.weights))  # (C, K)
        codes = codes.reshape(cf, u.pe, u.k).transpose(0, 2, 1)  # (CF, K, pe)
        return pack_words(codes.reshape(cf * u.k, u.pe), u.weight_dtype.bits)

    def threshold_words(self) -> list[int]:
        u = self.unit
        cf = u.channels // u.pe
        t = np.asarray(u.thresholds, dtype=np.int64)
        codes = u.acc_dtype.encode(t).reshape(cf, u.pe * u.n_thresholds)
        return pack_words(codes, u.acc_dtype.bits)

    def elaborate(self, platform):
        u = self.unit
        m = Module()
        pe, K = u.pe, u.k
        CF = u.channels // pe
        in_bits, w_bits, out_bits = u.in_dtype.bits, u.weight_dtype.bits, u.out_dtype.bits
        acc_shape, acc_bits = shape_of(u.acc_dtype), u.acc_dtype.bits
        has_thr, n_thr = u.thresholds is not None, u.n_thresholds

        out_valid = Signal()
        en = Signal()
        m.d.comb += en.eq(~out_valid | self.o.ready)

        # ---- stage 0: counters and weight address
        k = Signal(range(K), name="k") if K > 1 else Const(0, 1)
        g = Signal(range(CF), name="g") if CF > 1 else Const(0, 1)
        waddr = Signal(range(CF * K), name="waddr") if CF * K > 1 else None
        fire = Signal()
        m.d.comb += [self.i.ready.eq(en), fire.eq(en & self.i.valid)]
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
        w_width = pe * w_bits
        if waddr is not None:
            wrom = m.submodules.weights = ROM(w_width, CF * K, self.weight_words(),
                                              name=file_stem(u.name, "weights"),
                                              ram_style=u.ram_style)
            m.d.comb += [wrom.addr.eq(waddr), wrom.en.eq(en)]
            w1 = wrom.data
        else:
            w1 = Const(self.weight_words()[0], w_width)

        # ---- stage 1: input beat and weights -> products
        v1, first1, last1 = Signal(), Signal(), Signal()
        g1 = Signal(range(CF)) if CF > 1 else g
        x1 = Signal(pe * in_bits)
        with m.If(en):
            m.d.sync += [v1.eq(fire), first1.eq(k == 0), last1.eq(k_last), x1.eq(self.i.payload)]
            if CF > 1:
                m.d.sync += g1.eq(g)
        xs, ws = lanes(x1, pe, in_bits), lanes(w1, pe, w_bits)
        if u.binary:
            prods = [~(ws[p][0] ^ xs[p][0]) for p in range(pe)]
        else:
            prods = [product(ws[p], u.weight_dtype, xs[p], u.in_dtype) for p in range(pe)]

        # ---- stage 2: registered products
        v2, first2, last2 = Signal(), Signal(), Signal()
        g2 = Signal(range(CF)) if CF > 1 else g
        prod2 = [Signal(acc_shape, name=f"prod2_{p}") for p in range(pe)]
        with m.If(en):
            m.d.sync += [v2.eq(v1), first2.eq(first1), last2.eq(last1)]
            if CF > 1:
                m.d.sync += g2.eq(g1)
            m.d.sync += [d.eq(v) for d, v in zip(prod2, prods)]

        # ---- stage 3: accumulators (hold the finished sums while v3)
        v3 = Signal()
        acc = [Signal(acc_shape, name=f"acc_{p}") for p in range(pe)]
        with m.If(en):
            m.d.sync += v3.eq(v2 & last2)
            with m.If(v2):
                m.d.sync += [a.eq(Mux(first2, 0, a) + d) for a, d in zip(acc, prod2)]

        if has_thr and n_thr:
            t_width = pe * n_thr * acc_bits
            if CF > 1:
                trom = m.submodules.thresholds = ROM(t_width, CF, self.threshold_words(),
                                                     name=file_stem(u.name, "thresholds"),
                                                     ram_style=u.ram_style)
                m.d.comb += [trom.addr.eq(g2), trom.en.eq(en)]
                t3 = trom.data
            else:
                t3 = Const(self.threshold_words()[0], t_width)
            ts = lanes(t3, pe * n_thr, acc_bits)

        # ---- output register
        outs = []
        for p in range(pe):
            o = Signal(out_bits, name=f"out_{p}")
            if has_thr:
                if n_thr:
                    lane_t = ts[p * n_thr:(p + 1) * n_thr]
                    cmps = [acc[p] >= (t.as_signed() if u.acc_dtype.signed else t) for t in lane_t]
                    count = cmps[0]
                    for c_ in cmps[1:]:
                        count = count + c_
                else:
                    count = Const(0, 1)
                if u.out_dtype.bipolar:
                    m.d.comb += o.eq(count != 0)
                else:
                    m.d.comb += o.eq(count + u.out_bias)
            else:
                m.d.comb += o.eq(acc[p])
            outs.append(o)
        with m.If(en):
            m.d.sync += [out_valid.eq(v3), self.o.payload.eq(Cat(*outs))]
        m.d.comb += self.o.valid.eq(out_valid)
        return m

"""Matrix-vector-activation unit (FINN's MVAU) in Amaranth.

:class:`MatrixVectorUnitHW` implements :class:`streamfold.compiler.ir.MatrixVectorUnit`
bit-exactly (see the integer semantics in the ``ir`` module docstring).

Stream protocol
---------------
* ``i``: ``simd`` input elements per beat (``in_dtype.bits`` each, element 0 in the LSBs).
  A vector of ``MW`` elements is ``SF = MW/simd`` beats, in element order.
* ``o``: ``pe`` output elements per beat (``out_dtype.bits`` each). A vector's output is
  ``NF = MH/pe`` beats; beat ``nf`` carries channels ``nf*pe .. nf*pe+pe-1``, channel
  ``nf*pe+p`` at element ``p``.
* A beat moves on a clock edge where ``valid & ready``. ``o.valid`` does not depend on
  ``o.ready``; ``i.ready`` depends combinationally on ``o.ready`` (global stall).

Schedule
--------
One *step* per clock: for each vector, ``for nf in range(NF): for sf in range(SF)``, PE lane
``p`` accumulates the ``simd`` products of weight row ``nf*pe+p``, columns
``sf*simd .. sf*simd+simd-1``. Input beats are consumed during ``nf == 0`` only and kept in an
``SF``-entry input buffer that the steps with ``nf > 0`` read back. A vector therefore takes
``NF*SF`` cycles at full rate, and consecutive vectors (``rows`` per frame, then the next frame)
follow back to back.

Pipeline (all registers advance together on ``en = ~o.valid | o.ready``)::

    step/address counters -> [weights, buffer read] -> dot products -> accumulators
        -> [threshold read] -> output register

Memories (synchronous read ports enabled by ``en``, so Yosys can map them to block RAM; weights
and thresholds are :class:`~streamfold.hw.rom.ROM` s -- an inline ``Memory`` or, in a design
emitted by :func:`~streamfold.hw.emit_design`, a ``$readmemh`` memory file
``<unit>_weights.hex`` / ``<unit>_thresholds.hex`` when large -- the input buffer an
``amaranth.lib.memory.Memory``):

* weights: ``NF*SF`` words of ``pe*simd*weight_bits``; word ``nf*SF+sf``, lane ``p*simd+s`` holds
  the code of ``W[nf*pe+p, sf*simd+s]`` (a constant instead when ``NF*SF == 1``);
* thresholds: ``NF`` words of ``pe*n*acc_bits``; word ``nf``, lane ``p*n+k`` holds
  ``T[nf*pe+p, k]`` (a constant instead when ``NF == 1``);
* input buffer: ``SF`` words of ``simd*in_bits`` (absent when ``NF == 1``, a register when
  ``SF == 1``).
"""
from __future__ import annotations

import numpy as np
from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from streamfold.compiler.ir import MatrixVectorUnit

from .elements import lanes as _lanes, pack_words, product as _product, shape_of, tree_sum
from .rom import ROM, file_stem


# ----------------------------------------------------------------------------- helpers
def weight_words(u: MatrixVectorUnit) -> list[int]:
    """Weight memory image: ``NF*SF`` words; word ``nf*SF+sf``, lane ``p*simd+s`` (each
    ``weight_bits`` wide, lane 0 in the LSBs) is the code of ``W[nf*pe+p, sf*simd+s]``."""
    nf_, sf_ = u.neuron_fold, u.synapse_fold
    codes = u.weight_dtype.encode(np.asarray(u.weights))  # (MH, MW)
    # (NF, pe, SF, simd) -> (NF, SF, pe, simd)
    codes = codes.reshape(nf_, u.pe, sf_, u.simd).transpose(0, 2, 1, 3)
    return pack_words(codes.reshape(nf_ * sf_, u.pe * u.simd), u.weight_dtype.bits)


def threshold_words(u: MatrixVectorUnit) -> list[int]:
    """Threshold memory image: ``NF`` words; word ``nf``, lane ``p*n+k`` (each ``acc_bits`` wide,
    two's complement if the accumulator is signed) is ``T[nf*pe+p, k]``."""
    t = np.asarray(u.thresholds, dtype=np.int64)  # same cast as the reference
    codes = u.acc_dtype.encode(t).reshape(u.neuron_fold, u.pe * u.n_thresholds)
    return pack_words(codes, u.acc_dtype.bits)


# ----------------------------------------------------------------------------- component
class MatrixVectorUnitHW(wiring.Component):
    """Folded matrix-vector product with optional multi-threshold activation.

    Parameters
    ----------
    unit : MatrixVectorUnit
        The IR unit; its folding (``pe``, ``simd``) must be legal.

    Members
    -------
    i : In(stream.Signature(unsigned(simd * in_bits)))
    o : Out(stream.Signature(unsigned(pe * out_bits)))

    Latency: the output beat of a neuron fold is valid 3 cycles after the edge that ran the
    fold's last step; cycles per vector at steady state are exactly ``NF * SF``.
    """

    #: clock edges between the edge that runs a fold's last step and the one that shows its output
    LATENCY = 3

    def __init__(self, unit: MatrixVectorUnit):
        unit.check_folding()
        if unit.thresholds is not None:
            t = np.asarray(unit.thresholds)
            if t.ndim != 2 or t.shape[0] != unit.mh:
                raise ValueError(f"layer {unit.name}: thresholds must be (MH, n), got {t.shape}")
            if unit.out_dtype.bipolar and t.shape[1] != 1:
                raise ValueError(f"layer {unit.name}: a bipolar output needs exactly 1 threshold")
        self.unit = unit
        super().__init__({
            "i": In(stream.Signature(unsigned(unit.in_stream.beat_bits))),
            "o": Out(stream.Signature(unsigned(unit.out_stream.beat_bits))),
        })

    def elaborate(self, platform):
        u = self.unit
        m = Module()
        pe, simd = u.pe, u.simd
        NF, SF = u.neuron_fold, u.synapse_fold
        in_bits, w_bits, out_bits = u.in_dtype.bits, u.weight_dtype.bits, u.out_dtype.bits
        acc_shape = shape_of(u.acc_dtype)
        acc_bits = u.acc_dtype.bits
        has_thr = u.thresholds is not None
        n_thr = u.n_thresholds

        # global enable: every pipeline register and memory read port advances together
        out_valid = Signal()
        en = Signal()
        m.d.comb += en.eq(~out_valid | self.o.ready)

        # ---- stage 0: step counters, memory addresses (no zero-width counters when a fold is 1)
        nf = Signal(range(NF), name="nf") if NF > 1 else Const(0, 1)
        sf = Signal(range(SF), name="sf") if SF > 1 else Const(0, 1)
        waddr = Signal(range(NF * SF), name="waddr") if NF * SF > 1 else None
        fire = Signal()  # a step runs on this edge
        at_nf0 = (nf == 0) if NF > 1 else Const(1)
        m.d.comb += [
            self.i.ready.eq(en & at_nf0),
            fire.eq(en & (~at_nf0 | self.i.valid)),
        ]
        sf_last = (sf == SF - 1) if SF > 1 else Const(1)
        nf_last = (nf == NF - 1) if NF > 1 else Const(1)
        with m.If(fire):
            if SF > 1:
                m.d.sync += sf.eq(Mux(sf_last, 0, sf + 1))
            if NF > 1:
                with m.If(sf_last):
                    m.d.sync += nf.eq(Mux(nf_last, 0, nf + 1))
            if waddr is not None:
                m.d.sync += waddr.eq(Mux(sf_last & nf_last, 0, waddr + 1))

        # weights: word of the step in stage 1
        w_width = pe * simd * w_bits
        if NF * SF > 1:
            wrom = m.submodules.weights = ROM(w_width, NF * SF, weight_words(u),
                                              name=file_stem(u.name, "weights"),
                                              ram_style=u.ram_style)
            m.d.comb += [wrom.addr.eq(waddr), wrom.en.eq(en)]
            w1 = wrom.data
        else:
            w1 = Const(weight_words(u)[0], w_width)

        # ---- stage 1: input vector, weights
        x_width = simd * in_bits
        v1, first1, last1, use_in1 = Signal(), Signal(), Signal(), Signal()
        nf1 = Signal(range(NF)) if NF > 1 else None  # fold tags only matter for NF > 1
        xin1 = Signal(x_width)
        with m.If(en):
            m.d.sync += [
                v1.eq(fire), first1.eq(sf == 0), last1.eq(sf_last), use_in1.eq(at_nf0),
                xin1.eq(self.i.payload),
            ]
            if NF > 1:
                m.d.sync += nf1.eq(nf)
        if NF > 1 and SF == 1:  # a one-word buffer is a register (same timing as the memory)
            xbuf = Signal(x_width)
            with m.If(fire & at_nf0):
                m.d.sync += xbuf.eq(self.i.payload)
            x1 = Mux(use_in1, xin1, xbuf)
        elif NF > 1:
            bmem = m.submodules.inbuf = Memory(shape=unsigned(x_width), depth=SF, init=[])
            bwr = bmem.write_port()
            brd = bmem.read_port()
            m.d.comb += [
                bwr.addr.eq(sf), bwr.data.eq(self.i.payload), bwr.en.eq(fire & at_nf0),
                brd.addr.eq(sf), brd.en.eq(en),
            ]
            x1 = Mux(use_in1, xin1, brd.data)
        else:
            x1 = xin1

        xs = _lanes(x1, simd, in_bits)
        ws = _lanes(w1, pe * simd, w_bits)
        dots = []
        for p in range(pe):
            wrow = ws[p * simd:(p + 1) * simd]
            if u.binary:
                terms = [~(wrow[s][0] ^ xs[s][0]) for s in range(simd)]
            else:
                terms = [_product(wrow[s], u.weight_dtype, xs[s], u.in_dtype) for s in range(simd)]
            dots.append(tree_sum(terms))

        # ---- stage 2: registered dot products
        v2, first2, last2 = Signal(), Signal(), Signal()
        nf2 = Signal(range(NF)) if NF > 1 else None
        dot2 = [Signal(acc_shape, name=f"dot2_{p}") for p in range(pe)]
        with m.If(en):
            m.d.sync += [v2.eq(v1), first2.eq(first1), last2.eq(last1)]
            if NF > 1:
                m.d.sync += nf2.eq(nf1)
            m.d.sync += [d.eq(v) for d, v in zip(dot2, dots)]

        # ---- stage 3: accumulators (hold the finished sums while v3)
        v3 = Signal()
        acc = [Signal(acc_shape, name=f"acc_{p}") for p in range(pe)]
        with m.If(en):
            m.d.sync += v3.eq(v2 & last2)
            with m.If(v2):
                m.d.sync += [a.eq(Mux(first2, 0, a) + d) for a, d in zip(acc, dot2)]

        # thresholds: word of the fold finishing in stage 3
        if has_thr and n_thr:
            t_width = pe * n_thr * acc_bits
            if NF > 1:
                trom = m.submodules.thresholds = ROM(t_width, NF, threshold_words(u),
                                                     name=file_stem(u.name, "thresholds"),
                                                     ram_style=u.ram_style)
                m.d.comb += [trom.addr.eq(nf2), trom.en.eq(en)]
                t3 = trom.data
            else:
                t3 = Const(threshold_words(u)[0], t_width)
            ts = _lanes(t3, pe * n_thr, acc_bits)

        # ---- output register
        outs = []
        for p in range(pe):
            o = Signal(out_bits, name=f"out_{p}")
            if has_thr:
                if n_thr:
                    lane_t = ts[p * n_thr:(p + 1) * n_thr]
                    cmp = [acc[p] >= (t.as_signed() if u.acc_dtype.signed else t) for t in lane_t]
                    count = tree_sum(cmp)
                else:
                    count = Const(0, 1)
                if u.out_dtype.bipolar:
                    m.d.comb += o.eq(count != 0)
                else:
                    m.d.comb += o.eq(count + int(u.out_bias))  # truncated to out_bits: two's complement
            else:
                m.d.comb += o.eq(acc[p])  # sign-extended or truncated to out_bits
            outs.append(o)
        with m.If(en):
            m.d.sync += [out_valid.eq(v3), self.o.payload.eq(Cat(*outs))]
        m.d.comb += self.o.valid.eq(out_valid)
        return m

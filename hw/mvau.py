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

Everything after the counters and the input buffer is the shared
:class:`~streamfold.hw.dot_product.DotProductDatapath` (every PE lane reads the same ``simd``
input elements).

Memories (synchronous read ports enabled by ``en``, so Yosys can map them to block RAM; weights
and thresholds are :class:`~streamfold.hw.rom.ROM` s -- an inline ``Memory`` or, in a design
emitted by :func:`~streamfold.hw.emit_design`, a ``$readmemh`` memory file
``<unit>_weights.hex`` / ``<unit>_thresholds.hex`` when large -- the input buffer an
``amaranth.lib.memory.Memory``):

* weights: ``NF*SF`` words of ``pe*simd*weight_bits``; word ``nf*SF+sf``, lane ``p*simd+s`` holds
  the code of ``W[nf*pe+p, sf*simd+s]`` (a constant instead when ``NF*SF == 1``);
* thresholds: ``NF`` words of ``pe*n*acc_bits``; word ``nf``, lane ``p*n+k`` holds
  ``T[nf*pe+p, k]`` (a constant instead when ``NF == 1``);

  (both images: :func:`streamfold.compiler.rom_images.mvau_weight_image` /
  :func:`~streamfold.compiler.rom_images.mvau_threshold_image`)
* input buffer: ``SF`` words of ``simd*in_bits`` (absent when ``NF == 1``, a register when
  ``SF == 1``).
"""
from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from streamfold.compiler.ir import MatrixVectorUnit
from streamfold.compiler.rom_images import mvau_threshold_image, mvau_weight_image

from .dot_product import LATENCY, DotProductDatapath, check_thresholds


# ----------------------------------------------------------------------------- memory images
def weight_words(u: MatrixVectorUnit) -> list[int]:
    """Weight memory image as one int per word (layout: :func:`~streamfold.compiler.rom_images
    .mvau_weight_image`)."""
    return mvau_weight_image(u).words()


def threshold_words(u: MatrixVectorUnit) -> list[int]:
    """Threshold memory image as one int per word (layout: :func:`~streamfold.compiler.rom_images
    .mvau_threshold_image`)."""
    return mvau_threshold_image(u).words()


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
    LATENCY = LATENCY

    def __init__(self, unit: MatrixVectorUnit):
        check_thresholds(unit, unit.mh, "MH")
        self.unit = unit
        super().__init__({
            "i": In(stream.Signature(unsigned(unit.in_stream.beat_bits))),
            "o": Out(stream.Signature(unsigned(unit.out_stream.beat_bits))),
        })

    def elaborate(self, platform):
        u = self.unit
        m = Module()
        NF, SF = u.neuron_fold, u.synapse_fold
        dp = DotProductDatapath(
            m, self.o, pe=u.pe, simd=u.simd, weight_dtype=u.weight_dtype, in_dtype=u.in_dtype,
            acc_dtype=u.acc_dtype, out_dtype=u.out_dtype, out_bias=u.out_bias, binary=u.binary,
            weights=mvau_weight_image(u),
            thresholds=mvau_threshold_image(u) if u.thresholds is not None else None,
            folds=NF, shared_inputs=True, name=u.name, ram_style=u.ram_style,
            tree_stages=u.tree_stages, out_stages=u.out_stages, res_type=u.res_type,
            input_copies=u.input_copies, decoupled=bool(u.decoupled),
            local_weights=bool(u.local_weights), weight_register=bool(u.weight_register),
            lane_addresses=int(u.lane_addresses))
        en = dp.en

        # ---- stage 0: step counters, memory addresses (no zero-width counters when a fold is 1)
        nf = Signal(range(NF), name="nf") if NF > 1 else Const(0, 1)
        sf = Signal(range(SF), name="sf") if SF > 1 else Const(0, 1)
        waddr = Signal(range(NF * SF), name="waddr") if NF * SF > 1 else None
        fire = Signal()  # a step runs on this edge
        at_nf0 = (nf == 0) if NF > 1 else Const(1)
        m.d.comb += [
            self.i.ready.eq(dp.issue_ok & at_nf0),
            fire.eq(dp.issue_ok & (~at_nf0 | self.i.valid)),
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
        w1 = dp.weight_word(waddr)

        # ---- stage 1: step flags, input vector (from the port during nf == 0, else the buffer)
        x_width = u.simd * u.in_dtype.bits
        use_in1 = Signal(name="$signal")  # unnamed, like the datapath's step registers
        xin1 = Signal(x_width)
        dp.step(fire, first=(sf == 0), last=sf_last, tag=nf,
                also=[(use_in1, at_nf0), (xin1, self.i.payload)])
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

        # ---- stages 1 .. output: products, adder trees, accumulators, thresholds, output
        dp.finish(x1, w1)
        return m

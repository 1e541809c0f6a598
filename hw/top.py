"""Top level: a whole :class:`~streamfold.compiler.graph.DataflowGraph` behind AXI4-Stream ports.

The parts come from :func:`streamfold.compiler.topology.pieces`, the one walk of the graph that
every consumer shares: for every edge, a data-width converter (:mod:`.dwc`) where the producer's
fold differs from the consumer's, then the edge's FIFO (:mod:`.fifo`, depth 0 is a wire) of
the consumer's input beats; for every unit, its component from its kind's record
(:mod:`.registry`). A chain reads::

    s_axis -> fifo0 -> unit 0 -> (dwc0) -> fifo1 -> unit 1 -> ... -> unit n-1 -> fifo{n} -> m_axis

Ports (all in the default ``sync`` domain: ``clk``, ``rst`` synchronous, active high):

=================  ====  ===================================================================
s_axis_tdata       in    ``in_stream.fold * in_bits`` bits rounded up to a multiple of 8;
                         element 0 in the LSBs, padding bits ignored
s_axis_tvalid      in
s_axis_tready      out
s_axis_tlast       in    accepted and ignored (frames are counted, not delimited)
m_axis_tdata       out   ``out_stream.fold * out_bits`` rounded up to bytes, padding is zero
m_axis_tvalid      out
m_axis_tready      in
m_axis_tlast       out   high on the last beat of every output frame
                         (every ``out_stream.beats_per_frame`` beats)
=================  ====  ===================================================================
"""
from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from streamfold.compiler import topology
from streamfold.compiler.ir import DataflowGraph

from .dwc import StreamDWC
from .fifo import StreamFIFO
from .registry import build_unit, port


def byte_width(bits: int) -> int:
    """``bits`` rounded up to a whole number of bytes (at least one byte)."""
    return max(8, (bits + 7) // 8 * 8)


class Accelerator(wiring.Component):
    """The dataflow accelerator of a pipeline (see the module docstring for the ports).

    Parameters
    ----------
    pipeline : DataflowGraph
        Checked with ``pipeline.check()`` (units, ports, streams).

    Attributes
    ----------
    in_bits, out_bits : int
        Meaningful bits of ``s_axis_tdata`` / ``m_axis_tdata`` (the rest is padding).
    """

    def __init__(self, pipeline: DataflowGraph):
        pipeline.check()
        self.pipeline = pipeline
        self.in_bits = pipeline.in_stream.beat_bits
        self.out_bits = pipeline.out_stream.beat_bits
        self.frame_beats = pipeline.out_stream.beats_per_frame
        super().__init__({
            "s_axis_tdata": In(byte_width(self.in_bits)),
            "s_axis_tvalid": In(1),
            "s_axis_tready": Out(1),
            "s_axis_tlast": In(1),
            "m_axis_tdata": Out(byte_width(self.out_bits)),
            "m_axis_tvalid": Out(1),
            "m_axis_tready": In(1),
            "m_axis_tlast": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        units = {}  # unit name -> its component
        tail = {}  # edge index -> output of the last part built on the edge so far
        first = last = None
        edges = self.pipeline.edges
        for piece in topology.pieces(self.pipeline):  # stream order: each part after what feeds it
            if piece.kind == "unit":
                c = units[piece.unit.name] = build_unit(piece.unit)
                m.submodules[piece.name] = c
                for k, e in enumerate(edges):
                    if e.dst == piece.unit.name:
                        wiring.connect(m, tail[k], port(c, "i", e.dst_port))
                continue
            c = StreamFIFO(piece.width, piece.depth) if piece.kind == "fifo" else \
                StreamDWC(piece.width, piece.a, piece.b)
            m.submodules[piece.name] = c
            e = piece.edge
            if piece.index in tail:  # the converter before this FIFO
                wiring.connect(m, tail[piece.index], c.i)
            elif e.src is None:
                first = c.i
            else:
                wiring.connect(m, port(units[e.src], "o", e.src_port), c.i)
            tail[piece.index] = c.o
            if e.dst is None and piece.kind == "fifo":
                last = c.o

        m.d.comb += [
            first.payload.eq(self.s_axis_tdata[:self.in_bits]),
            first.valid.eq(self.s_axis_tvalid),
            self.s_axis_tready.eq(first.ready),
            self.m_axis_tdata.eq(last.payload),
            self.m_axis_tvalid.eq(last.valid),
            last.ready.eq(self.m_axis_tready),
        ]

        # clk and rst belong to the port contract even when nothing else is clocked (e.g. a 1x1
        # max-pool between direct FIFOs): keep the sync domain in use
        out_of_reset = Signal(name="out_of_reset")
        m.d.sync += out_of_reset.eq(1)

        # tlast: count output beats within a frame
        if self.frame_beats > 1:
            beat = Signal(range(self.frame_beats))
            is_last = beat == self.frame_beats - 1
            with m.If(self.m_axis_tvalid & self.m_axis_tready):
                m.d.sync += beat.eq(Mux(is_last, 0, beat + 1))
            m.d.comb += self.m_axis_tlast.eq(is_last)
        else:
            m.d.comb += self.m_axis_tlast.eq(1)
        return m

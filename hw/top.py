"""Top level: a whole :class:`~streamfold.compiler.ir.Pipeline` behind AXI4-Stream ports.

Structure, in stream order::

    s_axis -> FIFO[0] -> unit 0 -> (DWC) -> FIFO[1] -> unit 1 -> ... -> unit n-1 -> FIFO[n] -> m_axis

* ``FIFO[i]`` has depth ``pipeline.fifo_depths[i]`` beats of unit ``i``'s *input* stream
  (``FIFO[n]``: beats of the output stream); depth 0 is a direct wire (:mod:`.fifo`).
* A data-width converter (:mod:`.dwc`) sits between unit ``k`` and ``FIFO[k+1]`` wherever unit
  ``k``'s output fold differs from unit ``k+1``'s input fold.
* Each unit's component comes from the registry (:mod:`.registry`) by ``unit.kind``.

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

import re

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from streamfold.compiler.ir import Pipeline

from .dwc import StreamDWC
from .fifo import StreamFIFO
from .registry import build_unit


def byte_width(bits: int) -> int:
    """``bits`` rounded up to a whole number of bytes (at least one byte)."""
    return max(8, (bits + 7) // 8 * 8)


def _ident(name: str) -> str:
    return re.sub(r"\W", "_", str(name)) or "unit"


class Accelerator(wiring.Component):
    """The dataflow accelerator of a pipeline (see the module docstring for the ports).

    Parameters
    ----------
    pipeline : Pipeline
        Checked with ``pipeline.check()``; ``fifo_depths`` must have ``len(units) + 1`` entries.

    Attributes
    ----------
    in_bits, out_bits : int
        Meaningful bits of ``s_axis_tdata`` / ``m_axis_tdata`` (the rest is padding).
    """

    def __init__(self, pipeline: Pipeline):
        if not pipeline.units:
            raise ValueError("empty pipeline")
        pipeline.check()
        if len(pipeline.fifo_depths) != len(pipeline.units) + 1:
            raise ValueError(f"fifo_depths needs {len(pipeline.units) + 1} entries, "
                             f"got {len(pipeline.fifo_depths)}")
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
        p = self.pipeline
        units = p.units
        chain = []  # components in stream order, each with i/o stream members
        for k, unit in enumerate(units):
            spec = unit.in_stream
            fifo = StreamFIFO(spec.beat_bits, p.fifo_depths[k])
            m.submodules[f"fifo{k}"] = fifo
            chain.append(fifo)
            hw = build_unit(unit)
            m.submodules[f"u{k}_{_ident(unit.name)}"] = hw
            chain.append(hw)
            if k + 1 < len(units):
                out, nxt = unit.out_stream, units[k + 1].in_stream
                if out.fold != nxt.fold:
                    dwc = StreamDWC(out.dtype.bits, out.fold, nxt.fold)
                    m.submodules[f"dwc{k}"] = dwc
                    chain.append(dwc)
        fifo = StreamFIFO(p.out_stream.beat_bits, p.fifo_depths[-1])
        m.submodules[f"fifo{len(units)}"] = fifo
        chain.append(fifo)

        for up, down in zip(chain, chain[1:]):
            wiring.connect(m, up.o, down.i)

        first, last = chain[0], chain[-1]
        m.d.comb += [
            first.i.payload.eq(self.s_axis_tdata[:self.in_bits]),
            first.i.valid.eq(self.s_axis_tvalid),
            self.s_axis_tready.eq(first.i.ready),
            self.m_axis_tdata.eq(last.o.payload),
            self.m_axis_tvalid.eq(last.o.valid),
            last.o.ready.eq(self.m_axis_tready),
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

"""Verilog emission of a whole pipeline."""
from __future__ import annotations

from amaranth.back import verilog

from streamfold.compiler.ir import Pipeline

from .top import Accelerator


def emit_verilog(pipeline: Pipeline, name: str = "streamfold_top") -> str:
    """Verilog source of :class:`~streamfold.hw.top.Accelerator` for ``pipeline``.

    The top module is ``name`` with ports ``clk``, ``rst`` and the AXI4-Stream ports of
    :class:`~streamfold.hw.top.Accelerator`. Source-location attributes are left out, so the
    text depends only on the pipeline (same pipeline, same text).
    """
    return verilog.convert(Accelerator(pipeline), name=name, emit_src=False)

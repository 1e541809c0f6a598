"""Amaranth hardware of streamfold: one component per IR unit kind, FIFOs, width converters,
the top-level :class:`Accelerator` and Verilog emission.

Only :mod:`streamfold.compiler.ir` is imported from the compiler (never its ONNX front end).
"""
from .registry import build_unit, hw_class
from .mvau import MatrixVectorUnitHW
from .sliding_window import SlidingWindowHW
from .vvau import VectorVectorUnitHW
from .maxpool import MaxPoolHW
from .gsumpool import GlobalSumPoolHW
from .fifo import StreamFIFO
from .dwc import StreamDWC
from .top import Accelerator, byte_width
from .rom import ROM, ROM_INLINE_MAX_BITS, inline_roms, rom_files
from .verilog import VerilogDesign, emit_design, emit_verilog, referenced_files

__all__ = [
    "build_unit", "hw_class",
    "MatrixVectorUnitHW", "SlidingWindowHW", "VectorVectorUnitHW", "MaxPoolHW",
    "GlobalSumPoolHW", "StreamFIFO", "StreamDWC", "Accelerator", "byte_width", "emit_verilog",
    "emit_design", "VerilogDesign", "referenced_files", "ROM", "ROM_INLINE_MAX_BITS", "rom_files",
    "inline_roms",
]

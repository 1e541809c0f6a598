"""Verilog emission of a whole pipeline.

:func:`emit_design` is the main entry point: the Verilog text *and* the memory-initialisation
files that large weight/threshold ROMs read with ``$readmemh`` (see :mod:`.rom`). The files are
referenced by bare name: keep them in the folder the simulator or synthesis tool runs in (a build
folder holds them next to ``streamfold_top.v``; :meth:`VerilogDesign.write` does that).

:func:`emit_verilog` returns one self-contained Verilog text (every ROM inline, as Amaranth
``Memory`` initial values): fine for small designs, slow to build for large ones.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from amaranth.back import verilog as _verilog

from streamfold.compiler.build_folder import referenced_files  # noqa: F401  (part of streamfold.hw's API)
from streamfold.compiler.ir import DataflowGraph

from .rom import ROM_INLINE_MAX_BITS, rom_files
from .top import Accelerator


@dataclass
class VerilogDesign:
    """A design as emitted: the Verilog text and the memory files it reads.

    ``files`` maps a bare file name (``fc0_weights.hex``) to its text; the Verilog names the files
    exactly so (``INIT_FILE`` parameters of ``streamfold_rom`` instances). Empty when every ROM is
    inline.
    """

    top: str
    verilog: str
    files: dict = field(default_factory=dict)

    def write(self, folder, verilog_name: str | None = None) -> list[Path]:
        """Write the Verilog (``<top>.v`` unless ``verilog_name``) and every memory file into
        ``folder``; return the paths written (Verilog first)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = [folder / (verilog_name or f"{self.top}.v")]
        paths[0].write_text(self.verilog)
        for name, text in self.files.items():
            p = folder / name
            p.write_text(text)
            paths.append(p)
        return paths


def emit_design(pipeline: DataflowGraph, name: str = "streamfold_top", *, rom: str = "auto",
                inline_max_bits: int = ROM_INLINE_MAX_BITS) -> VerilogDesign:
    """Verilog of :class:`~streamfold.hw.top.Accelerator` for ``pipeline``, with memory files.

    ``rom``: ``"auto"`` (default) puts every weight/threshold ROM of more than
    ``inline_max_bits`` bits into a memory file read by ``$readmemh`` (module ``streamfold_rom``,
    appended once to the text), smaller ones stay inline; ``"inline"`` keeps all inline (one
    self-contained text, no files); ``"file"`` puts every ROM into a file.

    Deterministic: the same pipeline gives the same text and files (source-location attributes are
    left out).
    """
    with rom_files(rom, inline_max_bits) as files:
        text = _verilog.convert(Accelerator(pipeline), name=name, emit_src=False)
    modules = files.module_source()
    if modules:
        text = text.rstrip("\n") + "\n\n" + modules
    return VerilogDesign(name, text, dict(files.files))


def emit_verilog(pipeline: DataflowGraph, name: str = "streamfold_top") -> str:
    """Self-contained Verilog source of :class:`~streamfold.hw.top.Accelerator` for ``pipeline``.

    The top module is ``name`` with ports ``clk``, ``rst`` and the AXI4-Stream ports of
    :class:`~streamfold.hw.top.Accelerator`. Every ROM is inline (no memory files), so the text
    alone is the design; for large designs use :func:`emit_design`, which moves large ROMs into
    memory files (a much shorter text that Verilator builds far faster). Same pipeline, same text.
    """
    return emit_design(pipeline, name, rom="inline").verilog

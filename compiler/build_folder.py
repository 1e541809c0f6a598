"""What a build folder holds and how to read its design back, without elaborating anything.

A build folder (``streamfold compile``) holds ``streamfold_top.v`` and the memory files its
large ROMs read by bare file name (``$readmemh``, ``INIT_FILE`` parameters), the folded IR
(``ir.json``, ``ir_arrays.npz``, :mod:`.model`), ``fold.json`` and ``report.json``.
"""
from __future__ import annotations

import re
from pathlib import Path

from .errors import BuildError

TOP_NAME = "streamfold_top"
VERILOG_FILE = f"{TOP_NAME}.v"

_INIT_FILE_RE = re.compile(r'\.INIT_FILE\s*\(\s*"([^"]*)"\s*\)')


def referenced_files(verilog_text: str) -> list[str]:
    """The memory files a design's Verilog reads (``INIT_FILE`` parameters), in order, unique."""
    seen: dict[str, None] = {}
    for name in _INIT_FILE_RE.findall(verilog_text):
        seen.setdefault(name, None)
    return list(seen)


def read_design(build):
    """``(verilog_text, files)`` of a build folder: ``streamfold_top.v`` and the memory files it
    reads (bare file name -> text), from the same folder."""
    build = Path(build)
    vfile = build / VERILOG_FILE
    if not vfile.exists():
        raise BuildError(f"{build}: no {VERILOG_FILE}; compile again with `streamfold compile`")
    text = vfile.read_text()
    files = {}
    for name in referenced_files(text):
        p = build / name
        if not p.is_file():
            raise BuildError(f"{build}: memory file {name} (read by {VERILOG_FILE}) is missing; "
                             "compile again with `streamfold compile`")
        files[name] = p.read_text()
    return text, files

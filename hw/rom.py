"""Read-only memories (weights, thresholds) with two back-ends: inline or memory file.

:class:`ROM` is a synchronous-read ROM: ``data`` takes ``init[addr]`` on a clock edge where
``en`` is high and holds its value otherwise (no reset). It is elaborated as one of

* **inline**: an :class:`amaranth.lib.memory.Memory` with ``init``; the emitted Verilog carries
  one ``mem[i] = value;`` line per word. Self-contained, and the only back-end Amaranth's own
  simulator can run.
* **file**: an :class:`amaranth.hdl.Instance` of the small hand-written Verilog module
  ``streamfold_rom`` (:data:`ROM_MODULE`), which loads its words with ``$readmemh(INIT_FILE, mem)``
  from a memory-initialisation file named after the unit and the memory
  (``<unit>_weights.hex``, ``<unit>_thresholds.hex``; see :func:`hex_image` for the format). The
  file is referenced by its bare name, so simulators and synthesis tools resolve it in their
  working directory (or, for Yosys, next to the Verilog file).

Which one is used is decided when the ROM is elaborated, by the *ROM context* (a
``contextvars`` variable):

* no context (the default, e.g. Amaranth's simulator, ``amaranth.back.verilog.convert`` of a
  lone component): **inline**, always;
* inside ``with rom_files(mode, inline_max_bits) as files:``: ``mode="inline"`` keeps every ROM
  inline, ``mode="file"`` puts every ROM into a file, ``mode="auto"`` puts a ROM into a file when
  it holds more than ``inline_max_bits`` bits (default :data:`ROM_INLINE_MAX_BITS`). The files'
  texts are collected in ``files.files`` (file name -> text) and the module source(s) the
  design needs in ``files.module_source()``.

:func:`streamfold.hw.emit_design` opens that context around the Verilog conversion; a ROM that
is not too large for a block RAM stays inline, so small designs stay one self-contained file.

Timing is the same in both back-ends (and the same as the ``Memory`` read ports the units used
before): a read issued with ``en`` on edge ``t`` shows ``data`` after edge ``t``.
"""
from __future__ import annotations

import contextlib
import contextvars
import re
from typing import Iterator, Sequence

from amaranth.hdl import ClockSignal, Instance, Module, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

#: A ROM holding more bits than this goes to a memory file in ``mode="auto"`` (16 Kib: about one
#: 18 Kb block RAM; every unit-test sized design stays inline and self-contained).
ROM_INLINE_MAX_BITS = 16 * 1024

#: Name of the Verilog ROM module (``ram_style`` variants get a suffix, see :func:`rom_module_name`).
ROM_MODULE = "streamfold_rom"

MODES = ("auto", "inline", "file")

_ROM_TEMPLATE = """\
// {name}: synchronous-read ROM loaded from a memory file by $readmemh (hex, one word per line,
// word 0 first). data <= mem[addr] on a rising clk edge with en high; no reset.
// Written by streamfold.hw.rom.
module {name} #(
  parameter WIDTH = 8,
  parameter DEPTH = 2,
  parameter ADDR_BITS = 1,
  parameter INIT_FILE = ""
) (
  input wire clk,
  input wire en,
  input wire [ADDR_BITS-1:0] addr,
  output reg [WIDTH-1:0] data
);
{attr}  reg [WIDTH-1:0] mem [0:DEPTH-1];
  generate
    if (INIT_FILE != "") begin : load
      initial $readmemh(INIT_FILE, mem);
    end
  endgenerate
  always @(posedge clk) begin
    if (en) data <= mem[addr];
  end
endmodule
"""


def _style(ram_style) -> str:
    s = (ram_style or "auto").strip().lower()
    if not re.fullmatch(r"[a-z][a-z0-9_]*", s):
        raise ValueError(f"ram_style {ram_style!r} is not an identifier")
    return s


def rom_module_name(ram_style: str | None = "auto") -> str:
    """``streamfold_rom`` for ``ram_style`` auto, else ``streamfold_rom_<style>``."""
    s = _style(ram_style)
    return ROM_MODULE if s == "auto" else f"{ROM_MODULE}_{s}"


def rom_module_source(ram_style: str | None = "auto") -> str:
    """Verilog source of the ROM module for ``ram_style``: its memory array carries
    ``(* rom_style = s, ram_style = s *)`` unless the style is ``auto``."""
    s = _style(ram_style)
    attr = "" if s == "auto" else f'  (* rom_style = "{s}", ram_style = "{s}" *)\n'
    return _ROM_TEMPLATE.format(name=rom_module_name(s), attr=attr)


def hex_image(words: Sequence[int], width: int) -> str:
    """Memory-file text of ``words`` for ``$readmemh``: one word per line, word 0 first, each as
    exactly ``ceil(width/4)`` lower-case hex digits (at least one), newline-terminated."""
    digits = max(1, -(-width // 4))
    top = 1 << width
    out = []
    for i, w in enumerate(words):
        w = int(w)
        if w < 0 or w >= top:
            raise ValueError(f"ROM word {i} = {w} does not fit in {width} unsigned bits")
        out.append(f"{w:0{digits}x}")
    return "\n".join(out) + "\n" if out else ""


def file_stem(*parts: str) -> str:
    """A file-name stem from name parts: every non-identifier character becomes ``_``."""
    return "_".join(re.sub(r"\W", "_", str(p)) for p in parts if str(p)) or "rom"


# ----------------------------------------------------------------------------- context
class RomFiles:
    """Collects the memory files and ROM module variants of one elaboration (see module doc)."""

    def __init__(self, mode: str = "auto", inline_max_bits: int = ROM_INLINE_MAX_BITS):
        if mode not in MODES:
            raise ValueError(f"unknown ROM mode {mode!r}: one of {MODES}")
        self.mode = mode
        self.inline_max_bits = int(inline_max_bits)
        self.files: dict[str, str] = {}
        self.styles: list[str] = []  # ram styles of the modules used, in order of first use

    def use_file(self, bits: int) -> bool:
        """Whether a ROM of ``bits`` bits goes to a memory file."""
        if self.mode == "file":
            return True
        if self.mode == "inline":
            return False
        return bits > self.inline_max_bits

    def add(self, stem: str, text: str, ram_style: str = "auto") -> str:
        """Record a memory file (and the module variant it needs); return its file name.

        A name already taken by other contents gets a suffix ``_1``, ``_2``, ...; the same
        contents under the same stem share one file."""
        stem = file_stem(stem)
        name, k = f"{stem}.hex", 0
        while name in self.files and self.files[name] != text:
            k += 1
            name = f"{stem}_{k}.hex"
        self.files[name] = text
        s = _style(ram_style)
        if s not in self.styles:
            self.styles.append(s)
        return name

    def module_source(self) -> str:
        """Verilog of every ROM module variant used (empty when no ROM went to a file)."""
        return "\n".join(rom_module_source(s) for s in self.styles)


_CONTEXT: contextvars.ContextVar[RomFiles | None] = contextvars.ContextVar("streamfold_rom",
                                                                           default=None)


@contextlib.contextmanager
def rom_files(mode: str = "auto", inline_max_bits: int = ROM_INLINE_MAX_BITS) -> Iterator[RomFiles]:
    """Elaborate ROMs under ``mode`` (``auto``/``inline``/``file``) and collect their files."""
    files = RomFiles(mode, inline_max_bits)
    token = _CONTEXT.set(files)
    try:
        yield files
    finally:
        _CONTEXT.reset(token)


@contextlib.contextmanager
def inline_roms() -> Iterator[None]:
    """Force every ROM elaborated inside to be inline (an Amaranth ``Memory``)."""
    token = _CONTEXT.set(None)
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def current_rom_files() -> RomFiles | None:
    """The active collector, or None (then every ROM is inline)."""
    return _CONTEXT.get()


# ----------------------------------------------------------------------------- component
class ROM(wiring.Component):
    """Synchronous-read ROM of ``depth`` words of ``width`` bits.

    Parameters
    ----------
    width, depth : int
        Word width (>= 1) and number of words (>= 1).
    init : sequence of int
        ``depth`` unsigned words (word 0 first).
    name : str
        File-name stem of the memory file (``<name>.hex``), e.g. ``fc0_weights``.
    ram_style : str
        ``auto`` or a style (``block``, ``distributed``, ``ultra``, ...) for the memory's
        ``ram_style``/``rom_style`` attributes.
    backend : str or None
        ``"inline"`` or ``"file"`` forces the back-end (``"file"`` still needs a ROM context);
        None (default) follows the context.

    Members
    -------
    addr : In(max(1, ceil(log2(depth))))
    en : In(1)
    data : Out(width)  -- ``init[addr]`` registered on a clock edge where ``en`` is high
    """

    def __init__(self, width: int, depth: int, init: Sequence[int], *, name: str = "rom",
                 ram_style: str | None = "auto", backend: str | None = None):
        if width < 1 or depth < 1:
            raise ValueError(f"ROM {name}: width and depth must be at least 1, got {width}x{depth}")
        init = [int(w) for w in init]
        if len(init) != depth:
            raise ValueError(f"ROM {name}: {len(init)} initial words for depth {depth}")
        if backend not in (None, "inline", "file"):
            raise ValueError(f"ROM {name}: backend must be None, 'inline' or 'file'")
        self.width, self.depth, self.init = int(width), int(depth), init
        self.name = name
        self.ram_style = _style(ram_style)
        self.backend = backend
        self.addr_bits = max(1, (self.depth - 1).bit_length())
        self.file_name: str | None = None  # set when elaborated into a file
        super().__init__({
            "addr": In(self.addr_bits),
            "en": In(1),
            "data": Out(self.width),
        })

    @property
    def bits(self) -> int:
        return self.width * self.depth

    def resolved_backend(self) -> str:
        """``"inline"`` or ``"file"``: what elaborating now would produce."""
        files = current_rom_files()
        if files is None or self.backend == "inline":
            return "inline"
        if self.backend == "file":
            return "file"
        return "file" if files.use_file(self.bits) else "inline"

    def elaborate(self, platform):
        m = Module()
        if self.resolved_backend() == "file":
            files = current_rom_files()
            self.file_name = files.add(self.name, hex_image(self.init, self.width), self.ram_style)
            m.submodules.rom = Instance(
                rom_module_name(self.ram_style),
                p_WIDTH=self.width, p_DEPTH=self.depth, p_ADDR_BITS=self.addr_bits,
                p_INIT_FILE=self.file_name,
                i_clk=ClockSignal("sync"), i_en=self.en, i_addr=self.addr, o_data=self.data,
            )
            return m
        attrs = {} if self.ram_style == "auto" else {"ram_style": self.ram_style}
        mem = m.submodules.mem = Memory(shape=unsigned(self.width), depth=self.depth,
                                        init=self.init, attrs=attrs)
        rd = mem.read_port()
        m.d.comb += [rd.addr.eq(self.addr), rd.en.eq(self.en), self.data.eq(rd.data)]
        return m

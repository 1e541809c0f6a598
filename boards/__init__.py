"""FPGA boards streamfold knows: device resources, family, default clock, Yosys command.

The figures live in ``boards.json`` beside this file (one record per board, each with a
``source`` naming the vendor data sheet it comes from)::

    >>> from streamfold.boards import load_board, list_boards
    >>> b = load_board("pynq-z1")
    >>> b.family, b.resources["LUT"], b.resources["BRAM"]
    ('xc7', 53200, 280)

Resource classes (the same keys synthesis results and estimates use):

* ``LUT``: LUTs (LUT6 on Xilinx, LUT4 on ECP5/iCE40); LUTs used as memory count here too;
* ``FF``: flip-flops;
* ``BRAM``: the family's block-RAM primitive, ``bram_primitive`` of ``bram_kbits`` each
  (Xilinx RAMB18, one RAMB36 counting 2; ECP5 DP16KD; iCE40 SB_RAM40_4K);
* ``URAM``: Xilinx URAM288 or iCE40 SB_SPRAM256KA;
* ``DSP``: DSP48E1/E2, ECP5 MULT18X18D, iCE40 SB_MAC16.
"""
from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from streamfold.compiler.errors import StreamfoldError

BOARDS_FILE = Path(__file__).with_name("boards.json")

#: Families streamfold can synthesise for, with the Yosys pass that does it.
FAMILIES = {
    "xc7": "synth_xilinx -flatten -noiopad -family xc7",
    "xcup": "synth_xilinx -flatten -noiopad -family xcup",
    "ecp5": "synth_ecp5",
    "ice40": "synth_ice40 -dsp",
}

RESOURCE_CLASSES = ("LUT", "FF", "BRAM", "URAM", "DSP")


class BoardError(StreamfoldError):
    """An unknown board name or a malformed board record."""


@dataclass(frozen=True)
class Board:
    name: str
    part: str
    device: str
    family: str
    lut: int
    ff: int
    bram: int
    bram_primitive: str
    bram_kbits: int
    uram: int
    uram_kbits: int
    dsp: int
    dsp_primitive: str
    dsp_mult: tuple
    lut_inputs: int
    clock_mhz: float
    synth: str
    source: str
    nextpnr: dict | None = field(default=None, compare=False)
    #: share of the LUTs a design may fill and still route in nextpnr (measured; None: no limit known)
    routable_lut: float | None = field(default=None, compare=False)

    @property
    def resources(self) -> dict:
        """Device totals per resource class (``RESOURCE_CLASSES``)."""
        return {"LUT": self.lut, "FF": self.ff, "BRAM": self.bram, "URAM": self.uram, "DSP": self.dsp}

    @property
    def bram18(self) -> int:
        """Block RAM in 18 Kb equivalents (iCE40 EBRs are 4 Kb: rounded up)."""
        return -(-self.bram * self.bram_kbits // 18)

    def utilisation(self, used: dict) -> dict:
        """``used[class] / device total`` for each class the device has (fractions, not %)."""
        out = {}
        for k, total in self.resources.items():
            if k in used and total:
                out[k] = round(float(used[k]) / total, 6)
        return out

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["dsp_mult"] = list(self.dsp_mult)
        return d


@lru_cache(maxsize=1)
def _records() -> dict:
    doc = json.loads(BOARDS_FILE.read_text())
    return doc["boards"]


def list_boards() -> list[str]:
    """Names of every known board, sorted."""
    return sorted(_records())


def _normalise(name: str) -> str:
    return str(name).strip().lower().replace("_", "-").replace(" ", "-")


def load_board(name: str) -> Board:
    """The :class:`Board` called ``name`` (case, ``_`` and spaces are forgiven).

    Raises :class:`BoardError` naming the closest known boards when there is none.
    """
    recs = _records()
    key = _normalise(name)
    if key not in recs:
        close = difflib.get_close_matches(key, list(recs), n=3, cutoff=0.4)
        hint = f"did you mean {', '.join(close)}?" if close else f"known boards: {', '.join(sorted(recs))}"
        raise BoardError(f"unknown board {name!r}; {hint} (`streamfold boards` lists them all)")
    r = dict(recs[key])
    if r.get("family") not in FAMILIES:
        raise BoardError(f"board {key}: unknown family {r.get('family')!r}; one of {sorted(FAMILIES)}")
    r["dsp_mult"] = tuple(r["dsp_mult"])
    try:
        return Board(name=key, **r)
    except TypeError as e:
        raise BoardError(f"board {key}: malformed record in {BOARDS_FILE.name}: {e}") from None


def board_or_family(name: str) -> tuple[Board | None, str]:
    """``(board, family)`` for a board name, or ``(None, family)`` for a bare family name."""
    if _normalise(name) in FAMILIES:
        return None, _normalise(name)
    b = load_board(name)
    return b, b.family


__all__ = ["Board", "BoardError", "FAMILIES", "RESOURCE_CLASSES", "board_or_family", "list_boards",
           "load_board"]

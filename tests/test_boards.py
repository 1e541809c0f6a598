"""Board table: every record loads, figures are sane, unknown names suggest close ones."""
from __future__ import annotations

import json

import pytest

from streamfold.boards import BOARDS_FILE, FAMILIES, Board, BoardError, list_boards, load_board
from streamfold.compiler.errors import StreamfoldError

REQUIRED = ["pynq-z1", "pynq-z2", "arty-a7-100t", "ultra96-v2", "zcu104", "kv260", "alveo-u250",
            "ulx3s-85f", "icebreaker"]


def test_required_boards_present():
    assert set(REQUIRED) <= set(list_boards())
    assert list_boards() == sorted(list_boards())


@pytest.mark.parametrize("name", list_boards())
def test_every_board_loads(name):
    b = load_board(name)
    assert isinstance(b, Board) and b.name == name
    assert b.family in FAMILIES
    assert b.lut > 0 and b.ff >= b.lut and b.bram > 0 and b.dsp > 0
    assert b.lut_inputs == (6 if b.family in ("xc7", "xcup") else 4)
    assert b.clock_mhz > 0
    assert b.synth.split()[0].startswith("synth_")
    assert len(b.source) > 20  # names a data sheet
    assert set(b.resources) == {"LUT", "FF", "BRAM", "URAM", "DSP"}


def test_known_figures():
    z = load_board("pynq-z1")
    assert (z.lut, z.ff, z.bram, z.dsp, z.family) == (53200, 106400, 280, 220, "xc7")
    assert load_board("pynq-z2").resources == z.resources
    k = load_board("kv260")  # K26: 144 BRAM36 = 288 RAMB18, 64 URAM, 1,248 DSP
    assert (k.lut, k.ff, k.bram, k.uram, k.dsp) == (117120, 234240, 288, 64, 1248)
    assert load_board("ulx3s-85f").bram_primitive == "DP16KD"
    ice = load_board("icebreaker")
    assert (ice.lut, ice.bram, ice.bram_kbits, ice.uram, ice.dsp) == (5280, 30, 4, 4, 8)
    assert load_board("zcu104").family == "xcup" and load_board("arty-a7-100t").family == "xc7"


def test_names_are_forgiving():
    assert load_board("PYNQ_Z1").name == "pynq-z1"
    assert load_board(" Ultra96-V2 ").name == "ultra96-v2"


@pytest.mark.parametrize("bad, hint", [("pynq-z3", "pynq-z"), ("ulx3s", "ulx3s-85f"),
                                       ("zcu102", "zcu104"), ("arty", "arty-a7-100t")])
def test_unknown_board_suggests(bad, hint):
    with pytest.raises(BoardError) as e:
        load_board(bad)
    msg = str(e.value)
    assert isinstance(e.value, StreamfoldError)
    assert "\n" not in msg and bad in msg and hint in msg


def test_unknown_board_without_close_match_lists_all():
    with pytest.raises(BoardError, match="known boards"):
        load_board("xyzzy-9000")


def test_utilisation():
    b = load_board("pynq-z1")
    u = b.utilisation({"LUT": 5320, "FF": 0, "BRAM": 28, "DSP": 22})
    assert u == {"LUT": 0.1, "FF": 0.0, "BRAM": 0.1, "DSP": 0.1}


def test_json_is_packaged_data():
    doc = json.loads(BOARDS_FILE.read_text())
    assert set(doc["boards"]) == set(list_boards())
    import tomllib
    from pathlib import Path
    py = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert "*.json" in py["tool"]["setuptools"]["package-data"]["streamfold.boards"]


def test_cli_boards(capsys):
    from streamfold.compiler.cli import main
    assert main(["boards"]) == 0
    out = capsys.readouterr().out
    for n in REQUIRED:
        assert n in out
    assert main(["boards", "--sources"]) == 0
    assert "DS190" in capsys.readouterr().out

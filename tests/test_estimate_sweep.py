"""The estimate sweep: real Brevitas models folded for a board, synthesised whole by Yosys.

Eight models cover binary, W2A2, W4A4 and W8A8; dense, convolutional, depthwise and pooled; the
shipped demo among them (``benchmarks/synth_vs_estimate.py SWEEP``). Each is compiled with
``--board`` for a Xilinx (pynq-z1, xc7) and an ECP5 (ulx3s-85f) board and synthesised whole;
the test asserts what the fold promises:

* every resource Yosys counts is within the board, and within the fold's ceiling;
* LUT (logic and LUT-RAM) and FF within :data:`TOLERANCE` of the estimate, BRAM and DSP exact.

Board folds are ``slow`` (whole-design Yosys takes minutes a run); the fast profile synthesises two
of the models at a frame-rate fold on xc7 (seconds each). The figures of the last run are in
``benchmarks/results/estimate_sweep.json`` and ``docs/resources.md``, which also says which rows
are still outside the tolerance (those tests fail in the slow profile until the model is fixed).
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from synth_vs_estimate import SWEEP, SWEEP_CEILING, export_named  # noqa: E402

#: the relative error allowed on LUT and FF (the issue's 10%)
TOLERANCE = 0.10
#: the fold's share of each board resource (``compile --ceiling``'s default)
CEILING = 0.80
#: (model, board, frames/s) of the fast profile: small designs, Yosys in seconds
FAST = [("mlp_4bit", "pynq-z1", 100_000), ("examples/models/digits_w2a2.onnx", "pynq-z1", 20_000)]
BOARDS = ["pynq-z1", "ulx3s-85f"]


def _name(model: str) -> str:
    return Path(model).stem if model.endswith(".onnx") else model


def _cases():
    for model in SWEEP:
        for board in BOARDS:
            marks = [pytest.mark.synth, pytest.mark.slow]
            yield pytest.param(model, board, marks=marks, id=f"{_name(model)}-{board}")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    d = tmp_path_factory.mktemp("sweep_models")
    cache = {}

    def get(model: str) -> Path:
        if model.endswith(".onnx"):
            return ROOT / model
        if model not in cache:
            cache[model] = export_named(model, d / f"{model}.onnx")
        return cache[model]
    return get


@pytest.mark.parametrize("model,board", list(_cases()))
def test_board_fold_fits_and_matches_yosys(yosys_warm, exported, tmp_path, model, board):
    _check(exported(model), tmp_path, board, ceiling=SWEEP_CEILING.get((_name(model), board), CEILING))


@pytest.mark.synth
@pytest.mark.parametrize("model,board,fps", FAST, ids=[f"{_name(m)}-{b}-{f}fps" for m, b, f in FAST])
def test_frame_rate_fold_matches_yosys(yosys_warm, exported, tmp_path, model, board, fps):
    _check(exported(model), tmp_path, board, target_fps=fps)


def _check(onnx, tmp_path, board, ceiling=CEILING, **fold):
    from streamfold.boards import load_board
    from streamfold.compiler.build import compile_model
    from streamfold.compiler.synth import synth_build

    build = tmp_path / "b"
    compile_model(onnx, build, board=board, ceiling=ceiling, **fold)
    doc = synth_build(build, board=board, jobs=1)
    got, cmp = doc["total"]["resources"], doc["comparison"]
    caps = load_board(board).resources
    used = {"LUT": got["LUT_TOTAL"], "FF": got["FF"], "BRAM": got["BRAM"], "DSP": got["DSP"]}
    over = {k: f"{v} of {caps[k]}" for k, v in used.items() if caps.get(k) and v > ceiling * caps[k]}
    assert not over, f"{onnx.stem} folded for {board}: Yosys puts it over the ceiling: {over}"
    for k in ("BRAM", "DSP"):
        assert cmp[k]["estimate"] == cmp[k]["synth"], (k, cmp[k])
    for k in ("LUT_TOTAL", "FF"):
        est, syn = cmp[k]["estimate"], cmp[k]["synth"]
        assert abs(est - syn) <= TOLERANCE * syn, f"{k}: estimate {est} vs Yosys {syn} ({cmp[k]['error']:+.1%})"

"""A classifier ending in an on-chip top-k unit (``--topk``): the board returns class indices.

* Brevitas's bnn_pynq TFC (W2A2 and W1A1) with ``--topk`` 1 and 3, simulated in Verilator with
  random gaps and back-pressure: every index equal to the reference, equal to the stable ranking of
  qonnx's scores (``np.argsort(-y, kind="stable")``), cycles per frame within 5%;
* the refusals, one line naming what would break the ranking: per-class dequantisation scales,
  a feature-map output, k out of range;
* the CLI option, and a build folder that loads back with its indices.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from streamfold.compiler.build import lower_file
from streamfold.compiler.errors import CompileError

import handmade
from flow import check_model
from models import export_model
from unit_cases import needs_verilator


@pytest.fixture(scope="module")
def tfc(tmp_path_factory):
    return export_model("tfc_2w2a", tmp_path_factory.mktemp("tfc") / "tfc_2w2a.onnx")


@needs_verilator
@pytest.mark.parametrize("k", [1, 3])
def test_tfc_returns_the_top_k_classes(tfc, k, tmp_path):
    out = check_model(tfc, tmp_path / "b", fold={"fc0": {"pe": 16, "simd": 49}}, frames=6, topk=k)
    cm = out["model"]
    last = cm.pipeline.units[-1]
    assert last.kind == "topk" and last.k == k and cm.host_out.labels
    assert out["outputs"].shape == (6, k) and out["outputs"].dtype == np.int64
    # the indices are the classes of the highest scores, without repeats
    assert all(len(set(row)) == k for row in out["outputs"])


@needs_verilator
@pytest.mark.slow
def test_binary_tfc_top_1(tmp_path):
    p = export_model("tfc_1w1a", tmp_path / "tfc_1w1a.onnx")
    check_model(p, tmp_path / "b", frames=6, topk=1)


def test_per_class_scales_are_refused(tmp_path):
    p = export_model("mlp_4bit", tmp_path / "mlp.onnx")
    with pytest.raises(CompileError, match=r"--topk: .*per-class .*scales.*drop --topk"):
        lower_file(p, topk=1)


def test_a_feature_map_or_a_bad_k_is_refused(tfc, tmp_path):
    p = handmade.save(handmade.subpixel_model(), tmp_path / "subpixel.onnx")
    with pytest.raises(CompileError, match=r"--topk needs a classifier .* shape \(\d+, \d+, \d+\)"):
        lower_file(p, topk=1)
    with pytest.raises(CompileError, match=r"--topk 11: k must be between 1 and 10 \(the model has 10"):
        lower_file(tfc, topk=11)


def test_cli_compiles_a_top_k_build_that_loads_back(tfc, tmp_path, capsys):
    from streamfold.compiler.cli import main
    from streamfold.compiler.model import CompiledModel
    from models import random_inputs

    b = tmp_path / "b"
    assert main(["compile", str(tfc), "-o", str(b), "--topk", "2"]) == 0
    assert "indices of the 2 highest-scoring classes" in capsys.readouterr().out
    fold = json.loads((b / "fold.json").read_text())
    assert "topk" in fold
    cm = CompiledModel.load(b)
    x = random_inputs("tfc", 4, seed=1)
    ints, labels = cm.reference(x)
    assert labels.shape == (4, 2) and np.array_equal(labels, ints)
    assert main(["compile", str(tfc), "-o", str(tmp_path / "c"), "--topk", "0"]) == 2
    err = capsys.readouterr().err
    assert "--topk 0" in err and "Traceback" not in err

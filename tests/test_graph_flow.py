"""Branching networks end to end: forks, residual adds and channel concats, compiled from
Brevitas definitions (ours of the MLPerf Tiny ResNet-8, a MobileNet-v2 inverted-residual block and
an Inception-style block; Brevitas's own bnn_pynq QuantResNet), each under two foldings, simulated
in Verilator with random input gaps and output back-pressure: every integer equal to the graph's
NumPy reference, outputs equal to qonnx's executor, cycles per frame within 5% of expected, and
FIFO depths from the graph's schedule analysis (no deadlock by construction)."""
from __future__ import annotations

import pytest

from streamfold.compiler.folding import default_fold, fold_to_json
from streamfold.compiler.load import load_model
from streamfold.compiler.lower import lower

from flow import check_model
from handmade import residual_model, save
from models_graph import export_graph_model, frame, random_frames


def _fold(path, lanes: int) -> dict:
    """The balanced fold whose heaviest unit gets about ``lanes`` parallel products."""
    cm = lower(load_model(path), str(path))
    return fold_to_json(default_fold(cm.pipeline, lanes=lanes))


def _kinds(out) -> dict:
    units = out["model"].pipeline.units
    return {k: sum(u.kind == k for u in units) for k in {u.kind for u in units}}


def _skip_fifos(out) -> list:
    """FIFO rows of the edges that end at a join (add/concat) and start at a fork or a unit."""
    p = out["model"].pipeline
    joins = {u.name for u in p.units if u.kind in ("add", "concat")}
    return [r for r in out["report"]["fifos"] if r["feeds"] in joins] if "fifos" in out["report"] else \
        [e for e in p.edges if e.dst in joins]


@pytest.mark.parametrize("join,skip_scale", [("Add", 1.0), pytest.param("Add", 0.5, marks=pytest.mark.slow),
                                             pytest.param("Concat", 1.0, marks=pytest.mark.slow)],
                         ids=["add", "add_rescaled_skip", "concat"])
def test_handmade_residual(join, skip_scale, tmp_path):
    """Fork -> two 3x3 convs -> Add/Concat with the skip -> quantizer (a threshold unit after the
    concat) -> GAP -> dense, on a graph nobody folded by hand."""
    path = save(residual_model(join=join, skip_scale=skip_scale), tmp_path / "res.onnx")
    out = check_model(path, tmp_path / "build", frames=6)
    k = _kinds(out)
    assert k["fork"] == 1 and k.get("add", 0) == (join == "Add") and k.get("concat", 0) == (join == "Concat")


def _graph(name, tmp_path, lanes, frames=3, **kw):
    path = export_graph_model(name, tmp_path / f"{name}.onnx", **kw)
    size = kw.get("size", 16)
    x = random_frames(frame(size), frames, seed=lanes)
    return check_model(path, tmp_path / "build", fold=_fold(path, lanes), frames=frames, x=x)


@pytest.mark.parametrize("lanes", [16, pytest.param(64, marks=pytest.mark.slow)])
def test_resnet8(lanes, tmp_path):
    """ResNet-8 (MLPerf Tiny shape, narrowed to 4/8/16 filters on 16x16 frames) at W4A4: three
    stacks, identity skip in the first, 1x1 stride-2 projections on the others."""
    out = _graph("resnet8", tmp_path, lanes, size=16, filters=(4, 8, 16))
    k = _kinds(out)
    assert k["fork"] == 3 and k["add"] == 3


@pytest.mark.slow
@pytest.mark.parametrize("lanes", [32, 256])
def test_resnet8_full_shape(lanes, tmp_path):
    """ResNet-8 at its real shape: 32x32x3 input, 16/32/64 filters."""
    out = _graph("resnet8", tmp_path, lanes, frames=2, size=32)
    assert _kinds(out)["add"] == 3


@pytest.mark.parametrize("lanes", [16, pytest.param(64, marks=pytest.mark.slow)])
def test_quant_resnet(lanes, tmp_path):
    """Brevitas's own bnn_pynq QuantResNet (one basic block per stage, widths 16..128, 16x16):
    its TruncAvgPool2d ends in AveragePool + Trunc, an exact identity on the pooled sum here."""
    out = _graph("quant_resnet", tmp_path, lanes)
    assert _kinds(out)["add"] == 4


@pytest.mark.parametrize("lanes", [8, pytest.param(32, marks=pytest.mark.slow)])
def test_mobilenet_v2_block(lanes, tmp_path):
    """Inverted residual: expand 1x1, depthwise 3x3, linear 1x1 with a signed quantizer shared
    with the skip, Add."""
    out = _graph("mobilenet_v2_block", tmp_path, lanes, frames=4)
    k = _kinds(out)
    assert k["add"] == 1 and k["vvau"] == 1


@pytest.mark.parametrize("lanes", [8, pytest.param(32, marks=pytest.mark.slow)])
def test_inception_block(lanes, tmp_path):
    """Three branches (1x1; 1x1 -> 3x3; 3x3) joined by a Concat behind one shared quantizer."""
    out = _graph("inception_block", tmp_path, lanes, frames=4)
    k = _kinds(out)
    assert k["concat"] == 1 and k["fork"] == 1


def test_halved_skip_fifo_stalls_and_is_named(tmp_path):
    """The analysed skip FIFO of a residual block, halved: the fork stops at the full skip FIFO
    while the add waits for the long path, which waits for the fork. The run stalls, and the
    stall report names that FIFO as the one too shallow."""
    from streamfold.compiler.build import lower_file, write_build
    from streamfold.sim.simulate import simulate_build

    from models import random_inputs

    path = save(residual_model(size=16), tmp_path / "res.onnx")
    cm = lower_file(path)
    edges = cm.pipeline.edges
    k = next(i for i, e in enumerate(edges) if e.src == "fork0" and e.dst == "add0")
    depths = list(cm.pipeline.fifo_depths)
    assert depths[k] > 32  # two 3x3 line buffers of 16-pixel rows in flight on the long path
    depths[k] //= 2
    cm.pipeline = cm.pipeline.with_depths(depths)
    write_build(cm, tmp_path / "build")
    res = simulate_build(tmp_path / "build", random_inputs((4, 16, 16), 3, seed=0), engine="verilator",
                         p_gap=0.0, p_stall=0.0, seed=1)
    run = res["report"]["runs"][0]
    assert run["stalled"] and res["report"]["bit_exact"] is False
    diag = run["stall_diagnosis"]
    assert diag["stuck_at"] == f"fifo{k} -> add0 (add) port 1"
    occ = {f["name"]: (f["occupancy"], f["depth"]) for f in diag["fifos"]}
    assert occ[f"fifo{k}"] == (depths[k], depths[k])
    assert f"fifo{k} is full: a branch's FIFO too shallow" in run["stall_report"]

"""The row-reordering kinds: ``depth_to_space`` (ONNX DepthToSpace, DCR and CRD) and ``upsample``
(nearest-neighbour Resize / Upsample by integer factors), compiler side
(``compiler/units/depth_to_space.py``, ``upsample.py``, ``row_buffer.py``) and hardware
(``hw/row_buffer.py`` and its two wrappers).

* the channel-last references against onnx's own reference implementation
  (``onnx.reference.ReferenceEvaluator``) on one-node models, NCHW;
* the buffer layout of every plan (read addresses, the banked CRD skew) in plain NumPy;
* Amaranth's simulator, for several shapes and folds: random input gaps and output back-pressure
  give the reference, every frame; without back-pressure every input beat is taken and every
  output beat leaves in the cycle the kind's ``timeline`` says; the steady state is ``cycles``;
* the ``latest`` schedules, the FIFO analysis and the resource estimates of the kinds;
* Verilator, through ``unit_cases.check_pipeline``, on one-unit graphs.

The kinds are registered for the tests only (``monkeypatch``), until ``compiler/units/__init__.py``
lists them.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from streamfold.compiler import fifo_sizing as fs
from streamfold.compiler.cost import unit_cycles
from streamfold.compiler.ir import BIPOLAR, DataflowGraph, DataType, FoldError, MaxPoolUnit
from streamfold.compiler.units import KINDS, kind_of
from streamfold.compiler.units import depth_to_space, row_buffer, upsample
from streamfold.compiler.units.depth_to_space import DepthToSpaceUnit
from streamfold.compiler.units.upsample import UpsampleUnit

from test_fifo_sizing import _avail
from test_join_units import simulate
from unit_cases import check_pipeline, needs_verilator

INT2, INT3, INT4, INT8 = (DataType.int_type(b) for b in (2, 3, 4, 8))
UINT2, UINT3 = DataType.uint_type(2), DataType.uint_type(3)
NEW_KINDS = (depth_to_space.KIND, upsample.KIND)


@pytest.fixture(autouse=True)
def _registered(monkeypatch):
    """Register the two kinds (and their resource models, which resources.py tabulates from
    KINDS when it is imported) for the duration of a test."""
    from streamfold.compiler import resources

    for k in NEW_KINDS:
        monkeypatch.setitem(KINDS, k.name, k)
        monkeypatch.setitem(resources.FEATURES, k.model_key, k.feature_names)
        monkeypatch.setitem(resources._DEFAULT_COEF, k.model_key, k.default_coef)


# ----------------------------------------------------------------------------- onnx references
def _one_node(op: str, shape, inits=(), opset=13, **attrs):
    from onnx import TensorProto, helper

    names = ["x"] + [n for n, _ in inits]
    node = helper.make_node(op, names, ["y"], **attrs)
    if op == "Resize":
        node = helper.make_node(op, ["x", "", "scales"], ["y"], **attrs)
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [helper.make_tensor(n, TensorProto.FLOAT, [len(v)], list(v)) for n, v in inits])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _onnx_channel_last(model, x):
    """Run a one-node model on channel-last frames ``x`` (transposed to NCHW and back)."""
    from onnx.reference import ReferenceEvaluator

    y = ReferenceEvaluator(model).run(None, {"x": x.transpose(0, 3, 1, 2).astype(np.float32)})[0]
    return y.transpose(0, 2, 3, 1).astype(np.int64)


@pytest.mark.parametrize("mode", ["DCR", "CRD"])
@pytest.mark.parametrize("h,w,c,r", [(2, 3, 8, 2), (3, 2, 18, 3), (2, 2, 32, 4), (1, 4, 12, 2), (2, 2, 5, 1)])
def test_depth_to_space_reference_matches_onnx(mode, h, w, c, r):
    rng = np.random.default_rng(r * 10 + c)
    x = rng.integers(-8, 8, size=(2, h, w, c))
    u = DepthToSpaceUnit("d2s", (h, w, c), INT4, r, mode)
    want = _onnx_channel_last(_one_node("DepthToSpace", (2, c, h, w), blocksize=r, mode=mode), x)
    got = kind_of(u).reference(u, x)
    np.testing.assert_array_equal(got, want)
    assert got.shape[1:] == u.out_stream.shape


def test_crd_is_not_dcr():
    """The two modes differ (so the check above tells them apart)."""
    x = np.arange(2 * 2 * 8).reshape(1, 2, 2, 8)
    a, b = (depth_to_space.reference(DepthToSpaceUnit("d", (2, 2, 8), INT8, 2, m), x) for m in ("DCR", "CRD"))
    assert not np.array_equal(a, b)


@pytest.mark.parametrize("scale", [(2, 2), (3, 1), (1, 4), (2, 3)])
@pytest.mark.parametrize("attrs", [{}, {"coordinate_transformation_mode": "asymmetric",
                                        "nearest_mode": "floor"}], ids=["half_pixel", "asymmetric_floor"])
def test_upsample_reference_matches_onnx_resize(scale, attrs):
    rng = np.random.default_rng(sum(scale))
    h, w, c = 3, 4, 5
    x = rng.integers(-8, 8, size=(2, h, w, c))
    model = _one_node("Resize", (2, c, h, w), [("scales", (1, 1) + scale)], mode="nearest", **attrs)
    u = UpsampleUnit("up", (h, w, c), INT4, scale)
    got = kind_of(u).reference(u, x)
    np.testing.assert_array_equal(got, _onnx_channel_last(model, x))
    assert got.shape[1:] == u.out_stream.shape


def test_upsample_reference_matches_onnx_upsample_opset9():
    rng = np.random.default_rng(0)
    x = rng.integers(-8, 8, size=(1, 3, 4, 2))
    model = _one_node("Upsample", (1, 2, 3, 4), [("scales", (1, 1, 2, 3))], opset=9, mode="nearest")
    u = UpsampleUnit("up", (3, 4, 2), INT4, (2, 3))
    np.testing.assert_array_equal(upsample.reference(u, x), _onnx_channel_last(model, x))


# ----------------------------------------------------------------------------- buffer layout
def _buffer_model(u, x):
    """The hardware's buffer in NumPy: write each row as the writer does (banked: lanes rotated),
    read it at the plan's addresses (banked: per-bank offsets, lane selects)."""
    p = u.row_plan()
    pe = p.lanes
    rows = np.asarray(x).reshape(-1, p.n_in, pe)
    ra = p.read_addresses()
    out = []
    for row in rows:
        if p.banks == 1:
            out.extend(row[a] for a in ra[:, 0])
            continue
        R = p.r * p.r
        banks = np.zeros((pe, p.n_in), dtype=np.int64)
        for b in range(p.n_in):
            for q in range(pe):
                banks[(q + p.rot[b % R]) % pe, b] = row[b, q]
        idx = np.indices([c for _, c, _ in p.loops]).reshape(len(p.loops), -1)
        names = [n for n, _, _ in p.loops]
        s = idx[names.index("i")] * p.r + idx[names.index("j")]
        for t in range(ra.shape[0]):
            data = [banks[q, ra[t, q]] for q in range(pe)]
            out.append([data[p.select[s[t]][lane]] for lane in range(pe)])
    return np.array(out).reshape((x.shape[0],) + tuple(u.out_stream.shape))


def test_buffer_layout_gives_the_reference():
    """Every plan's addresses (and, for CRD with pe > 1, the skewed banks) reorder a row as the
    reference does: pe with and without common factors with r^2, rows of one word, r = 1."""
    rng = np.random.default_rng(0)
    n = 0
    for h, w, co, r, mode, pe in itertools.product([1, 2], [1, 3], [1, 2, 4, 6, 8], [1, 2, 3, 4],
                                                   ["DCR", "CRD"], [1, 2, 3, 4, 6, 8]):
        if co % pe:
            continue
        u = DepthToSpaceUnit("d", (h, w, co * r * r), INT8, r, mode, pe)
        x = rng.integers(-100, 100, size=(2, h, w, co * r * r))
        np.testing.assert_array_equal(_buffer_model(u, x), depth_to_space.reference(u, x))
        n += 1
    for h, w, c, sh, sw, pe in itertools.product([1, 2], [1, 3], [1, 2, 4], [1, 2, 3], [1, 2, 3], [1, 2, 4]):
        if c % pe:
            continue
        u = UpsampleUnit("u", (h, w, c), INT8, (sh, sw), pe)
        x = rng.integers(-100, 100, size=(2, h, w, c))
        np.testing.assert_array_equal(_buffer_model(u, x), upsample.reference(u, x))
        n += 1
    assert n > 500


@pytest.mark.parametrize("pe,R", [(2, 4), (4, 4), (8, 4), (6, 4), (4, 9), (6, 9), (8, 16), (3, 9), (5, 4)])
def test_skew_tables_are_conflict_free(pe, R):
    """The banks of an input beat's lanes, and those of an output beat's lanes, are each all
    different (one access per bank and clock)."""
    rot, offset, select = row_buffer.skew_tables(pe, R)
    L = pe * R // np.gcd(pe, R)
    for b in range(R):  # input beat b of a channel group: local indices b*pe + q
        assert sorted((q + rot[b]) % pe for q in range(pe)) == list(range(pe))
        assert all((b * pe + q + (b * pe + q) // L) % pe == (q + rot[b]) % pe for q in range(pe))
    for s in range(R):
        assert sorted(select[s]) == list(range(pe))
        assert all(0 <= o < R for o in offset[s])


def test_folding_rules():
    u = DepthToSpaceUnit("d", (2, 2, 24), INT4, 2, "CRD", 3)
    assert u.channels == 6 and u.fold_choices() == {"pe": [1, 2, 3, 6]}
    u.check_folding()
    with pytest.raises(FoldError, match="PE=4 does not divide its 6"):
        u.with_folding(pe=4).check_folding()
    with pytest.raises(FoldError, match="divisible by 4"):
        DepthToSpaceUnit("d", (2, 2, 6), INT4, 2).check_folding()
    with pytest.raises(FoldError, match="mode"):
        DepthToSpaceUnit("d", (2, 2, 8), INT4, 2, "XYZ").check_folding()
    v = UpsampleUnit("u", (2, 2, 6), INT4, (2, 3), 2)
    assert v.fold_choices() == {"pe": [1, 2, 3, 6]} and v.folding() == {"pe": 2}
    with pytest.raises(FoldError, match="integer scales"):
        UpsampleUnit("u", (2, 2, 6), INT4, (0, 2)).check_folding()
    with pytest.raises(FoldError, match="integer scales"):
        UpsampleUnit("u", (2, 2, 6), INT4, (1.5, 2)).check_folding()


# ----------------------------------------------------------------------------- Amaranth simulator
def _cases():
    return {
        "d2s_dcr_r2_pe1": DepthToSpaceUnit("d", (2, 3, 8), INT4, 2, "DCR", 1),
        "d2s_dcr_r2_pe2_uint3": DepthToSpaceUnit("d", (3, 2, 16), UINT3, 2, "DCR", 2),
        "d2s_dcr_r3_pe2": DepthToSpaceUnit("d", (2, 2, 18), INT4, 3, "DCR", 2),
        "d2s_crd_r2_pe1": DepthToSpaceUnit("d", (2, 3, 8), INT4, 2, "CRD", 1),
        "d2s_crd_r2_pe2_skewed": DepthToSpaceUnit("d", (2, 2, 16), INT4, 2, "CRD", 2),
        "d2s_crd_r3_pe2_coprime": DepthToSpaceUnit("d", (2, 2, 18), INT3, 3, "CRD", 2),
        "d2s_crd_r2_pe4_bipolar": DepthToSpaceUnit("d", (2, 2, 16), BIPOLAR, 2, "CRD", 4),
        "d2s_crd_r2_pe6": DepthToSpaceUnit("d", (2, 1, 24), INT2, 2, "CRD", 6),
        "d2s_r1": DepthToSpaceUnit("d", (2, 2, 4), INT4, 1, "DCR", 2),
        "d2s_one_word_rows": DepthToSpaceUnit("d", (3, 1, 4), INT4, 2, "DCR", 1),
        "up_22_pe1": UpsampleUnit("u", (3, 2, 2), INT4, (2, 2), 1),
        "up_23_pe2": UpsampleUnit("u", (3, 2, 4), INT4, (2, 3), 2),
        "up_31_pe3": UpsampleUnit("u", (2, 3, 6), INT3, (3, 1), 3),
        "up_14_bipolar_pe4": UpsampleUnit("u", (2, 2, 4), BIPOLAR, (1, 4), 4),
        "up_11": UpsampleUnit("u", (2, 3, 2), UINT2, (1, 1), 1),
        "up_one_word_rows": UpsampleUnit("u", (3, 1, 1), INT4, (2, 2), 1),
    }


CASES = list(_cases())


@pytest.mark.parametrize("name", CASES)
def test_outputs_match_reference_under_gaps_and_backpressure(name):
    u = _cases()[name]
    for seed, (pv, pr) in enumerate([(0.6, 0.5), (0.9, 0.3)]):
        simulate(u, 3, p_valid=pv, p_ready=pr, seed=seed)


@pytest.mark.parametrize("name", CASES)
def test_timeline_is_cycle_exact(name):
    """Random input gaps, no back-pressure: the cycle of every input and output beat is the
    timeline's; with the input always there the hardware's frame period is ``cycles``."""
    u = _cases()[name]
    k = kind_of(u)
    frames, p_valid = 3, 0.6
    res, seeds = simulate(u, frames, p_valid=p_valid, p_ready=1.0, seed=5)
    avail = _avail(res["in_cycles"][0], len(res["in_cycles"][0]), p_valid, seeds[0])
    r, o = k.timeline(u, avail, frames)
    np.testing.assert_array_equal(r, res["in_cycles"][0], err_msg="input")
    np.testing.assert_array_equal(o, res["out_cycles"][0], err_msg="output")
    res, _ = simulate(u, frames, p_valid=1.0, p_ready=1.0, seed=6)
    got = np.array(res["out_cycles"][0])
    ob = u.out_stream.beats_per_frame
    assert got[-1] - got[-1 - ob] == got[-1 - ob] - got[-1 - 2 * ob] == unit_cycles(u)
    p = u.row_plan()
    period = max(p.n_in, p.n_out)
    assert got[0] == p.n_in - 1 + 2  # two cycles after the first row's last input beat
    assert got[ob - 1] == p.n_in + (p.rows - 1) * period + p.n_out


def test_cycles_formulas():
    d = DepthToSpaceUnit("d", (4, 5, 18), INT4, 3, "CRD", 2)
    assert unit_cycles(d) == 4 * 5 * 18 // 2 == d.in_stream.beats_per_frame == d.out_stream.beats_per_frame
    v = UpsampleUnit("u", (4, 5, 6), INT4, (2, 3), 3)
    assert unit_cycles(v) == 4 * 2 * 5 * 3 * 6 // 3 == v.out_stream.beats_per_frame
    assert unit_cycles(UpsampleUnit("u", (4, 5, 6), INT4, (1, 1), 3)) == 4 * 5 * 2


@pytest.mark.parametrize("name", CASES)
def test_latest_schedule_is_consistent(name):
    """Latest reads for output deadlines: never before the earliest, every output by its
    deadline, and reads the unit takes exactly then; a tail without deadlines runs early."""
    u = _cases()[name]
    rng = np.random.default_rng(1)
    frames = 3
    n_in = frames * u.in_stream.beats_per_frame
    avail = np.cumsum(rng.integers(0, 3, n_in))
    r, o = fs.unit_timeline(u, avail, frames)
    dl = o + np.cumsum(rng.integers(0, 4, o.size))
    rl, ol = fs.unit_latest(u, dl, frames, r)
    assert np.all(rl >= r) and np.all(ol <= dl)
    assert np.any(rl > r)
    r2, o2 = fs.unit_timeline(u, rl, frames)
    np.testing.assert_array_equal(r2, rl)
    assert np.all(o2 <= ol)
    ob = u.out_stream.beats_per_frame
    dl[-ob:] = fs.BIG
    rl, ol = fs.unit_latest(u, dl, frames, r)
    assert np.all(rl >= r) and np.all(rl < fs.BIG // 2) and np.all(ol[:-ob] <= dl[:-ob])


def test_fifo_analysis_around_an_upsample():
    """An upsampling (output-bound) then a max-pool that undoes it: the pipeline runs at the
    upsampling's pace and the FIFO between them needs only the minimum margin."""
    up = UpsampleUnit("up", (4, 6, 4), INT4, (2, 2), 2)
    pool = MaxPoolUnit("pool", (8, 12, 4), INT4, (2, 2), (2, 2), 2)
    g = DataflowGraph([up, pool])
    an = fs.analyse_fifos(g)
    assert an.ii == unit_cycles(up) == 4 * 2 * 6 * 2 * 2
    assert all(per == an.ii for per in an.periods)
    assert an.depths[0] == an.depths[-1] == fs.MIN_DEPTH
    x = np.random.default_rng(0).integers(-8, 8, size=(2, 4, 6, 4))
    from streamfold.compiler.topology import run_unit

    np.testing.assert_array_equal(run_unit(pool, run_unit(up, x)), x)


def test_memories_and_estimates():
    from streamfold.compiler.resources import estimate_unit

    big = UpsampleUnit("u", (8, 64, 64), INT8, (2, 2), 8)  # 2 rows x 512 words x 64 bits
    (mem,) = kind_of(big).memories(big)
    assert (mem.depth, mem.width, mem.kind) == (1024, 64, "sdp")
    for fam in ("xc7", "ecp5"):
        e = estimate_unit(big, fam)
        assert e["BRAM"] > 0 and e["LUT"] > 0 and e["FF"] > 0
    crd = DepthToSpaceUnit("d", (4, 8, 64), INT4, 2, "CRD", 4)
    mems = kind_of(crd).memories(crd)
    assert [(m.depth, m.width) for m in mems] == [(2 * 8 * 16, 4)] * 4
    small = DepthToSpaceUnit("d", (4, 8, 16), INT4, 2, "DCR", 1)
    e = estimate_unit(small, "xc7")
    assert e["BRAM"] == 0 and e["LUTRAM"] > 0


def test_graph_files_round_trip_and_reports():
    """The units survive a build folder's JSON (mode string, scale tuple), and the graph-level
    reports (FIFO sizing, expected pace, estimates) take them."""
    from streamfold.compiler.resources import estimate_pipeline

    d2s = DepthToSpaceUnit("d2s", (3, 4, 16), INT4, 2, "CRD", 2, source="node_d2s")
    up = UpsampleUnit("up", (6, 8, 4), INT4, (1, 2), 2, source="node_up")
    g = fs.size_fifos(DataflowGraph([d2s, up]))
    doc, arrays = g.to_files()
    back = DataflowGraph.from_files(doc, arrays)
    assert back.units == g.units and back.fifo_depths == g.fifo_depths
    assert back.units[1].scale == (1, 2) and back.units[0].mode == "CRD"
    assert fs.expected_pace(g)[0] == unit_cycles(up)
    est = estimate_pipeline(g, "xc7")
    assert set(est["units"]) == {"d2s", "up"} and not est["unmodelled"]


def test_tiling_refuses_naming_the_layer():
    from streamfold.compiler.tiling import TilingError, column_steps

    for u in (UpsampleUnit("up", (4, 6, 4), INT4), DepthToSpaceUnit("d2s", (4, 6, 8), INT4)):
        with pytest.raises(TilingError, match=f"layer {u.name} is a {u.kind} unit"):
            column_steps(DataflowGraph([u]))


# ----------------------------------------------------------------------------- Verilog
@needs_verilator
def test_verilog_lints(tmp_path):
    from unit_cases import lint_units

    lint_units({n: _cases()[n] for n in CASES}, tmp_path)


VERILATOR_CASES = {
    "d2s_crd_pe4_banked": (lambda: DepthToSpaceUnit("d2s", (3, 4, 16), INT4, 2, "CRD", 4), False),
    "upsample_23_pe2": (lambda: UpsampleUnit("up", (3, 5, 4), UINT3, (2, 3), 2), False),
    "d2s_dcr_r3_pe3": (lambda: DepthToSpaceUnit("d2s", (2, 3, 27), INT3, 3, "DCR", 3), True),
}


@needs_verilator
@pytest.mark.parametrize("name", [pytest.param(n, marks=[pytest.mark.slow] if slow else [])
                                  for n, (_, slow) in VERILATOR_CASES.items()])
def test_one_unit_graph_in_verilator(name):
    """The unit as a whole design (top level, FIFOs, AXI-Stream ends) in Verilator: random gaps
    and back-pressure give the reference; without them the measured period is ``cycles``."""
    u = VERILATOR_CASES[name][0]()
    g = DataflowGraph([u])
    rng = np.random.default_rng(3)
    check_pipeline(g, 4, rng, p_gap=0.3, p_stall=0.3)
    got = check_pipeline(g, 6, rng, p_gap=0.0, p_stall=0.0)["measure"]
    assert got.ii_steady == unit_cycles(u)

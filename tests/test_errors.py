"""Input validation through the real command line: every bad input ends in exactly one line.

Each case runs ``streamfold.compiler.cli.main([...])`` in-process with the file descriptors
captured (``capfd``: also what C++ libraries such as onnxruntime write), and checks a non-zero exit
code and exactly one line on stderr, starting with ``streamfold: error:`` and naming the thing at
fault (file, node, op, layer, board, array). One test runs the installed ``streamfold`` executable
to check the exit code and that ``--debug`` shows the traceback.

The models are small QONNX graphs built by hand (``tests/handmade.py``), so no test here needs
Brevitas or a simulator, except the stall test at the end (Verilator).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from streamfold.compiler.cli import main

from handmade import Graph, dense_model, residual_model, save
from unit_cases import needs_verilator

REPO = Path(__file__).resolve().parent.parent
EXE = Path(sys.executable).with_name("streamfold")


def run_cli(capfd, *args) -> tuple[int, str, list]:
    capfd.readouterr()
    try:
        rc = main([str(a) for a in args])
    except SystemExit as e:  # argparse
        rc = e.code
    out, err = capfd.readouterr()
    return rc, out, err.strip().splitlines()


def assert_error(capfd, args, *fragments) -> str:
    """The command fails with one ``streamfold: error:`` line holding every fragment."""
    rc, out, lines = run_cli(capfd, *args)
    assert rc != 0, f"exit code 0 for {args}; stdout: {out}"
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n" + "\n".join(lines)
    line = lines[0]
    assert line.startswith("streamfold: error:"), line
    assert "Traceback" not in line
    for f in fragments:
        assert f in line, f"{f!r} not in {line!r}"
    return line


def compile_error(capfd, tmp_path, model: onnx.ModelProto, *fragments, name="m.onnx") -> str:
    path = save(model, tmp_path / name)
    return assert_error(capfd, ["compile", path, "-o", tmp_path / "build"], *fragments)


@pytest.fixture(scope="module")
def build(tmp_path_factory) -> Path:
    """A compiled build of the default hand-made model (input shape (1, 8))."""
    d = tmp_path_factory.mktemp("errors")
    path = save(dense_model(), d / "ok.onnx")
    assert main(["compile", str(path), "-o", str(d / "build")]) == 0
    return d / "build"


# ----------------------------------------------------------------------------- model files
def test_missing_file(capfd, tmp_path):
    assert_error(capfd, ["compile", tmp_path / "nope.onnx", "-o", tmp_path / "b"], "nope.onnx",
                 "no such file")


def test_folder_instead_of_file(capfd, tmp_path):
    assert_error(capfd, ["compile", tmp_path, "-o", tmp_path / "b"], str(tmp_path), "is a folder")


def test_random_bytes(capfd, tmp_path):
    p = tmp_path / "random.onnx"
    p.write_bytes(np.random.default_rng(0).bytes(4096))
    assert_error(capfd, ["compile", p, "-o", tmp_path / "b"], "random.onnx", "not an ONNX model")


def test_truncated_model(capfd, tmp_path):
    data = dense_model().SerializeToString()
    p = tmp_path / "half.onnx"
    p.write_bytes(data[:len(data) // 2])
    assert_error(capfd, ["compile", p, "-o", tmp_path / "b"], "half.onnx", "not an ONNX model")


def test_truncated_brevitas_export(capfd, tmp_path):
    data = (REPO / "examples" / "models" / "digits_w2a2.onnx").read_bytes()
    p = tmp_path / "digits_half.onnx"
    p.write_bytes(data[:len(data) // 2])
    assert_error(capfd, ["compile", p, "-o", tmp_path / "b"], "digits_half.onnx", "not an ONNX model")


def test_empty_file(capfd, tmp_path):
    p = tmp_path / "empty.onnx"
    p.write_bytes(b"")
    assert_error(capfd, ["compile", p, "-o", tmp_path / "b"], "empty.onnx", "no nodes")


# ----------------------------------------------------------------------------- unsupported graphs
@pytest.mark.parametrize("op,attrs", [("Softmax", {"axis": -1}), ("Sin", {}), ("Cos", {})])
def test_unsupported_op_on_data_path(capfd, tmp_path, op, attrs):
    line = compile_error(capfd, tmp_path, dense_model(between=lambda g, t: g.node(op, [t], **attrs)),
                         f"node '{op}_0'", f"op {op} is not supported",
                         "between a matrix product and its activation quantizer", "supported ops: ")
    supported = line.split("supported ops: ")[1].split(", ")
    assert {"MatMul", "Gemm", "Conv", "Quant", "BatchNormalization", "MaxPool"} <= set(supported)
    assert op not in supported


def test_unsupported_op_on_quantized_activations(capfd, tmp_path):
    def softmax_after_quant(g, t):
        return g.node("Softmax", [g.quant(t, 0.5, 4)], axis=-1)
    compile_error(capfd, tmp_path, dense_model(between=softmax_after_quant), "node 'Softmax_0'",
                  "op Softmax is not supported on quantized activations", "supported ops: ")


def test_dynamic_input_shape(capfd, tmp_path):
    compile_error(capfd, tmp_path, dense_model(dynamic=True), "input 'x'", "dynamic dimension 1",
                  "features", "fixed input shape")


def test_unknown_input_shape(capfd, tmp_path):
    m = dense_model()
    m.graph.input[0].type.tensor_type.ClearField("shape")
    compile_error(capfd, tmp_path, m, "tensor 'x'", "no static shape")


def test_float_model_hand_built(capfd, tmp_path):
    compile_error(capfd, tmp_path, dense_model(quantized=False), "node 'MatMul_0' (MatMul)",
                  "takes float activations", "no quantizer")


def test_float_model_from_torch(capfd, tmp_path):
    torch = pytest.importorskip("torch")
    import contextlib
    import io
    import warnings

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU(), torch.nn.Linear(4, 3))
    path = tmp_path / "torch_linear.onnx"
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(net, torch.zeros(1, 8), str(path), dynamo=False)
    assert_error(capfd, ["compile", path, "-o", tmp_path / "b"], "(Gemm) takes float activations",
                 "quantize the input")


def test_float_weights(capfd, tmp_path):
    def float_weights():
        g = Graph()
        t = g.quant("x", 1 / 15, 4)
        t = g.node("MatMul", [t, g.const(np.ones((8, 4), np.float32), "w")])
        return g.model("x", [1, 8], t, [1, 4])
    compile_error(capfd, tmp_path, float_weights(), "node 'MatMul_0' (MatMul)", "are float, not quantized")


@pytest.mark.parametrize("kw,fragments", [
    ({"act_bits": 24}, ["node 'Quant_3' (Quant)", "24-bit activations exceed the 16-bit limit"]),
    ({"in_bits": 24}, ["node 'Quant_0' (Quant)", "24-bit activations exceed the 16-bit limit"]),
    ({"w_bits": 24}, ["(Quant)", "24-bit weights exceed the 16-bit limit"]),
    ({"act_bits": 12}, ["node 'Quant_3' (Quant)", "12-bit activation after matrix product 'MatMul_0'",
                        "4095 thresholds per channel", "up to 8 bits"]),
    ({"act_bits": 0}, ["node 'Quant_3' (Quant)", "bit width 0 is not a whole number"]),
    ({"act_bits": 3.5}, ["node 'Quant_3' (Quant)", "bit width 3.5 is not a whole number"]),
], ids=["act24", "input24", "weights24", "thresholds12", "zero_bits", "fractional_bits"])
def test_bit_widths(capfd, tmp_path, kw, fragments):
    compile_error(capfd, tmp_path, dense_model(**kw), *fragments)


@pytest.mark.parametrize("scale,word", [(0.0, "0"), (-0.5, "-0.5"), (float("nan"), "nan"),
                                        (float("inf"), "inf")])
def test_activation_scale(capfd, tmp_path, scale, word):
    def bad_scale(g, t):
        return g.quant(t, scale, 4)
    compile_error(capfd, tmp_path, dense_model(between=bad_scale), "node 'Quant_3' (Quant)",
                  f"activation scale {word} is not a positive finite number")


def test_non_monotone_chain(capfd, tmp_path):
    """1 / (x - 0.7) jumps at the pole: no thresholds reproduce it."""
    def pole(g, t):
        return g.node("Div", [g.const(np.float32(1.0)), g.node("Sub", [t, g.const(np.float32(0.7))])])
    compile_error(capfd, tmp_path, dense_model(between=pole), "layer fc0", "quantizer 'Quant_3'",
                  "not monotone in the accumulator", "channel", "cannot become thresholds")


def test_non_monotone_single_point(capfd, tmp_path):
    """1 / (acc - 5) quantized: level 0 everywhere except at accumulator values 5 and 6 of a range
    of about 4 million. Random samples would miss them; the thresholds of a chain that divides by
    the accumulator are checked on every accumulator value, so the compiler refuses the model."""
    g = Graph(seed=3)
    t = g.quant("x", 1.0, 8)
    w = g.rng.integers(-127, 128, size=(64, 1)).astype(np.float32)
    wq = g.node("Quant", [g.const(w, "w"), g.const(np.float32(1.0)), g.const(np.float32(0.0)),
                          g.const(np.float32(8.0))], domain="qonnx.custom_op.general", signed=1,
                narrow=1, rounding_mode="ROUND")
    t = g.node("MatMul", [t, wq])
    t = g.node("Div", [g.const(np.float32(1.0)), g.node("Sub", [t, g.const(np.float32(5.0))])])
    t = g.quant(t, 1.0, 4)
    line = compile_error(capfd, tmp_path, g.model("x", [1, 64], t, [1, 1]), "layer fc0",
                         "not monotone in the accumulator")
    assert "accumulator 5 gives level 15" in line or "accumulator 6 gives level 1" in line, line


def test_abs_between_matmul_and_quantizer(capfd, tmp_path):
    compile_error(capfd, tmp_path, dense_model(between=lambda g, t: g.node("Abs", [t])),
                  "node 'Abs_0'", "op Abs is not supported between a matrix product and its "
                  "activation quantizer")


def test_not_per_channel(capfd, tmp_path):
    def full_matrix(g, t):
        return g.node("Add", [t, g.const(np.ones((6, 6), np.float32))])
    compile_error(capfd, tmp_path, dense_model(between=full_matrix), "node 'Add_1' (Add)",
                  "constant of shape (6, 6)", "per channel")


def test_nan_constant(capfd, tmp_path):
    def nan_mul(g, t):
        return g.node("Mul", [t, g.const(np.full((1, 6), np.nan, np.float32))])
    compile_error(capfd, tmp_path, dense_model(between=nan_mul), "node 'Mul_1' (Mul)", "holds nan",
                  "finite constants")


def test_inf_batchnorm_scale(capfd, tmp_path):
    """Found by the fuzzer: an inf batch-norm scale compiled into a sign function of the input,
    while onnxruntime (qonnx) computes NaN for every input; now refused."""
    def inf_bn(g, t):
        ones, zeros = np.ones(6, np.float32), np.zeros(6, np.float32)
        gamma = ones.copy()
        gamma[2] = np.inf
        return g.node("BatchNormalization", [t, g.const(gamma), g.const(zeros), g.const(zeros),
                                             g.const(ones)], epsilon=1e-5)
    compile_error(capfd, tmp_path, dense_model(between=inf_bn), "(BatchNormalization)", "holds inf")


def test_nan_in_chain(capfd, tmp_path):
    def nan_max(g, t):
        return g.node("Max", [t, g.const(np.float32(np.nan))])
    compile_error(capfd, tmp_path, dense_model(between=nan_max), "layer fc0", "give NaN",
                  "check the constants of", "'Max_0'")


def test_branch_before_quantizer(capfd, tmp_path):
    """A branch on a matrix product's accumulator (before its quantizer) is refused by name."""
    def branch(g, t):
        return g.node("Add", [t, g.node("Relu", [t])])
    compile_error(capfd, tmp_path, dense_model(between=branch), "is read by 2", "between 'MatMul_0' and a "
                  "quantizer", "put the quantizer before the branch")


def test_unequal_scale_add(capfd, tmp_path):
    """Brevitas branches with their own quantizers (scales 0.2 and 0.274): one line naming the
    Add, both scales and the fix."""
    from models_graph import add_unequal_scales

    path = add_unequal_scales(tmp_path / "add.onnx")
    assert_error(capfd, ["compile", path, "-o", tmp_path / "build"], "node 'Add_0' (Add)",
                 "(scale 0.2)", "(scale 0.274)", "not a small exact fraction", "one shared quantizer")


def test_unequal_scale_concat(capfd, tmp_path):
    from models_graph import concat_unequal_scales

    path = concat_unequal_scales(tmp_path / "cat.onnx")
    assert_error(capfd, ["compile", path, "-o", tmp_path / "build"], "node 'Concat_0' (Concat)",
                 "scale 0.1,", "scale 0.137,", "one shared quantizer")


def test_handmade_unequal_scale_add(capfd, tmp_path):
    """The skip requantized to 1.37x the residual's scale: the Add cannot be exact."""
    compile_error(capfd, tmp_path, residual_model(skip_scale=1.37), "(Add): its inputs",
                  "scale ratio of 0.729927", "quantize both inputs with one shared quantizer")


def test_non_monotone_activation_on_an_accumulator(capfd, tmp_path):
    """A HardSwish between a matrix product and its quantizer: not thresholds, and the
    accumulator is too wide for a table; the error says to quantize its input."""
    m = dense_model(between=lambda g, t: g.node("HardSwish", [t]))
    for o in m.opset_import:
        if o.domain == "":
            o.version = 14  # HardSwish's first opset
    compile_error(capfd, tmp_path, m, "node 'HardSwish_0' (HardSwish)", "is not monotone",
                  "quantize its input first")


def test_per_channel_scale_into_a_mixing_layer(capfd, tmp_path):
    from handmade import channel_scale_model

    compile_error(capfd, tmp_path, channel_scale_model(mixing=True), "node 'Conv_1' (Conv)",
                  "per-channel activation scales (from quantizer 'Quant_4')", "per-tensor activation quantizer")


def test_tiling_refuses_joins(capfd, tmp_path):
    path = save(residual_model(), tmp_path / "r.onnx")
    assert_error(capfd, ["compile", path, "-o", tmp_path / "build", "--strip-width", "4"],
                 "layer fork0 (fork", "splits the stream into branches", "without --strip-width")


# ----------------------------------------------------------------------------- fold files
def _fold(tmp_path, doc) -> Path:
    p = tmp_path / "fold.json"
    p.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return p


@pytest.mark.parametrize("doc,fragments", [
    ({"fc9": {"pe": 1}}, ["unknown layer 'fc9'", "the model's layers are fc0, fc1"]),
    ({"fc0": {"pe": 4}}, ["layer 'fc0'", "PE=4 does not divide", "pick one of [1, 2, 3, 6]"]),
    ({"fc0": {"simd": 3}}, ["layer 'fc0'", "SIMD=3 does not divide", "pick one of [1, 2, 4, 8]"]),
    ({"fc0": {"pe": "2"}}, ["layer 'fc0'", "PE must be a whole number, got '2'"]),
    ({"fc0": {"pe": 0}}, ["layer 'fc0'", "PE=0 does not divide"]),
    ({"fc0": {"pe": True}}, ["layer 'fc0'", "PE must be a whole number, got True"]),
    ({"fc0": {"depth": 2}}, ["layer 'fc0' has no knob 'depth'"]),
    ({"fc0": 2}, ["layer 'fc0' needs an object like"]),
    ({"fc0": {"ram_style": "bram"}}, ["layer 'fc0': ram_style 'bram' is not one of auto, block"]),
    ([1, 2], ["expected an object mapping layer names"]),
    ("{not json", ["not valid JSON"]),
], ids=["unknown_layer", "pe", "simd", "pe_string", "pe_zero", "pe_bool", "unknown_knob",
        "not_object", "ram_style", "list", "json"])
def test_fold_file(capfd, tmp_path, doc, fragments):
    model = save(dense_model(), tmp_path / "m.onnx")
    fold = _fold(tmp_path, doc)
    assert_error(capfd, ["compile", model, "-o", tmp_path / "b", "--fold", fold], "fold.json", *fragments)


def test_fold_file_tied_knob(capfd, tmp_path):
    """A depthwise window's SIMD follows its vector-vector unit's PE: not settable on its own (and
    fold.json no longer writes it, so a build's fold.json reads back: test_determinism)."""
    from handmade import conv_model

    model = save(conv_model(), tmp_path / "conv.onnx")
    fold = _fold(tmp_path, {"conv1_win": {"simd": 2}})
    assert_error(capfd, ["compile", model, "-o", tmp_path / "b", "--fold", fold], "fold.json",
                 "layer 'conv1_win': SIMD is not free, it follows the next unit's folding")


def test_fold_file_missing(capfd, tmp_path):
    model = save(dense_model(), tmp_path / "m.onnx")
    assert_error(capfd, ["compile", model, "-o", tmp_path / "b", "--fold", tmp_path / "nofold.json"],
                 "nofold.json", "no such fold file")


# ----------------------------------------------------------------------------- boards
def test_unknown_board_cli(capfd, tmp_path):
    model = save(dense_model(), tmp_path / "m.onnx")
    assert_error(capfd, ["compile", model, "-o", tmp_path / "b", "--board", "pynq-z3"],
                 "unknown board 'pynq-z3'", "did you mean pynq-z2", "streamfold boards")
    assert not (tmp_path / "b").exists(), "an unknown board must fail before any work"


def test_unknown_board_api():
    from streamfold.boards import BoardError, load_board

    with pytest.raises(BoardError, match="did you mean pynq-z2"):
        load_board("pynq-z3")


# ----------------------------------------------------------------------------- simulate inputs
def _npy(tmp_path, name, arr, **kw) -> Path:
    p = tmp_path / name
    np.save(p, arr, **kw)
    return p


@pytest.mark.parametrize("arr,fragments", [
    (np.zeros((2, 7), np.float32), ["input array has shape (2, 7)", "expected (frames, 8)"]),
    (np.zeros((2, 1, 8), np.float32), ["input array has shape (2, 1, 8)", "expected (frames, 8)"]),
    (np.zeros((0, 8), np.float32), ["no frames"]),
    (np.array([["a"] * 8]), ["input array has dtype <U1", "expected float32"]),
    (np.zeros((2, 8), np.complex64), ["input array has dtype complex64"]),
    (np.zeros((2, 8), bool), ["input array has dtype bool"]),
    (np.full((2, 8), np.nan, np.float32), ["input array holds nan at index [0, 0]", "finite"]),
], ids=["shape", "rank", "empty", "strings", "complex", "bool", "nan"])
def test_simulate_bad_input_array(capfd, tmp_path, build, arr, fragments):
    x = _npy(tmp_path, "x.npy", arr)
    assert_error(capfd, ["simulate", build, "--input", x], *fragments)


def test_simulate_input_not_npy(capfd, tmp_path, build):
    p = tmp_path / "x.npy"
    p.write_text("0 1 2 3 4 5 6 7\n")
    assert_error(capfd, ["simulate", build, "--input", p], "x.npy", "no .npy header")
    z = tmp_path / "x.npz"
    np.savez(z, x=np.zeros((1, 8), np.float32))
    assert_error(capfd, ["simulate", build, "--input", z], "x.npz", "is an .npz archive")
    o = _npy(tmp_path, "obj.npy", np.array([None, 1], dtype=object), allow_pickle=True)
    assert_error(capfd, ["simulate", build, "--input", o], "obj.npy", "Python objects")
    assert_error(capfd, ["simulate", build, "--input", tmp_path / "none.npy"], "none.npy",
                 "no such input file")


@pytest.mark.parametrize("flag,value,fragment", [("--gaps", "1.0", "gap probability 1.0"),
                                                  ("--stalls", "1.5", "back-pressure probability 1.5")])
def test_simulate_bad_probabilities(capfd, tmp_path, build, flag, value, fragment):
    x = _npy(tmp_path, "x.npy", np.zeros((1, 8), np.float32))
    assert_error(capfd, ["simulate", build, "--input", x, flag, value], fragment)


# ----------------------------------------------------------------------------- build folders
def _copy(build, tmp_path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(build, dst, ignore=shutil.ignore_patterns("sim_build"))
    return dst


def test_build_from_another_version(capfd, tmp_path, build):
    b = _copy(build, tmp_path)
    doc = json.loads((b / "ir.json").read_text())
    doc["ir_version"] = 0
    (b / "ir.json").write_text(json.dumps(doc))
    x = _npy(tmp_path, "x.npy", np.zeros((1, 8), np.float32))
    assert_error(capfd, ["simulate", b, "--input", x], str(b), "IR version 0", "compile the model again")


def test_build_in_the_list_format(capfd, tmp_path, build):
    """A build written before the graph IR (format 1: a unit list and ``fifo_depths``)."""
    b = _copy(build, tmp_path)
    doc = json.loads((b / "ir.json").read_text())
    doc["fifo_depths"] = [e["depth"] for e in doc.pop("edges")]
    doc["ir_version"] = 1
    (b / "ir.json").write_text(json.dumps(doc))
    x = _npy(tmp_path, "x.npy", np.zeros((1, 8), np.float32))
    assert_error(capfd, ["simulate", b, "--input", x], str(b), "IR version 1", "reads version 2",
                 "compile the model again")


@pytest.mark.parametrize("missing", ["ir.json", "ir_arrays.npz", "streamfold_top.v"])
def test_build_missing_file(capfd, tmp_path, build, missing):
    b = _copy(build, tmp_path)
    (b / missing).unlink()
    x = _npy(tmp_path, "x.npy", np.zeros((1, 8), np.float32))
    assert_error(capfd, ["simulate", b, "--input", x], str(b), missing)


@pytest.mark.parametrize("damage", ["json", "npz", "unit"])
def test_build_damaged(capfd, tmp_path, build, damage):
    b = _copy(build, tmp_path)
    if damage == "json":
        (b / "ir.json").write_text("{not json")
        want = "ir.json: not readable JSON"
    elif damage == "npz":
        (b / "ir_arrays.npz").write_bytes(b"junk")
        want = "ir_arrays.npz: not a readable NumPy archive"
    else:
        doc = json.loads((b / "ir.json").read_text())
        del doc["units"][0]["weights"]
        (b / "ir.json").write_text(json.dumps(doc))
        want = "do not describe a valid pipeline"
    x = _npy(tmp_path, "x.npy", np.zeros((1, 8), np.float32))
    assert_error(capfd, ["simulate", b, "--input", x], want)


def test_not_a_build_folder(capfd, tmp_path):
    x = _npy(tmp_path, "x.npy", np.zeros((1, 8), np.float32))
    assert_error(capfd, ["simulate", tmp_path / "nobuild", "--input", x], "nobuild", "no such build folder")


# ----------------------------------------------------------------------------- the executable
def test_executable_exit_code_and_debug(tmp_path):
    """The installed command: exit code 2, one line, no traceback; ``--debug`` shows it."""
    p = tmp_path / "random.onnx"
    p.write_bytes(np.random.default_rng(1).bytes(1000))
    exe = [str(EXE)] if EXE.exists() else [sys.executable, "-m", "streamfold.compiler.cli"]
    env = dict(os.environ, PYTHONHASHSEED="0")
    r = subprocess.run(exe + ["compile", str(p), "-o", str(tmp_path / "b")], capture_output=True,
                       text=True, env=env, timeout=300)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("streamfold: error:"), r.stderr
    r = subprocess.run(exe + ["--debug", "compile", str(p), "-o", str(tmp_path / "b")],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode != 0
    assert "Traceback" in r.stderr and "ModelError" in r.stderr


# ----------------------------------------------------------------------------- stalls


@needs_verilator
def test_stall_is_bounded_and_explained(capfd, tmp_path, build, monkeypatch):
    """A sink that is never ready (--stalls 1.0): the run ends after the no-progress limit, the
    report names the stuck stream and the FIFO levels, and the command exits non-zero."""
    monkeypatch.setenv("STREAMFOLD_SIM_CACHE", os.environ.get("STREAMFOLD_SIM_CACHE")
                       or str(REPO / "build" / "sim_cache"))
    x = _npy(tmp_path, "x.npy", np.random.default_rng(0).random((3, 8)).astype(np.float32))
    rc, out, lines = run_cli(capfd, "simulate", build, "--input", x, "--engine", "verilator",
                             "--stalls", "1.0")
    assert rc == 1
    err = "\n".join(lines)
    first = next(l for l in lines if l.startswith("streamfold: error:"))
    for f in ("the design stalled", "no beat moved on either side for 10000 cycles",
              "3/3 input beats accepted", "0/3 output beats received"):
        assert f in first, first
    assert "stuck at fifo2 (output) -> m_axis: the sink is not taking beats" in err
    assert "fc1 (mvau) -> fifo2 (output)  valid=1 ready=0  *" in err
    assert "FIFO occupancy: fifo0 0/2" in err and "fifo2 (output) 2/2 full" in err
    sim = json.loads((build / "sim.json").read_text())
    run = sim["runs"][0]
    assert run["stalled"] and sim["bit_exact"] is False
    assert run["cycles"] <= 10_000 + 50  # ended by the no-progress limit, not by a timeout
    assert run["stall_diagnosis"]["stuck_at"] == "fifo2 (output) -> m_axis"
    assert {f["name"]: f["occupancy"] for f in run["stall_diagnosis"]["fifos"]}["fifo2 (output)"] == 2
    assert not sim["runs"][1]["stalled"]  # the full-rate run still completes


def _stalled_result(probes, **kw):
    from streamfold.sim.run import StreamResult

    base = dict(out_beats=[], out_last=[], out_cycles=[], in_frame_start_cycles=[0], cycles=5000,
                stalled=True, stall="no beat moved on either side for 5000 cycles (stopped at cycle "
                "5000): ...", status="stall", engine="verilator", in_beats_per_frame=1,
                out_beats_per_frame=1, in_beats_total=4, in_accepted=4, expected_out_beats=4,
                handshake={"s_axis_tvalid": 0, "s_axis_tready": 1, "m_axis_tvalid": 0,
                           "m_axis_tready": 1}, probes=probes)
    base.update(kw)
    return StreamResult(**base)


def _two_layers():
    from streamfold.compiler.ir import BIPOLAR, DataType, MatrixVectorUnit, DataflowGraph

    a = MatrixVectorUnit("fc0", np.ones((4, 8), np.int64), DataType(2, True), DataType(2, False),
                         BIPOLAR, pe=4, simd=8)
    a.out_dtype = DataType(2, False)
    a.thresholds, a.out_bias = np.zeros((4, 3), np.int64), 0
    b = MatrixVectorUnit("fc1", np.ones((2, 4), np.int64), DataType(2, True), DataType(2, False),
                         BIPOLAR, pe=1, simd=2)
    b.out_dtype = b.acc_dtype
    return DataflowGraph([a, b], [2, 3, 1])


def test_stall_diagnosis_names_a_stuck_unit():
    """An internal deadlock (synthetic probes): fc1 holds its input and produces nothing."""
    from streamfold.sim.stall import diagnose

    top = "top.streamfold_top"
    hs = {"fifo0": (0, 1, 0, 1), "u0_fc0": (0, 1, 1, 1), "dwc0": (1, 1, 1, 0),
          "fifo1": (1, 0, 1, 0), "u1_fc1": (1, 0, 0, 1), "fifo2": (0, 1, 0, 1)}
    probes = []
    for inst, (iv, ir, ov, orr) in hs.items():
        for name, v in (("i__valid", iv), ("i__ready", ir), ("o__valid", ov), ("o__ready", orr)):
            probes.append([f"{top}.{inst}", name, v])
    probes += [[f"{top}.fifo0", "skid_valid", 0], [f"{top}.fifo1.fifo", "level", 3],
               [f"{top}.fifo1.fifo.unbuffered", "level", 2], [f"{top}.fifo2", "valid", 0]]
    rep = diagnose(_two_layers(), _stalled_result(probes, expected_out_beats=8, out_beats_per_frame=2))
    assert rep.stuck_at == "fifo1 -> fc1 (mvau)"
    assert "fc1 (mvau) does not take the beat offered to it while its own output is idle: it is stuck" \
        in rep.text
    assert "dwc0 -> fifo1" in rep.text  # the width converter between the two folds is listed
    assert "FIFO occupancy: fifo0 0/2, fifo1 3/3 full, fifo2 (output) 0/1" in rep.text
    assert "0/8 output beats received (0/4 frames out, 2 beats per frame)" in rep.summary


def test_stall_diagnosis_lost_beats_and_no_probes():
    from streamfold.sim.stall import diagnose

    top = "top.streamfold_top"
    probes = [[f"{top}.{inst}", n, 0 if "valid" in n else 1]
              for inst in ("fifo0", "u0_fc0", "dwc0", "fifo1", "u1_fc1", "fifo2")
              for n in ("i__valid", "i__ready", "o__valid", "o__ready")]
    rep = diagnose(_two_layers(), _stalled_result(probes, out_beats=[1, 2], out_last=[1, 1],
                                                  out_cycles=[3, 4]))
    assert "every input beat was accepted and nothing is in flight, but 2 output beats never came" \
        in rep.text
    bare = diagnose(_two_layers(), _stalled_result([], handshake={
        "s_axis_tvalid": 0, "s_axis_tready": 1, "m_axis_tvalid": 1, "m_axis_tready": 0}))
    assert "internal streams not probed" in bare.text and bare.stuck_at == "m_axis"

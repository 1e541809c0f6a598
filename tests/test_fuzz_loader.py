"""Fuzz the compile path with random mutations of valid QONNX models.

Every mutant (flipped bytes of the serialized file, a truncated file, dropped or duplicated nodes,
changed attributes, initializers of another shape, dtype or with odd values, renamed tensors,
other op types, other input shapes, ...) must either compile or raise a
:class:`~streamfold.compiler.errors.StreamfoldError` -- the one-line error the CLI prints -- and
never another exception (which the CLI reports as an internal error), nor a NumPy warning (which
would print extra lines).

The compile path is everything ``streamfold compile`` does before writing files: load, clean,
lower, fold, check, size FIFOs, and the report (cost and resource models). A sample of the mutants
that compile also go through Verilog emission.

Profiles (``STREAMFOLD_HYPOTHESIS_PROFILE``): the default runs ~200 mutants in seconds; ``nightly``
runs mutants for ``STREAMFOLD_FUZZ_SECONDS`` (default 600) seconds. A failing mutant is reported
with its seed and mutation list; ``STREAMFOLD_FUZZ_SEED`` replays one. Failures found so far are
kept as explicit regression tests at the end of this file.
"""
from __future__ import annotations

import copy
import os
import time
import traceback
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from streamfold.compiler.build import lower_file, make_report
from streamfold.compiler.errors import StreamfoldError

from handmade import conv_model, dense_model

REPO = Path(__file__).resolve().parent.parent
NIGHTLY = os.environ.get("STREAMFOLD_HYPOTHESIS_PROFILE") == "nightly"
FAST_MUTANTS = 200
NIGHTLY_SECONDS = float(os.environ.get("STREAMFOLD_FUZZ_SECONDS", "600"))


# ----------------------------------------------------------------------------- seeds
def seed_models() -> dict:
    """name -> serialized valid model (each compiles as is)."""
    models = {"dense": dense_model().SerializeToString(),
              "dense_out_quant": dense_model(out_quant=True, act_bits=2).SerializeToString(),
              "conv": conv_model().SerializeToString()}
    digits = REPO / "examples" / "models" / "digits_w1a1.onnx"
    if digits.exists():
        models["digits_w1a1"] = digits.read_bytes()
    return models


# ----------------------------------------------------------------------------- mutations
ODD_FLOATS = [0.0, -0.0, -1.0, 1e-30, 1e30, np.inf, -np.inf, np.nan, 0.5, 3.5, 255.0, 2.0**31]
ODD_INTS = [-1, 0, 1, 2, 3, 7, 64, 1 << 20, -(1 << 31)]
OPS = ["Relu", "Sigmoid", "Softmax", "Abs", "MatMul", "Gemm", "Conv", "Add", "Mul", "Div", "Sub",
       "Quant", "BipolarQuant", "Identity", "Flatten", "Reshape", "Transpose", "MaxPool",
       "GlobalAveragePool", "BatchNormalization", "Pad", "Clip", "Neg", "Max", "Concat", "Trunc",
       "NoSuchOp"]


def _pick(rng, seq):
    return seq[int(rng.integers(len(seq)))]


def _tensor_names(m) -> list:
    names = {i for n in m.graph.node for i in n.input if i} | {o for n in m.graph.node for o in n.output}
    return sorted(names)


def m_drop_node(rng, m):
    if not m.graph.node:
        return "no node"
    i = int(rng.integers(len(m.graph.node)))
    n = m.graph.node[i]
    del m.graph.node[i]
    return f"drop node {n.name} ({n.op_type})"


def m_duplicate_node(rng, m):
    if not m.graph.node:
        return "no node"
    i = int(rng.integers(len(m.graph.node)))
    n = copy.deepcopy(m.graph.node[i])
    if rng.random() < 0.5:
        n.name = n.name + "_dup"
        for j in range(len(n.output)):
            n.output[j] = n.output[j] + "_dup"
    m.graph.node.insert(int(rng.integers(len(m.graph.node) + 1)), n)
    return f"duplicate node {n.name} ({n.op_type})"


def m_attribute(rng, m):
    nodes = [n for n in m.graph.node]
    if not nodes:
        return "no node"
    n = _pick(rng, nodes)
    r = rng.random()
    if r < 0.15 or not n.attribute:
        name = _pick(rng, ["axis", "group", "kernel_shape", "pads", "strides", "signed", "narrow",
                           "transB", "perm", "epsilon", "bogus", "rounding_mode", "mode"])
        val = _pick(rng, [int(_pick(rng, ODD_INTS)), [int(v) for v in rng.integers(-2, 5, 4)],
                          float(_pick(rng, ODD_FLOATS)), "HALF_UP", "nonsense"])
        n.attribute.append(helper.make_attribute(name, val))
        return f"add attribute {name}={val!r} to {n.name}"
    a = _pick(rng, list(n.attribute))
    if r < 0.3:
        n.attribute.remove(a)
        return f"remove attribute {a.name} of {n.name}"
    v = helper.get_attribute_value(a)
    if isinstance(v, int):
        new = int(_pick(rng, ODD_INTS))
    elif isinstance(v, float):
        new = float(_pick(rng, ODD_FLOATS))
    elif isinstance(v, bytes):
        new = _pick(rng, ["ROUND", "FLOOR", "CEIL", "HALF_UP", "nonsense", "", "reflect", "edge"])
    elif isinstance(v, list) and v and isinstance(v[0], int):
        new = list(v)
        k = rng.random()
        if k < 0.3:
            new = new[:-1]
        elif k < 0.5:
            new = new + [int(_pick(rng, ODD_INTS))]
        else:
            new[int(rng.integers(len(new)))] = int(_pick(rng, ODD_INTS))
    else:
        return f"attribute {a.name} of {n.name} left alone"
    n.attribute.remove(a)
    n.attribute.append(helper.make_attribute(a.name, new))
    return f"attribute {a.name} of {n.name}: {v!r} -> {new!r}"


def m_initializer(rng, m):
    inits = list(m.graph.initializer)
    if not inits:
        return "no initializer"
    t = _pick(rng, inits)
    arr = numpy_helper.to_array(t)
    r = rng.random()
    if r < 0.25:  # another shape, same size
        if arr.size > 1:
            d = _pick(rng, [k for k in range(1, arr.size + 1) if arr.size % k == 0])
            new = arr.reshape(d, -1) if rng.random() < 0.5 else arr.reshape(-1)
        elif arr.size == 1:
            new = arr.reshape((1,) * int(rng.integers(0, 4)))
        else:
            new = arr.reshape((0,) + (1,) * int(rng.integers(0, 3)))
        what = f"reshape to {new.shape}"
    elif r < 0.45:  # another size
        flat = arr.reshape(-1)
        new = flat[:max(0, flat.size - int(rng.integers(1, 3)))] if rng.random() < 0.5 else \
            np.concatenate([flat, flat[:1]] if flat.size else [np.zeros(1, arr.dtype)])
        what = f"resize to {new.shape}"
    elif r < 0.7:  # another dtype
        dt = _pick(rng, [np.float64, np.float16, np.int64, np.int32, np.int8, np.uint8, np.bool_])
        with np.errstate(all="ignore"):
            new = np.nan_to_num(arr.astype(np.float64)).astype(dt)
        what = f"dtype {arr.dtype} -> {np.dtype(dt)}"
    else:  # odd values
        new = arr.astype(np.float32, copy=True) if arr.dtype.kind == "f" else arr.copy()
        if new.size:
            idx = tuple(int(rng.integers(s)) for s in new.shape) if new.ndim else ()
            val = _pick(rng, ODD_FLOATS if new.dtype.kind == "f" else ODD_INTS)
            with np.errstate(all="ignore"):
                if new.dtype.kind == "f" or rng.random() < 0.5:
                    new = new.astype(np.float32)
                    if rng.random() < 0.3:
                        new[...] = val
                    else:
                        new[idx] = val
                else:
                    new[idx] = np.asarray(val).astype(new.dtype)
        what = "odd values"
    t.CopyFrom(numpy_helper.from_array(np.asarray(new), t.name))
    return f"initializer {t.name}: {what}"


def m_rename(rng, m):
    names = _tensor_names(m)
    if not names:
        return "no tensor"
    old = _pick(rng, names)
    new = old + "_renamed" if rng.random() < 0.7 else _pick(rng, names)
    everywhere = rng.random() < 0.5
    for n in m.graph.node:
        for seq in (n.input, n.output):
            for j, v in enumerate(seq):
                if v == old and (everywhere or rng.random() < 0.5):
                    seq[j] = new
    for vi in list(m.graph.input) + list(m.graph.output):
        if vi.name == old and everywhere:
            vi.name = new
    for t in m.graph.initializer:
        if t.name == old and everywhere:
            t.name = new
    return f"rename {old} -> {new} ({'everywhere' if everywhere else 'partly'})"


def m_op_type(rng, m):
    if not m.graph.node:
        return "no node"
    n = _pick(rng, list(m.graph.node))
    old = n.op_type
    n.op_type = _pick(rng, OPS)
    if n.op_type in ("Quant", "BipolarQuant", "Trunc"):
        n.domain = "qonnx.custom_op.general"
    elif rng.random() < 0.8:
        n.domain = ""
    return f"op {n.name}: {old} -> {n.op_type}"


def m_inputs(rng, m):
    if not m.graph.node:
        return "no node"
    n = _pick(rng, list(m.graph.node))
    r = rng.random()
    if r < 0.4 and len(n.input) > 1:
        ins = list(n.input)
        i, j = rng.choice(len(ins), 2, replace=False)
        ins[i], ins[j] = ins[j], ins[i]
        del n.input[:]
        n.input.extend(ins)
        return f"swap inputs {i},{j} of {n.name}"
    if r < 0.7 and n.input:
        del n.input[int(rng.integers(len(n.input)))]
        return f"drop an input of {n.name}"
    n.input.append(_pick(rng, _tensor_names(m) + [""]))
    return f"add an input to {n.name}"


def m_graph_io(rng, m):
    vi = _pick(rng, list(m.graph.input) + list(m.graph.output))
    dims = vi.type.tensor_type.shape.dim
    r = rng.random()
    if r < 0.3 and len(dims):
        d = dims[int(rng.integers(len(dims)))]
        v = int(_pick(rng, [0, -1, 1, 2, 3, 100]))
        d.dim_value = v
        return f"{vi.name} dim -> {v}"
    if r < 0.5 and len(dims):
        d = dims[int(rng.integers(len(dims)))]
        d.dim_param = "n"
        return f"{vi.name} dim -> symbolic"
    if r < 0.7:
        dims.add().dim_value = 1
        return f"{vi.name} extra dim"
    if r < 0.85:
        vi.type.tensor_type.elem_type = int(_pick(rng, [onnx.TensorProto.INT8, onnx.TensorProto.DOUBLE,
                                                         onnx.TensorProto.FLOAT16, 0]))
        return f"{vi.name} elem type -> {vi.type.tensor_type.elem_type}"
    vi.type.tensor_type.ClearField("shape")
    return f"{vi.name} no shape"


def m_domain_opset(rng, m):
    r = rng.random()
    if r < 0.5 and m.graph.node:
        n = _pick(rng, list(m.graph.node))
        n.domain = _pick(rng, ["", "qonnx.custom_op.general", "finn.custom_op.general", "bogus"])
        return f"domain of {n.name} -> {n.domain!r}"
    op = m.opset_import[0]
    op.version = int(_pick(rng, [1, 7, 11, 13, 17, 21, 99]))
    return f"opset -> {op.version}"


PROTO_MUTATIONS = [m_drop_node, m_duplicate_node, m_attribute, m_attribute, m_initializer,
                   m_initializer, m_rename, m_op_type, m_inputs, m_graph_io, m_domain_opset]


def mutate(rng, data: bytes) -> tuple[bytes, list]:
    """One mutant of ``data`` and the list of what was done to it."""
    r = rng.random()
    if r < 0.12:  # flip bytes of the file
        b = bytearray(data)
        n = int(rng.integers(1, 9))
        for _ in range(n):
            b[int(rng.integers(len(b)))] = int(rng.integers(256))
        return bytes(b), [f"flip {n} bytes"]
    if r < 0.17:
        cut = int(rng.integers(len(data)))
        return data[:cut], [f"truncate to {cut} of {len(data)} bytes"]
    m = onnx.ModelProto()
    m.ParseFromString(data)
    done = []
    for _ in range(int(rng.integers(1, 4))):
        fn = _pick(rng, PROTO_MUTATIONS)
        try:
            done.append(fn(rng, m))
        except Exception as e:  # a mutator that cannot apply here: skip it, the mutant stays valid
            done.append(f"({fn.__name__} skipped: {type(e).__name__})")
    try:
        out = m.SerializeToString()
    except Exception as e:  # e.g. an attribute protobuf rejects: the mutant is not a file
        return data, done + [f"(not serializable: {e}; original kept)"]
    return out, done


# ----------------------------------------------------------------------------- the check
def compile_path(path: Path, emit: bool = False, out_dir: Path | None = None):
    """What ``streamfold compile`` does, up to (and with ``emit``, including) the files."""
    cm = lower_file(path)
    make_report(cm)
    if emit:
        from streamfold.compiler.build import write_build

        write_build(cm, out_dir)
    return cm


def same_as_qonnx(cm, path: Path, frames: int = 3, seed: int = 0) -> None:
    """The compiled model's NumPy reference computes what qonnx computes on the model file: a
    mutant that compiles must not compile into something else."""
    from models import qonnx_reference, random_inputs

    from streamfold.compiler.load import _quiet_onnxruntime

    x = random_inputs(tuple(cm.input_shape[1:]), frames, seed=seed)
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings(), _quiet_onnxruntime():
            warnings.simplefilter("ignore")
            q = qonnx_reference(path, x)
    except Exception:  # qonnx cannot run the mutant either: nothing to compare with
        return
    try:
        _, out = cm.reference(x)
    except Exception as e:
        raise AssertionError(f"the compiled model's reference fails: {type(e).__name__}: {e}\n"
                             f"{traceback.format_exc()}") from None
    assert out.shape == q.shape, f"output shape {out.shape}, qonnx {q.shape}"
    if cm.host_out.exact:
        np.testing.assert_array_equal(out, q, err_msg="compiled model differs from qonnx")
    else:
        scale = float(np.abs(q[np.isfinite(q)]).max()) if np.isfinite(q).any() else 1.0
        np.testing.assert_allclose(out, q, rtol=1e-5, atol=1e-5 * (scale or 1.0),
                                   err_msg="compiled model differs from qonnx")


def _no_stderr(capfd) -> None:
    if capfd is not None:
        err = capfd.readouterr().err.strip()
        assert not err, f"wrote to stderr: {err[:300]}"


def check_mutant(data: bytes, path: Path, emit: bool = False, verify: bool = True, capfd=None) -> str:
    """``"ok"``, ``"error"`` (a StreamfoldError), or raise AssertionError with the details.

    ``verify``: a mutant that compiles is also run on random inputs through the compiled model's
    NumPy reference and through qonnx: the outputs must agree."""
    path.write_bytes(data)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning would be an extra line on the CLI's stderr
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        try:
            cm = compile_path(path, emit, path.with_suffix(".build"))
            _no_stderr(capfd)
        except StreamfoldError as e:
            _no_stderr(capfd)
            msg = str(e)
            assert msg.strip() and "\n" not in msg.strip(), f"multi-line error: {msg!r}"
            return "error"
        except Exception as e:
            raise AssertionError(f"{type(e).__name__}: {e}\n{traceback.format_exc()}") from None
    if verify:
        same_as_qonnx(cm, path)
    return "ok"


def run_fuzz(tmp_path: Path, seeds, deadline: float | None = None, emit_every: int = 0,
             capfd=None) -> dict:
    """Mutate and compile; ``capfd`` (pytest's fixture): also fail on anything written to stderr
    (onnxruntime's C++ logger writes there on its own)."""
    models = seed_models()
    names = sorted(models)
    stats = {"ok": 0, "error": 0, "mutants": 0, "failures": []}
    for seed in seeds:
        if deadline is not None and time.monotonic() > deadline:
            break
        rng = np.random.default_rng(seed)
        name = names[seed % len(names)]
        data, done = mutate(rng, models[name])
        emit = bool(emit_every) and stats["ok"] % emit_every == 0
        try:
            res = check_mutant(data, tmp_path / f"m{seed}.onnx", emit=emit, capfd=capfd)
            stats[res] += 1
        except AssertionError as e:
            stats["failures"].append((seed, name, done, str(e)))
        stats["mutants"] += 1
        for f in tmp_path.glob(f"m{seed}.*"):
            if f.is_file():
                f.unlink()
    return stats


def _report(stats) -> str:
    lines = [f"{len(stats['failures'])} of {stats['mutants']} mutants raised a non-Streamfold "
             f"exception or warned ({stats['ok']} compiled, {stats['error']} clean errors):"]
    for seed, name, done, err in stats["failures"][:10]:
        lines.append(f"  seed {seed} ({name}; {'; '.join(done)}): {err.splitlines()[0]}")
    if stats["failures"]:
        lines.append("first traceback:\n" + stats["failures"][0][3])
    return "\n".join(lines)


def test_seed_models_compile(tmp_path):
    for name, data in seed_models().items():
        assert check_mutant(data, tmp_path / f"{name}.onnx") == "ok", name


def test_fuzz_loader(tmp_path, capfd):
    if os.environ.get("STREAMFOLD_FUZZ_SEED"):
        seeds = [int(os.environ["STREAMFOLD_FUZZ_SEED"])]
        deadline = None
    elif NIGHTLY:
        seeds = range(10**9)
        deadline = time.monotonic() + NIGHTLY_SECONDS
    else:
        seeds = range(FAST_MUTANTS)
        deadline = None
    stats = run_fuzz(tmp_path, seeds, deadline, emit_every=50 if NIGHTLY else 0, capfd=capfd)
    with capfd.disabled():
            print(f"\nfuzz: {stats['mutants']} mutants, {stats['ok']} compiled, {stats['error']} clean "
              f"errors, {len(stats['failures'])} failures")
    assert not stats["failures"], _report(stats)
    assert stats["ok"] + stats["error"] == stats["mutants"]


# ----------------------------------------------------------------------------- regressions
def _node(m, op: str, k: int = 0):
    return [n for n in m.graph.node if n.op_type == op][k]


def _init(m, name: str):
    return next(t for t in m.graph.initializer if t.name == name)


def _set_init(m, name: str, arr) -> None:
    _init(m, name).CopyFrom(numpy_helper.from_array(np.asarray(arr), name))


def _set_attr(node, name: str, value) -> None:
    for a in list(node.attribute):
        if a.name == name:
            node.attribute.remove(a)
    if value is not None:
        node.attribute.append(helper.make_attribute(name, value))


def _digits():
    return onnx.load(str(REPO / "examples" / "models" / "digits_w1a1.onnx"))


def r_int8_bit_width():
    """qonnx computes 2**bits in the bit width's own type: an int8 8 overflows, so qonnx's output
    is not what the model says; the compiled design silently differed from qonnx."""
    m = _digits()
    q = _node(m, "Quant")
    bits = numpy_helper.to_array(_init(m, q.input[3]))
    _set_init(m, q.input[3], bits.astype(np.int8))
    return m, "bit width must be one float32 number"


def r_inf_batchnorm_scale():
    """An inf batch-norm scale: onnxruntime gives NaN for every input, NumPy a sign function."""
    m = _digits()
    bn = _node(m, "BatchNormalization")
    g = numpy_helper.to_array(_init(m, bn.input[1])).copy()
    g[3] = np.inf
    _set_init(m, bn.input[1], g)
    return m, "holds inf"


def r_stale_shapes():
    """A Conv's pads removed while the file's shape annotations still say 8x8: the windows and
    the next layer disagreed (a ValueError from the pipeline check)."""
    m = _digits()
    _set_attr(_node(m, "Conv"), "pads", None)
    return m, "elementwise ops keep the shape"


def r_quant_missing_input():
    m = dense_model()
    q = _node(m, "Quant", 1)
    del q.input[3]
    return m, "Quant"


def r_empty_zero_point():
    m = dense_model()
    q = _node(m, "Quant", 2)
    _set_init(m, q.input[2], np.zeros(0, np.float32))
    return m, "(Quant)"


def r_vector_weights():
    m = dense_model(out_quant=True)
    q = _node(m, "Quant", 1)
    w = numpy_helper.to_array(_init(m, q.input[0]))
    _set_init(m, q.input[0], w.reshape(-1)[:7])
    return m, "expected a matrix"


def r_conv_weights_rank2():
    m = conv_model()
    q = _node(m, "Quant", 1)
    w = numpy_helper.to_array(_init(m, q.input[0]))
    _set_init(m, q.input[0], w.reshape(w.shape[0], -1))
    return m, "(Conv)"


def r_kernel_shape_float():
    m = conv_model()
    _set_attr(_node(m, "MaxPool"), "kernel_shape", float("nan"))
    return m, "(MaxPool)"


def r_signed_string():
    m = conv_model()
    _set_attr(_node(m, "Quant", 1), "signed", "HALF_UP")
    return m, "attribute signed='HALF_UP'; expected 0 or 1"


def r_rounding_mode_garbled():
    m = dense_model()
    _set_attr(_node(m, "Quant", 0), "rounding_mode", b"\xfa\xfb")
    return m, "unknown rounding_mode"


def r_conv_missing_weights():
    m = conv_model()
    conv = _node(m, "Conv")
    del conv.input[1]
    return m, "(Conv)"


def r_quant_scale_rank3():
    """An activation scale of shape (1, 1, 1) on a (1, 4) tensor: qonnx's executor broadcasts the
    output to (1, 1, 4) (not the shape the model declares); the compiled model gave (1, 4)."""
    m = dense_model(out_quant=True, act_bits=2)
    q = _node(m, "Quant", 4)
    _set_init(m, q.input[1], numpy_helper.to_array(_init(m, q.input[1])).reshape(1, 1, 1))
    return m, "constant of shape (1, 1, 1) does not act per channel"


REGRESSIONS = [r_quant_scale_rank3, r_int8_bit_width, r_inf_batchnorm_scale, r_stale_shapes, r_quant_missing_input,
               r_empty_zero_point, r_vector_weights, r_conv_weights_rank2, r_kernel_shape_float,
               r_signed_string, r_rounding_mode_garbled, r_conv_missing_weights]


@pytest.mark.parametrize("case", REGRESSIONS, ids=[f.__name__[2:] for f in REGRESSIONS])
def test_fuzz_regression(tmp_path, case):
    """Mutants the fuzzer found raising a non-Streamfold exception or compiling into a design
    that differs from qonnx: each now ends in a clear one-line error."""
    m, fragment = case()
    path = tmp_path / "mutant.onnx"
    path.write_bytes(m.SerializeToString())
    with pytest.raises(StreamfoldError) as e:
        compile_path(path)
    assert fragment in str(e.value) and "\n" not in str(e.value)


# ----------------------------------------------------------------------------- Gemm rewrites
def _gemm_model(bias: bool):
    from handmade import Graph

    g = Graph(seed=1)
    t = g.quant("x", 1 / 15, 4)
    w = g.qweight((6, 8))  # (outputs, inputs): the dynamo exporter's Gemm(transB=1)
    ins = [t, w] + ([g.const(np.linspace(-1, 1, 6).astype(np.float32), "b")] if bias else [])
    t = g.node("Gemm", ins, transB=1)
    return g.model("x", [1, 8], t, [1, 6])


@pytest.mark.parametrize("bias", [False, True], ids=["no_bias", "bias"])
def test_gemm_rewritten(tmp_path, bias):
    """A Gemm(transB=1) with and without its bias input (qonnx's GemmToMatMul alone fails on the
    latter) compiles into one layer named after the Gemm and computes what qonnx computes."""
    path = tmp_path / "gemm.onnx"
    assert check_mutant(_gemm_model(bias).SerializeToString(), path) == "ok"
    cm = compile_path(path)
    assert [u.source for u in cm.pipeline.units] == ["Gemm_0"]
    assert [op.node for op in cm.host_out.ops] == (["Gemm_0.bias"] if bias else [])

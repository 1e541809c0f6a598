"""Graph rewrites that bring a cleaned QONNX model into the few shapes the lowering walks.

Each rewrite is a qonnx :class:`~qonnx.transformation.base.Transformation` (one per class,
``apply(model) -> (model, graph_modified)``); :func:`prepare` runs them in order. Where qonnx has
the transformation (constant folding, ``GemmToMatMul``, ``BatchNormToAffine``) it does the work;
the rewrites here choose the nodes it may touch and keep the user's node names:

* qonnx's ``GemmToMatMul`` and ``BatchNormToAffine`` are run on a one-node model holding the node
  alone (:func:`_apply_alone`): ``GemmToMatMul`` ends with ``RemoveIdentityOps`` over the whole
  graph, which drops any Add/Mul within 1e-5 of an identity (changing what the model computes),
  and ``BatchNormToAffine`` converts every batch-norm at once and fails on one whose parameters
  are not initializers.
* The nodes they produce are named after the node they replace (the MatMul of ``Gemm_0`` is
  ``Gemm_0``, its bias ``Gemm_0.bias``), and :func:`origin` maps each such name to the op the
  user's model has there, so layers and error messages still point at the user's nodes.

A node a rewrite does not match is left as it is; the lowering then reports what is wrong with it.
"""
from __future__ import annotations

import json

import numpy as np
from onnx import helper, numpy_helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation
from qonnx.transformation.batchnorm_to_affine import BatchNormToAffine
from qonnx.transformation.fold_constants import FoldConstantsFiltered
from qonnx.transformation.gemm_to_matmul import GemmToMatMul

from .errors import CompileError

QUANTIZERS = ("Quant", "BipolarQuant")
#: input slot of the weights of the matrix products and convolutions
WEIGHT_SLOT = {"MatMul": 1, "Gemm": 1, "Conv": 1}
#: model metadata key of the name -> original op type map (see :func:`origin`)
ORIGIN_KEY = "streamfold.origin"
#: model metadata key of the name -> why qonnx's transformation failed on it (see :func:`failures`)
FAILED_KEY = "streamfold.not_rewritten"


def origin(model) -> dict:
    """Node name -> op type of the node of the user's model that the rewrites replaced by it."""
    raw = model.get_metadata_prop(ORIGIN_KEY)
    return json.loads(raw) if raw else {}


def failures(model) -> dict:
    """Node name -> why qonnx's transformation failed on that node (which was left as it was)."""
    raw = model.get_metadata_prop(FAILED_KEY)
    return json.loads(raw) if raw else {}


def _record_failure(model, node, why: str) -> None:
    d = failures(model)
    d[node.name] = why
    model.set_metadata_prop(FAILED_KEY, json.dumps(d, sort_keys=True))


def _record_origin(model, names, op_type: str) -> None:
    d = origin(model)
    for n in names:
        d[n] = d.get(n, op_type)
    model.set_metadata_prop(ORIGIN_KEY, json.dumps(d, sort_keys=True))


def _int_attr(node, name: str, default: int) -> int:
    for a in node.attribute:
        if a.name == name:
            v = helper.get_attribute_value(a)
            return v if isinstance(v, int) and not isinstance(v, bool) else -1
    return default


def static_tensors(model) -> set:
    """Tensors computed from initializers alone (initializers included)."""
    static = {i.name for i in model.graph.initializer}
    for n in model.graph.node:  # nodes are in topological order
        ins = [i for i in n.input if i]
        if ins and all(i in static for i in ins):
            static.update(o for o in n.output if o)
    return static


def _feeds_weights(model, tensor: str, static: set, seen=None) -> bool:
    """True when ``tensor`` reaches the weight input of a matrix product or convolution through
    constant-only nodes."""
    seen = set() if seen is None else seen
    if tensor in seen:
        return False
    seen.add(tensor)
    for c in model.find_consumers(tensor):
        slot = WEIGHT_SLOT.get(c.op_type)
        if slot is not None and len(c.input) > slot and c.input[slot] == tensor:
            return True
        if any(o in static and _feeds_weights(model, o, static, seen) for o in c.output if o):
            return True
    return False


def _apply_alone(model, node, transformation, initializers=()) -> list:
    """Apply ``transformation`` to a model holding ``node`` alone and put what it made in place.

    The inputs named in ``initializers`` are given to it as initializers, every other input as a
    graph input (with the shape the model has). The nodes made are returned, in graph order; the
    new tensors are named ``<node>.t<k>``, so the result does not depend on qonnx's random names.
    When qonnx fails on the node, it is left as it was (the lowering reports what is wrong with it:
    often a broken node before it) and None is returned.
    """
    g = model.graph
    inputs, inits = [], []
    for name in dict.fromkeys(i for i in node.input if i):
        if name in initializers:
            inits.append(numpy_helper.from_array(model.get_initializer(name), name))
        else:
            inputs.append(helper.make_tensor_value_info(name, 1, model.get_tensor_shape(name)))
    outputs = [helper.make_tensor_value_info(o, 1, model.get_tensor_shape(o)) for o in node.output]
    one = helper.make_graph([helper.make_node(node.op_type, list(node.input), list(node.output),
                                              name=node.name, domain=node.domain)],
                            "one_node", inputs, outputs, initializer=inits)
    one.node[0].attribute.extend(node.attribute)
    sub = ModelWrapper(helper.make_model(one, opset_imports=list(model.model.opset_import)))
    try:
        sub = sub.transform(transformation)
    except Exception as e:  # qonnx asserts and raises many kinds
        msg = str(e).strip().splitlines()
        _record_failure(model, node, f"qonnx's {type(transformation).__name__} fails on it "
                                     f"({type(e).__name__}: {msg[0][:160] if msg else ''})")
        return None
    known = set(model.get_all_tensor_names())
    rename = {}
    for t in sub.get_all_tensor_names():
        if t not in known:
            rename[t] = f"{node.name}.t{len(rename)}"
    made = []
    for n in sub.graph.node:
        for seq in (n.input, n.output):
            for j, v in enumerate(seq):
                seq[j] = rename.get(v, v)
        made.append(n)
    for t in sub.graph.initializer:
        if t.name in rename:
            model.set_initializer(rename[t.name], numpy_helper.to_array(t))
    for vi in sub.graph.value_info:
        if vi.name in rename and sub.get_initializer(vi.name) is None:
            vi.name = rename[vi.name]
            g.value_info.append(vi)
    at = list(g.node).index(node)
    g.node.remove(node)
    for k, n in enumerate(made):
        g.node.insert(at + k, n)
    return [g.node[at + k] for k in range(len(made))]


class FoldQuantizedConstants(Transformation):
    """Matches every node whose inputs are all constant and that does not lead to the weights of
    a matrix product or convolution: quantizers of biases and per-channel parameters, and any op
    on their outputs (qonnx's clean-up folds everything else but keeps all quantizers).

    Produces their values as initializers, computed by qonnx (``FoldConstantsFiltered``: qonnx's
    own ops for the quantizers, onnxruntime for standard ops). Weight quantizers stay: the lowering
    reads the integer levels and scales from them.
    """

    def apply(self, model):
        static = static_tensors(model)
        todo = set()
        for n in model.graph.node:
            ins = [i for i in n.input if i]
            if ins and all(i in static for i in ins) and \
                    not any(_feeds_weights(model, o, static) for o in n.output if o):
                todo.add(n.name)
        if not todo:
            return model, False
        current = []

        def eligible(m, n):
            ok = n.name in todo
            if ok and all(m.get_initializer(i) is not None for i in n.input if i):
                current[:] = [n.name, n.op_type]
            return ok
        try:
            model = model.transform(FoldConstantsFiltered(eligible))
        except Exception as e:  # onnxruntime and qonnx raise many kinds; one line naming the node
            what = f"node {current[0]!r} ({current[1]})" if current else "a constant node"
            msg = str(e).strip().splitlines()
            raise CompileError(f"{what}: its constant inputs cannot be evaluated "
                               f"({type(e).__name__}: {msg[0][:160] if msg else ''}); check the "
                               "node's constants") from None
        return model, False  # one pass folds every chain (nodes are in topological order)


class GemmZeroBias(Transformation):
    """Matches a Gemm with no bias input C (the dynamo exporter's bias-free Linear), which
    qonnx's ``GemmToMatMul`` cannot take.

    Produces the same Gemm with a zero C of shape (1, N); :class:`GemmToMatMulNamed` then drops
    the Add of zeros again, leaving a plain MatMul.
    """

    def apply(self, model):
        for n in model.graph.node:
            if n.op_type != "Gemm" or (len(n.input) > 2 and n.input[2]) or len(n.input) < 2:
                continue
            w = model.get_tensor_shape(n.input[1])
            if w is None or len(w) != 2:
                continue
            cols = w[0] if _int_attr(n, "transB", 0) == 1 else w[1]
            name = f"{n.name}.zero_bias"
            model.set_initializer(name, np.zeros((1, int(cols)), dtype=np.float32))
            del n.input[2:]
            n.input.append(name)
        return model, False


class GemmBiasRow(Transformation):
    """Matches a Gemm whose bias C is a constant holding one value, or one value per output,
    in a shape other than (1, N).

    Produces the same Gemm with C broadcast to (1, N): one value per output channel of the
    accumulator, as the per-channel ops after a matrix product are.
    """

    def apply(self, model):
        for n in model.graph.node:
            if n.op_type != "Gemm" or len(n.input) < 3 or not n.input[2]:
                continue
            c = model.get_initializer(n.input[2])
            out = model.get_tensor_shape(n.output[0])
            if c is None or out is None or len(out) != 2 or c.size not in (1, out[1]) or \
                    c.shape == (1, out[1]) or c.dtype.kind not in "fiub":
                continue
            if c.dtype.kind != "f":
                c = c.astype(np.float64)
            name = f"{n.name}.bias_row"
            model.set_initializer(name, np.broadcast_to(c.reshape(1, -1), (1, out[1])).copy())
            n.input[2] = name
        return model, False


class GemmToMatMulNamed(Transformation):
    """Matches a Gemm the lowering can take: activation as the first, non-transposed input, a
    constant C of shape (1, N).

    Produces qonnx's ``GemmToMatMul`` of it, run on the Gemm alone: ``[Transpose B] -> MatMul
    [-> Mul alpha] -> Add C [x beta]`` (the Mul by 1 and the Add of zeros dropped). The MatMul
    keeps the Gemm's name; the others are ``<gemm>.transB``, ``.alpha``, ``.beta``, ``.bias``.
    """

    def apply(self, model):
        static, failed = static_tensors(model), failures(model)
        for n in model.graph.node:
            if n.op_type != "Gemm" or n.name in failed or len(n.input) != 3 or _int_attr(n, "transA", 0) != 0 or \
                    _int_attr(n, "transB", 0) not in (0, 1) or n.input[0] in static:
                continue
            c = model.get_initializer(n.input[2])
            out = model.get_tensor_shape(n.output[0])
            if c is None or out is None or len(out) != 2 or c.shape != (1, out[1]):
                continue
            gemm, bias, zero = n.name, n.input[2], not np.any(c)
            # an Add of zeros goes; any other bias stays (a graph input is never an identity)
            made = _apply_alone(model, n, GemmToMatMul(), initializers={bias} if zero else ())
            if made is None:
                return model, True  # recorded as failed: the next pass skips it
            for m in made:
                if m.op_type == "MatMul":
                    m.name = gemm
                elif m.op_type == "Transpose":
                    m.name = f"{gemm}.transB"
                elif m.op_type == "Add":
                    m.name = f"{gemm}.bias"
                elif m.op_type == "Mul":
                    m.name = f"{gemm}.beta" if m.input[0] == bias else f"{gemm}.alpha"
            _record_origin(model, [m.name for m in made], "Gemm")
            return model, True  # one Gemm per pass: qonnx's transform loop repeats
        return model, False


class BatchNormToMulAdd(Transformation):
    """Matches a BatchNormalization of an (N, C) or (N, C, H, W) tensor whose scale, bias, mean
    and variance are C finite constants each, with a finite affine form.

    Produces qonnx's ``BatchNormToAffine`` of it, run on the node alone: ``Mul(A) -> Add(B)``
    with A, B of shape (1, C[, 1, 1]), named ``<bn>`` and ``<bn>.bias``. Other batch-norms stay
    (the lowering evaluates them or says what is wrong).
    """

    def apply(self, model):
        failed = failures(model)
        for n in model.graph.node:
            if n.op_type != "BatchNormalization" or n.name in failed or len(n.input) != 5 or \
                    len(n.output) != 1:
                continue
            shape = model.get_tensor_shape(n.input[0])
            if shape is None or len(shape) not in (2, 4) or model.get_initializer(n.input[0]) is not None:
                continue
            params = [model.get_initializer(i) for i in n.input[1:]]
            eps = [a for a in n.attribute if a.name == "epsilon"]
            eps = helper.get_attribute_value(eps[0]) if eps else 1e-5
            if any(p is None or p.shape != (shape[1],) or p.dtype != np.float32 or
                   not np.all(np.isfinite(p)) for p in params) or not isinstance(eps, float):
                continue
            with np.errstate(all="ignore"):
                a = params[0] / np.sqrt(eps + params[3])
                b = params[1] - a * params[2]
            if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
                continue
            bn = n.name
            made = _apply_alone(model, n, BatchNormToAffine(), initializers=set(n.input[1:]))
            if made is None:
                return model, True  # recorded as failed: the next pass skips it
            for m in made:
                m.name = bn if m.op_type == "Mul" else f"{bn}.bias"
            _record_origin(model, [m.name for m in made], "BatchNormalization")
            return model, True
        return model, False


class OneDimAsTwoDim(Transformation):
    """Matches a model with 1-D convolutions or pools (``Conv``/``MaxPool``/``AveragePool`` with one
    kernel dimension on ``(N, C, L)`` tensors, as ``Conv1d`` exports them).

    Produces the same model in 2-D: every rank-3 tensor of the data path gets a height of 1
    (``(N, C, 1, L)``), kernels, strides, pads and dilations gain the height's trivial entry, the
    convolution weights (and per-channel weight scales) become ``(OC, IC, 1, K)``, constants that
    broadcast over the length gain the height axis, and a ``Reshape`` at the input (and back at a
    rank-3 output) keeps the model's interface. The lowering then sees an ordinary 2-D network.
    """

    SPATIAL = ("Conv", "MaxPool", "AveragePool")

    def apply(self, model):
        g = model.graph
        one_d = [n for n in g.node if n.op_type in self.SPATIAL and
                 (model.get_tensor_shape(n.input[0]) or []).__len__() == 3]
        if not one_d:
            return model, False
        rank3 = {t for n in g.node for t in list(n.input) + list(n.output)
                 if t and model.get_initializer(t) is None and len(model.get_tensor_shape(t) or []) == 3}
        inits = {i.name for i in g.initializer}

        def lift(name, at=-1):
            """Give the initializer ``name`` the height axis before position ``at``."""
            arr = model.get_initializer(name)
            if arr is not None and arr.ndim >= 2:
                shape = arr.shape[:at] + (1,) + arr.shape[at:] if at != -1 else \
                    arr.shape[:-1] + (1,) + arr.shape[-1:]
                model.set_initializer(name, arr.reshape(shape))

        for n in g.node:
            if n in one_d:
                for a in n.attribute:
                    if a.name in ("kernel_shape", "strides", "dilations") and len(a.ints) == 1:
                        a.ints[:] = [1, a.ints[0]]
                    elif a.name == "pads" and len(a.ints) == 2:
                        a.ints[:] = [0, a.ints[0], 0, a.ints[1]]
                if n.op_type == "Conv":
                    w = n.input[1]
                    p = model.find_producer(w)
                    if p is not None and p.op_type in QUANTIZERS:
                        for i in p.input[:3]:
                            arr = model.get_initializer(i) if i else None
                            if arr is not None and arr.ndim == 3:
                                model.set_initializer(i, arr.reshape(arr.shape[:2] + (1,) + arr.shape[2:]))
                    elif w in inits:
                        arr = model.get_initializer(w)
                        if arr.ndim == 3:
                            model.set_initializer(w, arr.reshape(arr.shape[:2] + (1,) + arr.shape[2:]))
                continue
            if any(i in rank3 for i in n.input):
                for i in n.input[1:] if n.op_type in QUANTIZERS else n.input:
                    if i in inits and i not in rank3:
                        lift(i)
        # the interface: reshape the input to 2-D, the output back to 1-D
        x = next((i for i in g.input if i.name not in inits), None)
        if x is not None and x.name in rank3:
            _, c, length = model.get_tensor_shape(x.name)
            shape = model.make_new_valueinfo_name()
            model.set_initializer(shape, np.array([-1, c, 1, length], dtype=np.int64))
            x2 = x.name + "_2d"
            for n in g.node:
                for k, i in enumerate(n.input):
                    if i == x.name:
                        n.input[k] = x2
            g.node.insert(0, helper.make_node("Reshape", [x.name, shape], [x2], name=f"{x.name}_as_2d"))
        for y in g.output:
            if y.name in rank3:
                _, c, length = model.get_tensor_shape(y.name)
                shape = model.make_new_valueinfo_name()
                model.set_initializer(shape, np.array([-1, c, length], dtype=np.int64))
                y2 = y.name + "_2d"
                for n in g.node:
                    for k, o in enumerate(n.output):
                        if o == y.name:
                            n.output[k] = y2
                g.node.append(helper.make_node("Reshape", [y2, shape], [y.name], name=f"{y.name}_as_1d"))
        keep = [v for v in g.value_info if v.name not in rank3]
        del g.value_info[:]
        g.value_info.extend(keep)
        from qonnx.transformation.infer_shapes import InferShapes
        model = model.transform(InferShapes())
        return model, False


#: the rewrites :func:`prepare` runs, in order
REWRITES = (OneDimAsTwoDim, FoldQuantizedConstants, GemmZeroBias, GemmBiasRow, GemmToMatMulNamed,
            FoldQuantizedConstants, BatchNormToMulAdd)


def prepare(model):
    """Return a copy of the cleaned ``model`` with every rewrite of :data:`REWRITES` applied."""
    for r in REWRITES:
        model = model.transform(r())
    return model

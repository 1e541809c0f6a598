"""A classifier that returns class indices: the top-k unit (kind ``topk``) after the last layer.

``select_labels(cm, k)`` appends a :class:`~streamfold.compiler.units.topk.TopKUnit` to a
compiled classifier, so the board streams out the indices of the ``k`` largest scores of each
frame (largest first, equal scores: the lower index first) instead of the scores. The host then
has nothing left to do on the output side: the model's float ending (the dequantisation
``values * mul + add`` and a Softmax, say) is dropped.

That is exact only where the float ending cannot change the order of the classes, so the hardware
ranks the integers the model would rank. The ending qualifies when

* ``mul`` is one positive number for every class and ``add`` one number for every class (a
  per-class scale or offset, such as a final batch-norm, reorders classes), and
* each host op keeps the order: a positive scalar factor, a scalar offset, a strictly increasing
  elementwise function (``Sigmoid``, ``Tanh``, ``Exp``), ``Softmax``/``LogSoftmax`` over the classes,
  or a reshape that keeps the vector.

Anything else is refused with the op and node that would reorder the classes. The indices are
compared against the stable ``argsort`` of qonnx's scores (``np.argsort(-y, kind="stable")``),
which ties the same way.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from .errors import CompileError
from .graph import DataflowGraph, Edge
from .model import CompiledModel, HostOutput
from .units.topk import MAX_TOPK, TopKUnit

#: host ops that keep the order of the classes whatever their (scalar) parameters
_INCREASING = {"Sigmoid", "Tanh", "Exp", "Softmax", "LogSoftmax", "Identity"}
_LAYOUT = {"Reshape", "Flatten", "Squeeze", "Unsqueeze"}


def _scalar(v) -> float | None:
    a = np.asarray(v, dtype=np.float64)
    return float(a.reshape(-1)[0]) if a.size and np.all(a == a.reshape(-1)[0]) else None


def _order_breaker(op) -> str | None:
    """Why the host op ``op`` may reorder the classes, or None when it cannot."""
    t = op.op_type
    if t in _INCREASING or t in _LAYOUT:
        return None
    consts = [a for a in op.inputs if a is not None]
    if t in ("Mul", "Div", "Add", "Sub") and len(consts) == 1:
        if t in ("Div", "Sub") and op.inputs[0] is not None:
            return "a constant minus or over the scores (order reversed)"
        c = _scalar(consts[0])
        if c is None:
            return "a per-class constant"
        if t in ("Mul", "Div") and c <= 0:
            return f"a factor of {c:g} (not positive)"
        return None
    return "an op not known to keep the order of its inputs"


def ranking_ending(host_out: HostOutput) -> str | None:
    """Why the model's float ending may rank classes differently from the integers, or None."""
    if _scalar(host_out.mul) is None or _scalar(host_out.mul) <= 0:
        return "the last layer's scores are dequantised with per-class (or non-positive) scales"
    if _scalar(host_out.add) is None:
        return "the last layer's scores are dequantised with per-class offsets (a bias or batch-norm " \
               "after the last product)"
    for op in host_out.ops:
        why = _order_breaker(op)
        if why:
            return f"host op {op.op_type} ({op.node or 'unnamed'}) applies {why}"
    return None


def select_labels(cm: CompiledModel, k: int) -> CompiledModel:
    """``cm`` with a top-``k`` unit after its last layer and the float ending dropped (module
    docstring). Call it on the unfolded pipeline, before folding."""
    out = cm.pipeline.out_stream
    if cm.tiling is not None:
        raise CompileError("--topk: a tiled build streams feature maps, not class scores; compile "
                           "without --strip-width/--line-buffer-budget")
    if len(out.shape) != 1:
        raise CompileError(f"--topk needs a classifier whose hardware output is one vector of class "
                           f"scores per frame; this model's is a {len(out.shape)}-D map of shape "
                           f"{tuple(out.shape)}: drop --topk")
    c = int(out.shape[0])
    if not 1 <= k <= min(c, MAX_TOPK):
        raise CompileError(f"--topk {k}: k must be between 1 and {min(c, MAX_TOPK)} (the model has "
                           f"{c} classes; the unit keeps at most {MAX_TOPK})")
    why = ranking_ending(cm.host_out)
    if why:
        raise CompileError(f"--topk: {why}, which can change which class is largest, so the "
                           "hardware cannot rank the integers in its place; drop --topk and rank "
                           "the float outputs on the host")
    last = cm.pipeline.output_edge
    name = "topk"
    taken = {u.name for u in cm.pipeline.units}
    while name in taken:
        name += "_"
    unit = TopKUnit(name, (c,), out.dtype, k=k, source="--topk")
    edges = [e for e in cm.pipeline.edges if e is not last]
    edges += [dataclasses.replace(last, dst=name, dst_port=0), Edge(name, None, 2, 0, 0)]
    host_out = HostOutput(np.ones(k, dtype=np.float32), np.zeros(k), [], "flat", exact=True, labels=True)
    return dataclasses.replace(cm, pipeline=DataflowGraph(cm.pipeline.units + [unit], edges=edges),
                               host_out=host_out, output_shape=(cm.output_shape[0], k))

"""Lower a cleaned QONNX graph to a pipeline of integer stream units.

First the graph is rewritten into the few shapes the walk takes (:mod:`.rewrites`: quantized
constants folded, Gemm -> MatMul + Add, batch-norm -> Mul + Add, with qonnx's transformations).
The walk then visits the nodes on the data path in topological order and keeps one of four
states for every tensor on it:

* ``_Float``: float values before the first quantizer. Ops here become host-side input steps.
* ``_Quantized``: integer levels times one per-tensor scale. This is what streams in hardware.
* ``_Accumulating``: the integer accumulator of a matrix product, with the model's per-channel
  float ops (scales, bias, batch-norm, ...) collected since. The next quantizer turns all of it
  into integer thresholds (:mod:`streamfold.compiler.thresholds`); the model's output turns it
  into a raw-accumulator unit plus host-side output steps.
* ``_Summing``: the integer sum of an Add of two quantized streams (exactly rescaled), with the
  per-channel float ops since: thresholds on the sum where a quantizer follows, the raw sum
  where a layer or the output does.

A tensor read by several nodes gets a fork unit (one output per reader); an Add or a Concat
of streams joins them. States carry the stream they live on (the unit and output port that
produce it), from which the graph's edges are drawn.

Every scale, bias and batch-norm between two matrix products therefore ends up in integers:
weights as integer levels, activations as per-channel thresholds.
"""
from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
from onnx import helper, numpy_helper
from qonnx.core.datatype import DataType as QonnxDataType
from qonnx.custom_op.registry import getCustomOp

from .errors import CompileError, StreamfoldError
from .ir import (BIPOLAR, AddUnit, ConcatUnit, DataflowGraph, DataType, DepthToSpaceUnit, Edge, ForkUnit,
                 GlobalSumPoolUnit, MatrixVectorUnit, MaxPoolUnit, SlidingWindowUnit, SumPoolUnit, ThresholdUnit,
                 UpsampleUnit, VectorVectorUnit)
from .units import apply_thresholds
from .model import CompiledModel, HostInput, HostOutput
from .load import _quiet_onnxruntime as quiet_onnxruntime
from .ops import EVALUABLE, NON_MONOTONE, OpCall, bipolar_int, quant_int, run_chain
from .rewrites import failures, origin, prepare, static_tensors
from .thresholds import thresholds_for

#: ops that only move data around (no arithmetic)
SHAPE_OPS = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dropout"}
#: per-channel float ops that fold into thresholds or host steps
CHANNEL_OPS = {"Mul", "Add", "Sub", "Div", "BatchNormalization", "Relu", "Clip", "Max", "Min",
               "Neg", "Identity", "Dropout"}
#: elementwise activations between two quantizers (thresholds where monotone, else a lookup table)
ACTIVATION_OPS = {"HardSwish", "HardSigmoid", "Sigmoid", "Tanh", "Erf"}
QUANTIZERS = {"Quant", "BipolarQuant"}
#: ops that map a quantized (or accumulated) value to new integer levels: the quantizers, and
#: qonnx's Trunc (Brevitas' TruncAvgPool2d: an average's exact truncation)
REQUANTIZERS = QUANTIZERS | {"Trunc"}
MATRIX_OPS = {"MatMul", "Gemm"}
#: the op-to-unit table: an op on quantized activations -> the Lowering method building its units
UNIT_BUILDERS = {
    "MatMul": "_matrix",              # MVAU; a Gemm arrives as MatMul [+ Mul alpha] + Add bias
    "Conv": "_conv",                  # [sliding window ->] MVAU, or sliding window -> VVAU
    "MaxPool": "_maxpool",            # max-pool unit
    "GlobalAveragePool": "_global_avg",  # global sum-pool unit (1/(H*W) goes into the scale)
    "AveragePool": "_avg_pool",       # sum-pool unit (1/(kh*kw) into the scale); whole map: global
    "Pad": "_pad",                    # no unit: merged into the next Conv's sliding window
    "Gemm": "_gemm_left",             # a Gemm the rewrites could not turn into MatMul: why
}
#: every op the compiler accepts somewhere on the data path (extended by later unit kinds)
CONV_OPS = {"Conv", "MaxPool", "GlobalAveragePool", "Pad"}
#: ops that move elements between pixels and channels (sub-pixel and upsampling outputs)
REORDER_OPS = {"DepthToSpace", "Resize", "Upsample"}
#: ops that join data paths (two or more dynamic inputs)
JOIN_OPS = {"Add", "Concat"}
SUPPORTED_OPS = sorted(SHAPE_OPS | CHANNEL_OPS | ACTIVATION_OPS | REQUANTIZERS | MATRIX_OPS | CONV_OPS | JOIN_OPS |
                       REORDER_OPS | {"Transpose", "AveragePool"})
#: largest integer multiplier an Add may rescale one input by (scales with a ratio p/q, p, q <= this)
MAX_RESCALE = 16
#: widest stream element (inputs, weights, activations) the hardware takes
MAX_BITS = 16
#: widest activation a matrix product's thresholds produce (2**bits - 1 comparators per channel)
MAX_THRESHOLD_BITS = 8
#: widest input a lookup-table activation takes (a table of 2**bits entries)
MAX_LOOKUP_BITS = 10
#: qonnx's Quant rounding modes (qonnx.custom_op.general.intquant.resolve_rounding_mode)
ROUNDING_MODES = ("ROUND", "HALF_EVEN", "CEIL", "FLOOR", "UP", "DOWN", "HALF_UP", "HALF_DOWN")


#: where a stream comes from: (unit name, output port); (None, 0) is the graph's input
Source = tuple


@dataclass
class _Float:
    ops: list = field(default_factory=list)


@dataclass
class _Quantized:
    dtype: DataType
    scale: float | np.ndarray  # per tensor, or per channel (C,)
    shape: tuple            # the model's shape of this tensor (batch first)
    tail: list = field(default_factory=list)  # float ops after the last quantizer (host side)
    nchw_flatten: tuple | None = None  # (C, H, W) when an NCHW tensor was flattened to (N, C*H*W)
    pad: tuple | None = None  # ((top, left, bottom, right), level) of a Pad waiting for its Conv
    src: Source = (None, 0)  # the stream holding the levels
    scale_from: str = ""  # the quantizer that set the scale (named when a per-channel one is refused)


@dataclass
class _Accumulating:
    name: str
    source: str
    weights: np.ndarray          # (MH, MW) integer levels
    weight_dtype: DataType
    in_dtype: DataType
    rows_shape: tuple
    pre_scale: np.ndarray        # (MH,) float: model value of the matrix product = acc * pre_scale
    shape: tuple                 # the model's shape of the product (batch first)
    chain: list = field(default_factory=list)
    kind: type = MatrixVectorUnit
    src: Source = (None, 0)  # the stream the matrix product will read
    reorder: list = field(default_factory=list)  # a host-side reorder ending the model (after the quantizer)


@dataclass
class _Summing:
    """``value = scale * (a_mul * a + b_mul * b)`` of two quantized streams, then ``chain``; with
    one stream, ``value = scale * a``: levels on their way to another quantizer (thresholds) or
    to the output (host steps)."""

    name: str | None             # the add's unit name (None: one stream)
    source: str                  # the Add node
    srcs: tuple                  # the two input streams
    dtypes: tuple                # their datatypes
    muls: tuple                  # (a_mul, b_mul)
    scale: float
    shape: tuple                 # the model's shape (batch first)
    chain: list = field(default_factory=list)


def _per_channel(scale, c: int) -> np.ndarray:
    """A per-tensor or per-channel scale as ``(c,)`` float64."""
    return np.broadcast_to(np.asarray(scale, dtype=np.float64).reshape(-1), (c,)).copy()


def _fmt(scale) -> str:
    s = np.asarray(scale).reshape(-1)
    return f"{s[0]:.6g}" if s.size == 1 else f"per channel {s[0]:.4g}..{s[-1]:.4g}"


def ir_dtype(qdt: QonnxDataType, narrow: bool = False) -> DataType:
    """The IR's datatype for a qonnx integer datatype (``narrow``: QONNX's ``narrow=1`` range,
    which qonnx's DataType does not carry)."""
    if qdt == QonnxDataType["BIPOLAR"]:
        return BIPOLAR
    if not qdt.is_integer():
        raise ValueError(f"{qdt.name} is not an integer datatype")
    return DataType(qdt.bitwidth(), qdt.signed(), narrow=narrow)


def _attrs(node) -> dict:
    out = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        out[a.name] = v.decode(errors="replace") if isinstance(v, bytes) else v
    return out


class Lowering:
    """One lowering of one cleaned model (a qonnx ModelWrapper)."""

    def __init__(self, model, source: str = "model"):
        self.source = source
        try:
            with np.errstate(all="ignore"), warnings.catch_warnings(), quiet_onnxruntime():
                warnings.simplefilter("ignore")  # qonnx's notes would be extra lines on the CLI
                model = prepare(model)
        except StreamfoldError:
            raise
        except Exception as e:  # qonnx raises many kinds; the user needs one line
            msg = str(e).strip().splitlines()
            raise CompileError(f"{source}: qonnx could not rewrite the model ({type(e).__name__}: "
                               f"{msg[0][:160] if msg else ''})") from None
        self.model = model
        g = model.graph
        self.consts: dict[str, np.ndarray] = {i.name: numpy_helper.to_array(i) for i in g.initializer}
        #: tensors computed from initializers alone: the consts and the weights' quantizer outputs
        self.static = static_tensors(model)
        #: node name -> the op of the user's model it stands for (see rewrites.origin)
        self.origin = origin(model)
        self.units: list = []
        self.counters: dict[str, int] = {}
        inits = set(self.consts)
        self.input = next(i for i in g.input if i.name not in inits)
        self.output = g.output[0]

    # -- constants ------------------------------------------------------------------------------
    def _op(self, node) -> str:
        """The op type the user's model has at ``node`` (a rewrite may have replaced it)."""
        return self.origin.get(node.name, node.op_type)

    def _const(self, node, name: str, what: str) -> np.ndarray:
        if name not in self.consts:
            if name in self.static:
                raise CompileError(f"node {node.name!r} ({self._op(node)}): its {what} ({name!r}) is "
                                   "a quantized weight; give it a constant of its own")
            raise CompileError(f"node {node.name!r} ({self._op(node)}): its {what} ({name!r}) is not "
                               "a constant; only one dynamic input per node is supported")
        return self.consts[name]

    def _shape(self, tensor: str) -> tuple:
        s = self.model.get_tensor_shape(tensor)
        if s is None:
            raise CompileError(f"tensor {tensor!r} has no inferred shape; export with a fixed input shape")
        return tuple(int(d) for d in s)

    def _name(self, prefix: str) -> str:
        k = self.counters.get(prefix, 0)
        self.counters[prefix] = k + 1
        return f"{prefix}{k}"

    # -- quantizer parameters ---------------------------------------------------------------------
    def _bit_width(self, node, what: str) -> int:
        """The bit width input of a Quant node: a whole number in [1, MAX_BITS]."""
        if len(node.input) < 4 or not node.input[3]:
            raise CompileError(f"node {node.name!r} (Quant): needs 4 inputs (x, scale, zero point, "
                               f"bit width), has {len(node.input)}")
        raw = np.asarray(self._const(node, node.input[3], "bit width"))
        if raw.size != 1 or raw.dtype.kind != "f":
            # QONNX's bit width is float32; qonnx computes 2**bits in the tensor's own type, which
            # overflows for small integer types: the model would not mean what it says
            raise CompileError(f"node {node.name!r} (Quant): bit width must be one float32 number, "
                               f"got {raw.dtype} of shape {raw.shape}")
        b = float(raw.reshape(-1)[0])
        if not np.isfinite(b) or b != round(b) or b < 1:
            raise CompileError(f"node {node.name!r} (Quant): bit width {b:g} is not a whole number "
                               "of at least 1")
        if b > MAX_BITS:
            raise CompileError(f"node {node.name!r} (Quant): {b:.0f}-bit {what} exceed the "
                               f"{MAX_BITS}-bit limit of the hardware; quantize to {MAX_BITS} bits "
                               "or fewer")
        return int(b)

    def _scale(self, node, what: str, positive: bool) -> np.ndarray:
        """The scale input of a quantizer: finite, non-zero (and positive for activations)."""
        if len(node.input) < 2 or not node.input[1]:
            raise CompileError(f"node {node.name!r} ({self._op(node)}): has no scale input")
        s = np.asarray(self._const(node, node.input[1], "scale"))
        if s.dtype.kind not in "fiu" or s.size == 0:
            raise CompileError(f"node {node.name!r} ({self._op(node)}): {what} scale must be numbers, "
                               f"got {s.dtype} of shape {s.shape}")
        s = s.astype(np.float64)
        bad = ~np.isfinite(s) | (s <= 0 if positive else s == 0)
        if np.any(bad):
            raise CompileError(f"node {node.name!r} ({self._op(node)}): {what} scale "
                               f"{s.reshape(-1)[np.argmax(bad.reshape(-1))]:g} is not "
                               f"{'a positive' if positive else 'a non-zero'} finite number")
        return s

    def _broadcast(self, node, scale: np.ndarray, shape: tuple) -> np.ndarray:
        try:
            return np.broadcast_to(scale, shape)
        except ValueError:
            raise CompileError(f"node {node.name!r} ({self._op(node)}): scale of shape {scale.shape} "
                               f"does not broadcast to the weights' shape {tuple(shape)}") from None

    def _zero_point(self, node, what: str) -> np.ndarray:
        if len(node.input) < 3 or not node.input[2]:
            raise CompileError(f"node {node.name!r} (Quant): has no zero point input")
        zp = np.asarray(self._const(node, node.input[2], "zero point"))
        if zp.size != 1 or zp.dtype.kind not in "fiu" or float(zp.reshape(-1)[0]) != 0:
            raise CompileError(f"node {node.name!r} (Quant): {what} zero point must be 0 (one number), "
                               f"got {zp.reshape(-1)[:4].tolist()} of shape {zp.shape}")
        return zp

    def _ints(self, node, a: dict, name: str, n: int, default=None, low: int = 0) -> tuple:
        """Attribute ``name``: ``n`` integers, each at least ``low``."""
        v = a.get(name, default)
        if v is None:
            raise CompileError(f"node {node.name!r} ({self._op(node)}): needs attribute {name}")
        if isinstance(v, int) and not isinstance(v, bool):
            v = [v]
        if not isinstance(v, (list, tuple)) or len(v) != n or \
                not all(isinstance(x, int) and not isinstance(x, bool) and x >= low for x in v):
            raise CompileError(f"node {node.name!r} ({self._op(node)}): attribute {name}={v!r}; expected "
                               f"{n} integer{'s' if n > 1 else ''} of at least {low}")
        return tuple(int(x) for x in v)

    def _input(self, node, i: int, what: str) -> str:
        if len(node.input) <= i or not node.input[i]:
            raise CompileError(f"node {node.name!r} ({self._op(node)}): has no {what} (input {i})")
        return node.input[i]

    def _flag(self, node, name: str, default: int) -> int:
        v = _attrs(node).get(name, default)
        if not isinstance(v, int) or isinstance(v, bool) or v not in (0, 1):
            raise CompileError(f"node {node.name!r} ({self._op(node)}): attribute {name}={v!r}; expected "
                               "0 or 1")
        return v

    def _rounding_mode(self, node) -> None:
        mode = str(_attrs(node).get("rounding_mode", "ROUND"))
        if mode.upper() not in ROUNDING_MODES:
            raise CompileError(f"node {node.name!r} (Quant): unknown rounding_mode {mode!r}; "
                               f"one of {', '.join(ROUNDING_MODES)}")

    def _quant_dtype(self, node, narrow: bool = False) -> DataType:
        """The integer datatype of a (checked) quantizer as qonnx reads it, in the IR's terms."""
        try:
            qdt = getCustomOp(node).get_integer_datatype(self.model)
            return ir_dtype(qdt, narrow=narrow and qdt != QonnxDataType["BIPOLAR"])
        except Exception as e:  # qonnx raises many kinds; the user needs one line
            raise CompileError(f"node {node.name!r} ({node.op_type}): qonnx cannot read its integer "
                               f"datatype ({type(e).__name__}: {str(e)[:120]})") from None

    # -- weights --------------------------------------------------------------------------------
    def quantized_weight(self, node, tensor: str) -> tuple[np.ndarray, np.ndarray, DataType]:
        """Follow ``tensor`` back to a quantized initializer.

        Returns integer levels and the per-element scale (both in the orientation ``tensor`` has)
        and the levels' datatype.
        """
        perm_chain = []
        t = tensor
        while True:
            p = self.model.find_producer(t)
            if p is None:
                raise CompileError(
                    f"node {node.name!r} ({self._op(node)}): weights {tensor!r} are float, not quantized; "
                    "quantize them (Brevitas QuantLinear/QuantConv2d export a Quant node)")
            if p.op_type == "Transpose":
                perm_chain.append(_attrs(p).get("perm"))
                t = p.input[0]
                continue
            if p.op_type == "Identity":
                t = p.input[0]
                continue
            if p.op_type not in QUANTIZERS:
                raise CompileError(f"node {node.name!r} ({self._op(node)}): weights come from node "
                                   f"{p.name!r} ({p.op_type}); expected a Quant or BipolarQuant of "
                                   "an initializer")
            break
        w = np.asarray(self._const(p, p.input[0], "weight initializer"))
        if w.dtype.kind not in "fiu" or w.size == 0 or not np.all(np.isfinite(w)):
            raise CompileError(f"node {p.name!r} ({p.op_type}): weight initializer {p.input[0]!r} "
                               f"({w.dtype}, shape {w.shape}) must hold finite numbers")
        a = _attrs(p)
        if p.op_type == "BipolarQuant":
            levels = bipolar_int(w)
            scale_c = self._scale(p, "weight", positive=False)
            scale = self._broadcast(p, scale_c, w.shape)
            dtype = self._quant_dtype(p)
        else:
            scale_c = self._scale(p, "weight", positive=False)
            zp = self._zero_point(p, "weight")
            bits = self._bit_width(p, "weights")
            self._rounding_mode(p)
            signed, narrow = self._flag(p, "signed", 1), self._flag(p, "narrow", 0)
            scale = self._broadcast(p, scale_c, w.shape)
            if bits == 1 and signed:
                levels = bipolar_int(w)
            else:
                levels = quant_int(w, scale_c, zp, bits, signed, narrow, a.get("rounding_mode", "ROUND"))
            dtype = self._quant_dtype(p, narrow=bool(narrow and signed))
        for perm in reversed(perm_chain):
            levels = np.transpose(levels, perm)
            scale = np.transpose(scale, perm)
        return levels.astype(np.int64), np.asarray(scale), dtype

    # -- the walk -------------------------------------------------------------------------------
    def run(self) -> CompiledModel:
        self.host_in: HostInput | None = None
        self.in_shape = self._shape(self.input.name)
        self.edges: list[Edge] = []
        #: tensor -> the states its readers take, in reading order (one per reader: a fork's ports)
        self.values: dict[str, list] = {}
        self._put(self.input.name, _Float())
        for node in self._data_nodes():
            dyn = [i for i in node.input if i and i not in self.static]
            if not node.output or not node.output[0]:
                raise CompileError(f"node {node.name!r} ({self._op(node)}) has no output")
            if len(dyn) == 1:
                state = self.step(node, self._take(dyn[0]), dyn[0])
            else:
                state = self.join(node, [self._take(t) for t in dyn], dyn)
            self._put(node.output[0], state)
        return self._finish(self._take(self.output.name))

    def _data_nodes(self) -> list:
        """The nodes on the data path (reading the input, directly or not), in topological order."""
        dynamic = {self.input.name}
        todo = [n for n in self.model.graph.node if any(i and i not in self.static for i in n.input)]
        out = []
        while todo:
            ready = [n for n in todo if all(not i or i in self.static or i in dynamic for i in n.input)]
            if not ready:
                n = todo[0]
                missing = next(i for i in n.input if i and i not in self.static and i not in dynamic)
                raise CompileError(f"node {n.name!r} ({self._op(n)}) reads tensor {missing!r}, which "
                                   "no node computes from the model's input (a second model input, or "
                                   "a cycle); streamfold compiles one-input models")
            for n in ready:
                out.append(n)
                dynamic.update(o for o in n.output if o)
            todo = [n for n in todo if n not in ready]
        return out

    def _readers(self, t: str) -> int:
        """How many times ``t`` is read on the data path (the output counts as a reader)."""
        n = sum(1 for node in self.model.find_consumers(t) or [] for i in node.input if i == t)
        return n + (t == self.output.name)

    def _put(self, t: str, state) -> None:
        """Record ``state`` as tensor ``t``'s: one copy per reader, through a fork if several."""
        n = self._readers(t)
        if n == 0:
            raise CompileError(f"tensor {t!r} leads nowhere (no consumer, not the output)")
        if n == 1:
            self.values[t] = [state]
            return
        readers = [repr(node.name) for node in self.model.find_consumers(t) or []]
        if t == self.output.name:
            readers.append("the model's output")
        where = f"tensor {t!r} is read by {n} ({', '.join(readers)})"
        if isinstance(state, _Summing) and not state.chain:
            state = self._raw_sum(state)
        if isinstance(state, _Float):
            raise CompileError(f"{where} before the input quantizer; the host-side input steps "
                               "cannot branch: quantize the input first")
        if isinstance(state, (_Accumulating, _Summing)):
            raise CompileError(f"{where}, between {state.source!r} and a quantizer: only quantized "
                               "tensors can feed several layers; put the quantizer before the branch")
        if state.tail:
            raise CompileError(f"{where} after the float output steps ({state.tail[0].node!r}); "
                               "branches must stay on quantized tensors")
        if state.pad is not None:
            raise CompileError(f"{where} after a Pad; pad each branch's Conv on its own")
        fork = ForkUnit(self._name("fork"), self._stream_shape(state.src), state.dtype, n, 1, t)
        self._emit(fork, state.src)
        copies = []
        for port in range(n):
            c = copy.deepcopy(state)
            c.src = (fork.name, port)
            copies.append(c)
        self.values[t] = copies

    def _take(self, t: str):
        if t not in self.values or not self.values[t]:
            raise CompileError(f"tensor {t!r} is read before it is computed")  # pragma: no cover
        return self.values[t].pop(0)

    def _emit(self, unit, *srcs: Source) -> Source:
        """Append ``unit`` to the graph, fed by the streams ``srcs`` (its input ports in order)."""
        self.units.append(unit)
        for port, (src, src_port) in enumerate(srcs):
            self.edges.append(Edge(src, unit.name, 2, src_port, port))
        return (unit.name, 0)

    def _stream_shape(self, src: Source) -> tuple:
        """The frame shape of the stream ``src`` as the hardware carries it (channels last)."""
        name, port = src
        if name is None:
            s = self.in_shape
            return (s[2], s[3], s[1]) if len(s) == 4 else tuple(s[1:])
        unit = next(u for u in self.units if u.name == name)
        return tuple(unit.output_streams()[port].shape)

    def step(self, node, state, t: str):
        op = node.op_type
        kind = type(state).__name__.strip("_").lower()
        handler = getattr(self, f"on_{kind}_{op}", None)
        if handler is None:
            handler = getattr(self, f"on_{kind}", None)
        if op in REQUANTIZERS or op in CHANNEL_OPS or op in ACTIVATION_OPS:
            shape_in, shape_out = self._shape(t), self._shape(node.output[0])
            consts = [np.shape(self.consts[i]) for i in node.input if i and i != t and i in self.consts]
            try:
                grown = op != "BatchNormalization" and \
                    np.broadcast_shapes(shape_in, *consts) != shape_in  # (BN's are (C,) on axis 1)
            except ValueError:
                grown = True
            if grown:
                raise CompileError(
                    f"node {node.name!r} ({self._op(node)}): a constant of shape "
                    f"{next((c for c in consts if c != () and c != shape_in), consts)} does not act per channel on "
                    f"its input of shape {shape_in}; only scalar or per-channel constants are supported")
            if op in CHANNEL_OPS and op not in ("Clip", "Max", "Min"):
                for i in node.input:
                    c = self.consts.get(i) if i != t else None
                    if c is not None and np.asarray(c).dtype.kind == "f" and \
                            not np.all(np.isfinite(c)):
                        raise CompileError(
                            f"node {node.name!r} ({self._op(node)}): constant {i!r} holds "
                            f"{np.asarray(c).reshape(-1)[~np.isfinite(np.asarray(c).reshape(-1))][0]}; "
                            "arithmetic on inf or NaN has no single meaning (onnxruntime and NumPy "
                            "disagree): use finite constants")
            if shape_in != shape_out:
                raise CompileError(
                    f"node {node.name!r} ({self._op(node)}): the model gives its output shape {shape_out} but its "
                    f"input has shape {shape_in}; elementwise ops keep the shape (are the model's "
                    "shape annotations stale? re-export it)")
        return handler(node, state, t)

    def _call(self, node, t: str) -> OpCall:
        return OpCall(node.op_type, [None if i == t else self._const(node, i, "input") if i else None
                                     for i in node.input], _attrs(node), node.name)

    def unsupported(self, node, where: str):
        raise CompileError(f"node {node.name!r}: op {self._op(node)} is not supported {where}; "
                           f"supported ops: {', '.join(self.supported_ops())}")

    def supported_ops(self) -> list[str]:
        return SUPPORTED_OPS

    # float input part -> host steps
    def on_float(self, node, state: _Float, t: str):
        op = node.op_type
        if op in QUANTIZERS:
            return self._input_quantizer(node, state, t)
        if op in MATRIX_OPS or op in ("Conv",):
            raise CompileError(
                f"node {node.name!r} ({self._op(node)}) takes float activations: the model has no quantizer "
                "before it. streamfold compiles quantized models (QONNX Quant/BipolarQuant nodes); "
                "quantize the input, e.g. with a Brevitas QuantIdentity")
        if op in EVALUABLE:
            state.ops.append(self._call(node, t))
            return state
        self.unsupported(node, "before the input quantizer")

    def _input_quantizer(self, node, state: _Float, t: str):
        call = self._call(node, t)
        dtype, scale = self._quantizer_type(node)
        self.host_in = HostInput(state.ops, call, "flat")
        shape = self._shape(node.output[0])
        if len(shape) == 4:
            self.host_in.layout = "nchw"
        elif len(shape) != 2:
            raise CompileError(f"node {node.name!r}: quantized input of rank {len(shape)}; "
                               "expected (N, features) or (N, C, H, W)")
        return _Quantized(dtype, scale, shape, scale_from=node.name)

    def _quantizer_type(self, node) -> tuple[DataType, float]:
        """Datatype and per-tensor scale of an activation quantizer (or a Trunc)."""
        if node.op_type == "Trunc":
            return self._trunc_type(node)
        scale = self._scale(node, "activation", positive=True)
        if scale.size != 1:
            scale = self._channel_scale(node, scale)
        else:
            scale = float(scale.reshape(-1)[0])
        if node.op_type == "BipolarQuant":
            return self._quant_dtype(node), scale
        self._zero_point(node, "activation")
        self._bit_width(node, "activations")  # checked here, read by qonnx in _quant_dtype
        self._rounding_mode(node)
        signed, narrow = bool(self._flag(node, "signed", 1)), bool(self._flag(node, "narrow", 0))
        if narrow and not signed:
            raise CompileError(f"node {node.name!r} (Quant): unsigned narrow-range activations are "
                               "not supported")
        return self._quant_dtype(node, narrow=narrow), scale

    def _channel_scale(self, node, scale: np.ndarray) -> np.ndarray:
        """A per-channel activation scale: one value per channel on axis 1 (shape ``(1, C, 1, 1)``,
        ``(C, 1, 1)``, ``(1, C)`` ...), as a ``(C,)`` array."""
        out = self._shape(node.output[0])
        c = out[1] if len(out) >= 2 else 0
        probe = (1, c) + (1,) * (len(out) - 2)
        try:
            ok = scale.size == c and np.broadcast_shapes(scale.shape, probe) == probe
        except ValueError:
            ok = False
        if not ok:
            raise CompileError(f"node {node.name!r} ({self._op(node)}): activation scale of shape "
                               f"{scale.shape} is neither per-tensor nor per-channel for its output of "
                               f"shape {out}")
        return scale.reshape(-1).astype(np.float64)

    def _tensor_scale(self, node, state: _Quantized, what: str) -> float:
        """The one scale of ``state`` that a channel-mixing layer at ``node`` needs."""
        s = np.asarray(state.scale, dtype=np.float64).reshape(-1)
        if s.size > 1 and np.any(s != s[0]):
            raise CompileError(
                f"node {node.name!r} ({self._op(node)}): its input {what} has per-channel activation "
                f"scales (from quantizer {state.scale_from!r}), which a {self._op(node)} mixing the "
                "channels cannot fold into integer weights; use a per-tensor activation quantizer "
                "there (Brevitas: scaling_per_output_channel=False)")
        return float(s[0])

    def _trunc_type(self, node) -> tuple[DataType, float]:
        """Datatype and scale of a qonnx Trunc (version 2: x, scale, zero point, input bit width,
        output scale, output bit width)."""
        if len(node.input) != 6:
            raise CompileError(f"node {node.name!r} (Trunc): has {len(node.input)} inputs; streamfold "
                               "reads qonnx's Trunc version 2 (x, scale, zero point, input bits, output "
                               "scale, output bits), as Brevitas exports it")
        zp = np.asarray(self._const(node, node.input[2], "zero point"))
        if np.any(zp != 0):
            raise CompileError(f"node {node.name!r} (Trunc): zero point must be 0")
        out_scale = np.asarray(self._const(node, node.input[4], "output scale"), dtype=np.float64)
        if out_scale.size != 1 or not np.all(np.isfinite(out_scale)) or np.any(out_scale <= 0):
            raise CompileError(f"node {node.name!r} (Trunc): output scale must be one positive number")
        bits = np.asarray(self._const(node, node.input[5], "output bit width")).reshape(-1)
        if bits.size != 1 or bits[0] != round(float(bits[0])) or not 1 <= bits[0] <= MAX_BITS:
            raise CompileError(f"node {node.name!r} (Trunc): output bit width {bits.tolist()} is not a "
                               f"whole number in 1..{MAX_BITS}")
        signed, narrow = bool(self._flag(node, "signed", 1)), bool(self._flag(node, "narrow", 0))
        return DataType(int(bits[0]), signed, narrow=narrow and signed), float(out_scale.reshape(-1)[0])

    # quantized tensors
    def on_quantized(self, node, state: _Quantized, t: str):
        op = node.op_type
        if state.tail:
            if op in CHANNEL_OPS or op in ACTIVATION_OPS or op in SHAPE_OPS or op in REQUANTIZERS or \
                    op in REORDER_OPS:
                state.tail.append(self._call(node, t))
                return state
            self.unsupported(node, "after the float output steps")
        if op in REORDER_OPS:
            return self._reorder(node, state, t)
        if op in SHAPE_OPS:
            out = self._shape(node.output[0])
            if len(state.shape) == 4 and len(out) == 2:
                state.nchw_flatten = tuple(state.shape[1:])
            state.shape = out
            return state
        if op in REQUANTIZERS:
            return self._requantize(node, state, t)
        if op in CHANNEL_OPS or op in ACTIVATION_OPS:
            if state.pad is not None or state.nchw_flatten is not None:
                state.tail.append(self._call(node, t))
                return state
            # per-channel ops on levels: thresholds if a quantizer follows, host steps at the output
            return self.step(node, self._levels(state), t)
        if state.pad is not None and op != "Conv":
            raise CompileError(f"node {node.name!r} ({self._op(node)}) follows a Pad; only a Conv may "
                               "follow a Pad")
        if op in UNIT_BUILDERS:
            return getattr(self, UNIT_BUILDERS[op])(node, state, t)
        self.unsupported(node, "on quantized activations")

    def _levels(self, st: _Quantized) -> "_Summing":
        """The levels of ``st`` as the start of a chain of per-channel ops (a one-input sum)."""
        return _Summing(None, "", (st.src,), (st.dtype,), (1,), st.scale, tuple(st.shape))

    def _host_only_after(self, node) -> bool:
        """Whether everything from ``node`` to the model's output is elementwise, a quantizer, a
        reshape or a reorder on one path (so it can run on the host, exactly, after the stream)."""
        t = node.output[0]
        host = CHANNEL_OPS | SHAPE_OPS | REQUANTIZERS | REORDER_OPS
        while t != self.output.name:
            users = self.model.find_consumers(t) or []
            if len(users) != 1 or users[0].op_type not in host:
                return False
            t = users[0].output[0]
        return True

    def _reorder(self, node, state: _Quantized, t: str):
        """DepthToSpace / nearest Resize: at the end of the model a host-side reorder (exact; the
        quantizers after it run there too), else a stream unit."""
        if len(state.shape) != 4:
            raise CompileError(f"node {node.name!r} ({self._op(node)}): expected an (N, C, H, W) input")
        call = self._call(node, t)
        try:
            y = call(np.zeros(state.shape, dtype=np.float32))
        except CompileError:
            raise
        except Exception as e:  # pragma: no cover - evaluate wraps the usual ones
            raise CompileError(f"node {node.name!r} ({self._op(node)}): {e}") from None
        if tuple(y.shape) != self._shape(node.output[0]):
            raise CompileError(f"node {node.name!r} ({self._op(node)}): gives {y.shape}, the model says "
                               f"{self._shape(node.output[0])}")
        if self._host_only_after(node):
            state.tail.append(call)
            return state
        return self._reorder_unit(node, state, t)

    def _reorder_unit(self, node, state: _Quantized, t: str):
        """A reorder inside the network: a depth-to-space or upsample stream unit."""
        if state.pad is not None or state.tail:
            raise CompileError(f"node {node.name!r} ({self._op(node)}) follows a Pad or float steps")
        _, c, h, w = state.shape
        a = _attrs(node)
        if node.op_type == "DepthToSpace":
            mode = str(a.get("mode", "DCR")).upper()
            if mode not in ("DCR", "CRD"):
                raise CompileError(f"node {node.name!r} (DepthToSpace): unknown mode {mode!r}")
            unit = DepthToSpaceUnit(self._name("d2s"), (h, w, c), state.dtype, int(a["blocksize"]), mode,
                                    1, node.name)
        else:
            from .ops import resize_scales
            args = [None] + [self.consts.get(i) if i else None for i in node.input[1:]]
            try:
                f = resize_scales(args, a, node.op_type, state.shape)
            except ValueError as e:
                raise CompileError(f"node {node.name!r} ({self._op(node)}): {e}") from None
            if f[:2] != (1, 1):
                raise CompileError(f"node {node.name!r} ({self._op(node)}): resizes the batch or channel "
                                   "axis; only height and width are supported")
            unit = UpsampleUnit(self._name("up"), (h, w, c), state.dtype, (f[2], f[3]), 1, node.name)
        state.src = self._emit(unit, state.src)
        state.shape = self._shape(node.output[0])
        return state

    def _requantize(self, node, state: _Quantized, t: str):
        dtype, scale = self._quantizer_type(node)
        levels = np.arange(state.dtype.min, state.dtype.max + 1)
        if state.dtype.bipolar:
            levels = np.array([-1, 1])
        c = state.shape[1] if len(state.shape) >= 2 else 1
        probe = (-1, c) + (1,) * (len(state.shape) - 2)
        x = (levels[:, None] * np.broadcast_to(state.scale, (c,))[None, :]).reshape(probe)
        call = OpCall(node.op_type, [None] + [self.consts.get(i) for i in node.input[1:]], _attrs(node))
        y = np.broadcast_to(call(x.astype(np.float64)), x.shape)
        tol = 1e-12 * max(1.0, float(np.max(np.abs(state.scale))))
        if np.allclose(y, x, rtol=0, atol=tol) and dtype.contains(levels):
            return state  # the quantizer is an identity on these levels (e.g. after max-pool)
        return self.on_summing(node, self._levels(state), t)

    def _matrix(self, node, state: _Quantized, t: str):
        """MatMul (a Gemm arrives as MatMul -> [Mul alpha] -> Add bias: rewrites.GemmToMatMulNamed)."""
        if len(state.shape) != 2:
            raise CompileError(f"node {node.name!r} ({self._op(node)}): input of rank {len(state.shape)}; "
                               "flatten it to (N, features) first")
        if node.input[0] != t:
            raise CompileError(f"node {node.name!r} ({self._op(node)}): the activation must be the "
                               "first input")
        levels, scale, wdt = self.quantized_weight(node, self._input(node, 1, "weights"))  # (MW, MH)
        if levels.ndim != 2:
            raise CompileError(f"node {node.name!r} ({self._op(node)}): weights of shape {levels.shape}; "
                               "expected a matrix")
        mw, mh = levels.shape
        out_shape = self._shape(node.output[0])
        if out_shape != (state.shape[0], mh):
            raise CompileError(f"node {node.name!r} ({self._op(node)}): {mh} output features, but the "
                               f"model gives its output shape {out_shape}")
        if mw != state.shape[1]:
            raise CompileError(f"node {node.name!r}: weight has {mw} rows, input has {state.shape[1]} features")
        if not np.allclose(scale, scale[:1, :], rtol=1e-6, atol=0):
            raise CompileError(f"node {node.name!r}: weight scale varies along the input dimension; only "
                               "per-tensor or per-output-channel weight scales fold into thresholds")
        if state.nchw_flatten is not None:
            c, h, w = state.nchw_flatten
            # stream order is (h, w, c); the model flattened (c, h, w): reorder the weight rows
            order = np.arange(c * h * w).reshape(c, h, w).transpose(1, 2, 0).reshape(-1)
            levels = levels[order]
        pre = scale[0, :] * self._tensor_scale(node, state, "features")
        return _Accumulating(self._name("fc"), node.name, levels.T.copy(), wdt, state.dtype, (),
                             pre.astype(np.float64), out_shape, src=state.src)

    def _gemm_left(self, node, state: _Quantized, t: str):
        """A Gemm that rewrites.GemmToMatMulNamed did not take: say why."""
        a = _attrs(node)
        if len(state.shape) != 2:
            raise CompileError(f"node {node.name!r} (Gemm): input of rank {len(state.shape)}; "
                               "flatten it to (N, features) first")
        if a.get("transA", 0) or node.input[0] != t:
            raise CompileError(f"node {node.name!r} (Gemm): transposed or second-input activations "
                               "are not supported")
        self._flag(node, "transA", 0)
        self._flag(node, "transB", 0)
        if len(node.input) > 3:
            raise CompileError(f"node {node.name!r} (Gemm): has {len(node.input)} inputs; expected "
                               "A, B and an optional bias C")
        self.quantized_weight(node, self._input(node, 1, "weights"))
        bias = np.asarray(self._const(node, self._input(node, 2, "bias"), "bias"))
        out_shape = self._shape(node.output[0])
        if len(out_shape) != 2 or out_shape[0] != state.shape[0]:
            raise CompileError(f"node {node.name!r} (Gemm): the model gives its output shape "
                               f"{out_shape} for an input of shape {state.shape}")
        if bias.size not in (1, out_shape[1]):
            raise CompileError(f"node {node.name!r} (Gemm): bias of shape {bias.shape} for "
                               f"{out_shape[1]} outputs")
        why = failures(self.model).get(node.name)
        if why:
            raise CompileError(f"node {node.name!r} (Gemm): cannot be rewritten as MatMul + Add: {why}")
        raise CompileError(f"node {node.name!r} (Gemm): a bias of {bias.dtype} cannot be added to "
                           "the matrix product; use float32")

    # convolutions and pooling ----------------------------------------------------------------
    def _nchw(self, node, state: _Quantized) -> tuple[int, int, int]:
        if len(state.shape) != 4:
            raise CompileError(f"node {node.name!r} ({self._op(node)}): expected an (N, C, H, W) input, "
                               f"got rank {len(state.shape)}")
        _, c, h, w = state.shape
        return c, h, w

    def _pads(self, node, a: dict, k: tuple, h: int, w: int, stride: tuple) -> tuple:
        auto = a.get("auto_pad", "NOTSET")
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            pads = []
            for size, kk, ss in ((h, k[0], stride[0]), (w, k[1], stride[1])):
                out = -(-size // ss)
                total = max(0, (out - 1) * ss + kk - size)
                small, big = total // 2, total - total // 2
                pads.append((small, big) if auto == "SAME_UPPER" else (big, small))
            return (pads[0][0], pads[1][0], pads[0][1], pads[1][1])
        if auto == "VALID":
            return (0, 0, 0, 0)
        if auto != "NOTSET":
            raise CompileError(f"node {node.name!r} ({self._op(node)}): unknown auto_pad {auto!r}")
        return self._ints(node, a, "pads", 4, [0, 0, 0, 0])

    def _pad(self, node, state: _Quantized, t: str):
        a = _attrs(node)
        c, h, w = self._nchw(node, state)
        mode = a.get("mode", "constant")
        pads = a.get("pads")
        if pads is None and len(node.input) > 1 and node.input[1]:
            arr = np.asarray(self._const(node, node.input[1], "pads"))
            if arr.dtype.kind not in "iu":
                raise CompileError(f"node {node.name!r} (Pad): pads must be integers, got {arr.dtype}")
            pads = [int(v) for v in arr.ravel()]
        if pads is not None:
            pads = list(self._ints(node, {"pads": pads}, "pads", len(pads) if len(pads) == 8 else 8))
        if mode != "constant" or pads is None or len(pads) != 8 or any(pads[i] for i in (0, 1, 4, 5)):
            raise CompileError(f"node {node.name!r} (Pad): only constant padding of H and W is supported")
        value = 0.0
        if len(node.input) > 2 and node.input[2]:
            value = float(np.asarray(self._const(node, node.input[2], "value")).ravel()[0])
        lv = np.asarray(value / np.asarray(state.scale, dtype=np.float64)).reshape(-1)
        level = float(lv[0])
        if np.any(np.abs(lv - round(level)) > 1e-6) or not state.dtype.contains(np.array([round(level)])):
            raise CompileError(f"node {node.name!r} (Pad): pad value {value} is not a level of the "
                               f"{state.dtype.name} activations it pads")
        state.pad = ((pads[2], pads[3], pads[6], pads[7]), int(round(level)))
        state.shape = self._shape(node.output[0])
        return state

    def _conv(self, node, state: _Quantized, t: str):
        a = _attrs(node)
        if node.input[0] != t:
            raise CompileError(f"node {node.name!r} (Conv): the activation must be the first input")
        c, h, w = self._nchw(node, state)
        pre_pad, pad_level = (0, 0, 0, 0), 0
        if state.pad is not None:
            (pt, pl, pb, pr), pad_level = state.pad
            pre_pad = (pt, pl, pb, pr)
            h, w = h - pt - pb, w - pl - pr
        levels, scale, wdt = self.quantized_weight(node, self._input(node, 1, "weights"))  # (OC, IC/g, KH, KW)
        if levels.ndim != 4:
            raise CompileError(f"node {node.name!r} (Conv): weights of shape {levels.shape}; expected "
                               "(out channels, in channels / group, KH, KW)")
        oc, icg, kh, kw = levels.shape
        if "kernel_shape" in a and self._ints(node, a, "kernel_shape", 2, low=1) != (kh, kw):
            raise CompileError(f"node {node.name!r} (Conv): kernel_shape {a['kernel_shape']} does not "
                               f"match the {kh}x{kw} weights")
        if any(d != 1 for d in self._ints(node, a, "dilations", 2, [1, 1], low=1)):
            raise CompileError(f"node {node.name!r} (Conv): dilated convolutions are not supported")
        stride = self._ints(node, a, "strides", 2, [1, 1], low=1)
        pads = self._pads(node, a, (kh, kw), h, w, stride)
        if state.pad is not None:
            if any(pads):
                pads = tuple(x + y for x, y in zip(pads, pre_pad))
            else:
                pads = pre_pad
        elif any(pads) and not state.dtype.contains(np.array([0])):
            raise CompileError(
                f"node {node.name!r} (Conv): zero padding of {state.dtype.name} activations cannot be "
                "represented (0 is not a level); pad explicitly with a Pad node of value -1 or +1")
        sc = scale.reshape(oc, -1)
        if not np.allclose(sc, sc[:, :1], rtol=1e-6, atol=0):
            raise CompileError(f"node {node.name!r}: weight scale varies within an output channel; only "
                               "per-tensor or per-output-channel weight scales fold into thresholds")
        group = self._ints(node, a, "group", 1, 1, low=1)[0]
        out_shape = self._shape(node.output[0])
        if len(out_shape) != 4 or out_shape[1] != oc:
            raise CompileError(f"node {node.name!r} (Conv): {oc} output channels, but the model gives its "
                               f"output shape {out_shape}")
        oh, ow = out_shape[2], out_shape[3]
        bias = None
        if len(node.input) > 2 and node.input[2]:
            bias = np.asarray(self._const(node, node.input[2], "bias"), dtype=np.float64)
            if bias.size not in (1, oc):
                raise CompileError(f"node {node.name!r} (Conv): bias of shape {bias.shape} for {oc} "
                                   "output channels")
            bias = np.broadcast_to(bias.reshape(-1), (oc,))
        name = self._name("conv")
        # a depthwise convolution keeps channels apart: a per-channel input scale goes into its
        # per-channel pre-scale; any other convolution needs one scale
        depthwise = group > 1 and group == c and icg == 1 and oc == c
        in_scale = state.scale if depthwise else self._tensor_scale(node, state, "feature map")
        pre = sc[:, 0] * in_scale
        src = state.src
        if group == 1:
            if icg != c:
                raise CompileError(f"node {node.name!r}: weight has {icg} input channels, input has {c}")
            if (kh, kw) != (1, 1) or stride != (1, 1) or any(pads):
                swg = SlidingWindowUnit(f"{name}_win", (h, w, c), state.dtype, (kh, kw), stride, pads,
                                        pad_level if state.pad is not None else 0, 1, False, node.name)
                if swg.out_hw != (oh, ow):
                    raise CompileError(f"node {node.name!r}: window geometry gives {swg.out_hw}, the model "
                                       f"says {(oh, ow)}")
                src = self._emit(swg, src)
            elif (oh, ow) != (h, w):
                raise CompileError(f"node {node.name!r}: a 1x1 convolution keeps {(h, w)}, the model says "
                                   f"{(oh, ow)}")
            wmat = levels.transpose(0, 2, 3, 1).reshape(oc, kh * kw * c)
            acc = _Accumulating(name, node.name, wmat, wdt, state.dtype, (oh, ow), pre, out_shape, src=src)
        elif group == c and icg == 1 and oc == c:
            swg = SlidingWindowUnit(f"{name}_win", (h, w, c), state.dtype, (kh, kw), stride, pads,
                                    pad_level if state.pad is not None else 0, 1, True, node.name)
            if swg.out_hw != (oh, ow):
                raise CompileError(f"node {node.name!r}: window geometry gives {swg.out_hw}, the model "
                                   f"says {(oh, ow)}")
            src = self._emit(swg, src)
            acc = _Accumulating(name, node.name, levels.reshape(c, kh * kw), wdt, state.dtype, (oh, ow),
                                pre, out_shape, kind=VectorVectorUnit, src=src)
        else:
            raise CompileError(f"node {node.name!r} (Conv): group={group} is neither 1 nor depthwise "
                               f"({c} channels); grouped convolutions are not supported")
        if bias is not None:
            acc.chain.append(OpCall("Add", [None, bias.reshape(1, -1, 1, 1)], {}, node.name + ".bias"))
        return acc

    def _maxpool(self, node, state: _Quantized, t: str):
        a = _attrs(node)
        c, h, w = self._nchw(node, state)
        k = self._ints(node, a, "kernel_shape", 2, low=1)
        stride = self._ints(node, a, "strides", 2, k, low=1)
        if any(self._ints(node, a, "pads", 4, [0, 0, 0, 0])) or \
                a.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID") or a.get("ceil_mode", 0) or \
                any(d != 1 for d in self._ints(node, a, "dilations", 2, [1, 1], low=1)):
            raise CompileError(f"node {node.name!r} (MaxPool): only unpadded, undilated, floor-mode "
                               "max-pooling is supported")
        if np.any(np.asarray(state.scale) <= 0):
            raise CompileError(f"node {node.name!r} (MaxPool): activation scale must be positive")
        unit = MaxPoolUnit(self._name("pool"), (h, w, c), state.dtype, k, stride, 1, node.name)
        out_shape = self._shape(node.output[0])
        if k[0] > h or k[1] > w or tuple(out_shape) != (state.shape[0], c) + unit.out_hw:
            raise CompileError(f"node {node.name!r} (MaxPool): a {k[0]}x{k[1]} window with stride "
                               f"{stride} on {h}x{w} gives {unit.out_hw}, the model says {out_shape}")
        state.src = self._emit(unit, state.src)
        state.shape = out_shape
        return state

    def _avg_pool(self, node, state: _Quantized, t: str):
        """AveragePool (TruncAvgPool2d's first half): a sum-pool unit, ``1/(kh*kw)`` in the scale
        (over the whole map: the global sum-pool)."""
        a = _attrs(node)
        c, h, w = self._nchw(node, state)
        k = self._ints(node, a, "kernel_shape", 2, low=1)
        stride = self._ints(node, a, "strides", 2, k, low=1)
        if any(self._ints(node, a, "pads", 4, [0, 0, 0, 0])) or a.get("ceil_mode", 0) or \
                a.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
            raise CompileError(f"node {node.name!r} (AveragePool): only unpadded, floor-mode average "
                               "pooling is supported")
        if k == (h, w):
            return self._global_avg(node, state, t)
        unit = SumPoolUnit(self._name("avg"), (h, w, c), state.dtype, k, stride, 1, node.name)
        out_shape = self._shape(node.output[0])
        if k[0] > h or k[1] > w or tuple(out_shape) != (state.shape[0], c) + unit.out_hw:
            raise CompileError(f"node {node.name!r} (AveragePool): a {k[0]}x{k[1]} window with stride "
                               f"{stride} on {h}x{w} gives {unit.out_hw}, the model says {out_shape}")
        if unit.out_dtype.bits > MAX_BITS:
            raise CompileError(f"node {node.name!r} (AveragePool): its {unit.out_dtype.bits}-bit window "
                               f"sums exceed the {MAX_BITS}-bit stream limit")
        state.src = self._emit(unit, state.src)
        state.dtype = unit.out_dtype
        state.scale = state.scale / (k[0] * k[1])
        state.shape = out_shape
        return state

    def _global_avg(self, node, state: _Quantized, t: str):
        c, h, w = self._nchw(node, state)
        unit = GlobalSumPoolUnit(self._name("gap"), (h, w, c), state.dtype, 1, node.name)
        if self._shape(node.output[0]) != (state.shape[0], c, 1, 1):
            raise CompileError(f"node {node.name!r} (GlobalAveragePool): gives ({state.shape[0]}, {c}, 1, "
                               f"1), the model says {self._shape(node.output[0])}")
        state.src = self._emit(unit, state.src)
        state.dtype = unit.out_dtype
        state.scale = state.scale / (h * w)
        state.shape = self._shape(node.output[0])
        return state

    # accumulators
    def on_accumulating(self, node, state: _Accumulating, t: str):
        op = node.op_type
        if op in REQUANTIZERS:
            dtype, scale = self._quantizer_type(node)
            if dtype.bits > MAX_THRESHOLD_BITS:
                raise CompileError(
                    f"node {node.name!r} (Quant): a {dtype.bits}-bit activation after matrix product "
                    f"{state.source!r} needs {(1 << dtype.bits) - 1} thresholds per channel; the "
                    f"threshold units take up to {MAX_THRESHOLD_BITS} bits "
                    f"({(1 << MAX_THRESHOLD_BITS) - 1} thresholds); quantize to "
                    f"{MAX_THRESHOLD_BITS} bits or fewer")
            unit = self._mvau(state, self._call(node, t), dtype)
            if state.reorder:  # the stream keeps the product's layout; the host reorders
                return _Quantized(dtype, scale, state.shape, tail=list(state.reorder),
                                  src=self._emit(unit, state.src), scale_from=node.name)
            return _Quantized(dtype, scale, self._shape(node.output[0]), src=self._emit(unit, state.src),
                              scale_from=node.name)
        if op in REORDER_OPS and not state.reorder and self._host_only_after(node):
            # a reorder ending the model commutes with the per-tensor ops and the quantizer after
            # it: they become this product's thresholds, the reorder a host step
            state.reorder.append(self._call(node, t))
            return state
        if state.reorder and (op in CHANNEL_OPS or op in ACTIVATION_OPS):
            call = self._call(node, t)
            if any(np.size(a) > 1 for a in call.inputs if a is not None):
                raise CompileError(f"node {node.name!r} ({self._op(node)}): a per-channel constant after "
                                   f"the reorder {state.reorder[0].node!r}; only per-tensor ops can move "
                                   "before it into the thresholds")
            state.chain.append(call)
            return state
        if op in SHAPE_OPS:
            if self._shape(node.output[0]) != state.shape:
                raise CompileError(f"node {node.name!r} ({self._op(node)}) reshapes an accumulator; not supported")
            return state
        if op in NON_MONOTONE:
            raise CompileError(f"node {node.name!r} ({self._op(node)}) between matrix product "
                               f"{state.source!r} and its quantizer is not monotone, so it cannot become "
                               "thresholds on the accumulator; quantize its input first (a lookup table "
                               f"then takes it, for inputs up to {MAX_LOOKUP_BITS} bits)")
        if op in CHANNEL_OPS or op in ACTIVATION_OPS:
            call = self._call(node, t)
            self._check_per_channel(node, call, state)
            state.chain.append(call)
            return state
        self.unsupported(node, "between a matrix product and its activation quantizer")

    def _check_per_channel(self, node, call: OpCall, state: _Accumulating) -> None:
        mh = state.weights.shape[0]
        probe = (1, mh) if len(state.shape) == 2 else (1, mh, 1, 1)
        for a in call.inputs:
            if a is None:
                continue
            arr = np.asarray(a)
            if node.op_type == "BatchNormalization":
                ok = arr.size in (1, mh)
            else:
                try:
                    ok = arr.size in (1, mh) and np.broadcast_shapes(arr.shape, probe) == probe
                except ValueError:
                    ok = False
            if not ok:
                raise CompileError(f"node {node.name!r} ({self._op(node)}): constant of shape {arr.shape} is "
                                   f"not per-channel for {mh} channels")

    def _mvau(self, st: _Accumulating, quantizer: OpCall | None, out_dtype: DataType):
        unit = st.kind(name=st.name, weights=st.weights, weight_dtype=st.weight_dtype,
                       in_dtype=st.in_dtype, out_dtype=out_dtype, rows_shape=st.rows_shape,
                       source=st.source)
        probe = (lambda n: (n, -1)) if len(st.shape) == 2 else (lambda n: (n, -1, 1, 1))
        thr, out_bias, sign = thresholds_for(unit, st.pre_scale, st.chain, quantizer, probe)
        unit.weights = unit.weights * sign[:, None]
        unit.thresholds = thr
        unit.out_bias = out_bias
        return unit

    # joins -----------------------------------------------------------------------------------
    def join(self, node, states: list, tensors: list):
        """A node reading two or more data paths: an Add or a Concat of quantized streams."""
        op = node.op_type
        if op not in JOIN_OPS:
            raise CompileError(f"node {node.name!r} ({self._op(node)}) reads {len(states)} data paths "
                               f"({', '.join(map(repr, tensors))}); only Add and Concat join data paths")
        for st, t in zip(states, tensors):
            if isinstance(st, _Summing) and not st.chain:
                st = self._raw_sum(st)
                states[tensors.index(t)] = st
            if isinstance(st, (_Accumulating, _Summing)):
                raise CompileError(
                    f"node {node.name!r} ({self._op(node)}): input {t!r} comes from {st.source!r} "
                    "without a quantizer in between; quantize every input of the join (one shared "
                    "quantizer, e.g. a Brevitas QuantIdentity applied to each branch)")
            if isinstance(st, _Float):
                raise CompileError(f"node {node.name!r} ({self._op(node)}): input {t!r} is not quantized; "
                                   "quantize every input of the join with one shared quantizer")
            if st.tail or st.pad is not None or st.nchw_flatten is not None:
                what = "float output steps" if st.tail else "a Pad" if st.pad is not None else "a flatten"
                raise CompileError(f"node {node.name!r} ({self._op(node)}): input {t!r} follows {what}; "
                                   "joins take quantized feature maps directly")
        shape = self._shape(node.output[0])
        for st, t in zip(states, tensors):
            if len(st.shape) != len(shape) or (op == "Add" and tuple(st.shape) != shape):
                raise CompileError(f"node {node.name!r} ({self._op(node)}): input {t!r} has shape "
                                   f"{st.shape}, the output {shape}; joins do not broadcast")
        return self._add(node, states, tensors, shape) if op == "Add" else \
            self._concat(node, states, tensors, shape)

    def _add(self, node, states, tensors, shape):
        if len(states) != 2:
            raise CompileError(f"node {node.name!r} (Add): adds {len(states)} data paths; expected two")
        a, b = states
        ratios = np.asarray(a.scale, dtype=np.float64) / np.asarray(b.scale, dtype=np.float64)
        ratio = float(np.reshape(ratios, -1)[0])
        if np.size(ratios) > 1 and np.any(np.abs(ratios - ratio) > 1e-6 * ratio):
            raise CompileError(
                f"node {node.name!r} (Add): the per-channel scales of its inputs {tensors[0]!r} and "
                f"{tensors[1]!r} differ in ratio from channel to channel; quantize both inputs with "
                "one shared quantizer")
        frac = Fraction(ratio).limit_denominator(MAX_RESCALE)
        p, q = frac.numerator, frac.denominator
        if p > MAX_RESCALE or abs(p / q - ratio) > 1e-6 * ratio:
            raise CompileError(
                f"node {node.name!r} (Add): its inputs {tensors[0]!r} (scale {_fmt(a.scale)}) and "
                f"{tensors[1]!r} (scale {_fmt(b.scale)}) have a scale ratio of {ratio:.6g}, not a small "
                "exact fraction, so their integer levels cannot be added exactly; quantize both "
                "inputs with one shared quantizer (in Brevitas, the same QuantIdentity on both branches)")
        if a.dtype.bipolar != b.dtype.bipolar:
            raise CompileError(f"node {node.name!r} (Add): adds a bipolar and a non-bipolar stream; "
                               "quantize both inputs with one shared quantizer")
        # s_a a + s_b b = (s_b / q) (p a + q b)
        return _Summing(self._name("add"), node.name, (a.src, b.src), (a.dtype, b.dtype), (p, q),
                        np.asarray(b.scale) / q if np.size(b.scale) > 1 else b.scale / q, shape)

    def _concat(self, node, states, tensors, shape):
        axis = _attrs(node).get("axis", 1)
        if axis < 0:
            axis += len(shape)
        if axis != 1:
            raise CompileError(f"node {node.name!r} (Concat): joins on axis {axis}; only the channel "
                               "axis (1) is supported")
        s0 = states[0].scale
        for st, t in zip(states[1:], tensors[1:]):
            if np.size(st.scale) != np.size(s0) or \
                    np.any(np.abs(np.asarray(st.scale) - s0) > 1e-6 * np.asarray(s0)) or \
                    st.dtype.bipolar != states[0].dtype.bipolar:
                raise CompileError(
                    f"node {node.name!r} (Concat): its inputs {tensors[0]!r} (scale {_fmt(s0)}, "
                    f"{states[0].dtype.name}) and {t!r} (scale {_fmt(st.scale)}, {st.dtype.name}) differ; "
                    "a concat joins streams of one scale: quantize every branch with one shared "
                    "quantizer (in Brevitas, the same QuantReLU/QuantIdentity instance)")
        dtypes = tuple(st.dtype for st in states)
        if all(d == dtypes[0] for d in dtypes):
            out = dtypes[0]
        else:
            out = DataType.for_range(min(d.min for d in dtypes), max(d.max for d in dtypes))
        spatial = tuple(shape[2:])
        unit = ConcatUnit(self._name("cat"), spatial, tuple(int(st.shape[1]) for st in states), dtypes,
                          out, 1, node.name)
        if sum(unit.channels) != shape[1]:
            raise CompileError(f"node {node.name!r} (Concat): the inputs have {sum(unit.channels)} "
                               f"channels, the model says {shape[1]}")
        return _Quantized(out, s0, shape, src=self._emit(unit, *(st.src for st in states)))

    def _sum_unit(self, st: _Summing, out_dtype: DataType = BIPOLAR) -> AddUnit:
        shape = st.shape
        stream = (shape[2], shape[3], shape[1]) if len(shape) == 4 else tuple(shape[1:])
        return AddUnit(st.name, stream, st.dtypes[0], st.dtypes[1], out_dtype, st.muls[0], st.muls[1],
                       source=st.source)

    def _raw_sum(self, st: _Summing) -> _Quantized:
        """The sum itself as a stream (no activation): its integer levels at ``st.scale``."""
        if len(st.srcs) == 1:  # levels with float ops after them: host steps (or an error) follow
            return _Quantized(st.dtypes[0], st.scale, st.shape, tail=list(st.chain), src=st.srcs[0])
        if st.chain:  # pragma: no cover - callers check
            raise CompileError(f"node {st.chain[0].node!r}: float ops after Add {st.source!r} need a "
                               "quantizer before the next layer")
        unit = self._sum_unit(st)
        unit.out_dtype = unit.acc_dtype
        if unit.out_dtype.bits > MAX_BITS:
            raise CompileError(f"node {st.source!r} (Add): its {unit.out_dtype.bits}-bit sum exceeds the "
                               f"{MAX_BITS}-bit stream limit; quantize the sum")
        return _Quantized(unit.out_dtype, st.scale, st.shape, src=self._emit(unit, *st.srcs))

    def on_summing(self, node, state: _Summing, t: str):
        op = node.op_type
        if op in REQUANTIZERS:
            dtype, scale = self._quantizer_type(node)
            if dtype.bits > MAX_THRESHOLD_BITS:
                raise CompileError(
                    f"node {node.name!r} (Quant): a {dtype.bits}-bit activation after Add "
                    f"{state.source!r} needs {(1 << dtype.bits) - 1} thresholds per channel; the "
                    f"threshold units take up to {MAX_THRESHOLD_BITS} bits; quantize to "
                    f"{MAX_THRESHOLD_BITS} bits or fewer")
            if len(state.srcs) == 1:
                return self._thresholds(node, state, t, dtype, scale)
            unit = self._sum_unit(state, out_dtype=dtype)
            lo, hi = unit.acc_range
            c = unit.channels
            probe = (lambda n: (n, -1)) if len(state.shape) == 2 else (lambda n: (n, -1, 1, 1))
            thr, out_bias, sign = thresholds_for(unit, _per_channel(state.scale, c), state.chain,
                                                 self._call(node, t), probe,
                                                 bounds=(np.full(c, lo), np.full(c, hi)))
            if np.all(sign < 0):  # the ops after the sum decrease: add the negated inputs
                unit.a_mul, unit.b_mul = -unit.a_mul, -unit.b_mul
            elif np.any(sign < 0):
                raise CompileError(
                    f"node {node.name!r} (Quant): the ops between Add {state.source!r} and this "
                    "quantizer increase with the sum in some channels and decrease in others (a "
                    "batch-norm with gammas of both signs); put a quantizer after the Add first")
            unit.thresholds, unit.out_bias = thr, out_bias
            return _Quantized(dtype, scale, self._shape(node.output[0]), src=self._emit(unit, *state.srcs),
                              scale_from=node.name)
        if op in CHANNEL_OPS or op in ACTIVATION_OPS:
            call = self._call(node, t)
            c = state.shape[1]
            probe = (1, c) if len(state.shape) == 2 else (1, c, 1, 1)
            for arr in (np.asarray(x) for x in call.inputs if x is not None):
                try:
                    ok = arr.size in (1, c) and (op == "BatchNormalization" or
                                                 np.broadcast_shapes(arr.shape, probe) == probe)
                except ValueError:
                    ok = False
                if not ok and len(state.srcs) == 1:  # not per channel: a host step at the output
                    return self.on_quantized(node, self._raw_sum(state), t)
                if not ok:
                    raise CompileError(f"node {node.name!r} ({self._op(node)}): constant of shape "
                                       f"{arr.shape} is not per-channel for {c} channels")
            state.chain.append(call)
            return state
        if state.chain and len(state.srcs) > 1:
            raise CompileError(f"node {node.name!r} ({self._op(node)}) follows float ops on the sum of "
                               f"Add {state.source!r} ({state.chain[0].node!r}); put a quantizer "
                               "between them")
        return self.step(node, self._raw_sum(state), t)

    def _thresholds(self, node, state: _Summing, t: str, dtype: DataType, scale: float):
        """Quantizer after per-channel ops on the levels of one stream: a threshold unit (none
        when the levels come out unchanged)."""
        shape = state.shape
        stream = (shape[2], shape[3], shape[1]) if len(shape) == 4 else tuple(shape[1:])
        ind = state.dtypes[0]
        if any(op.op_type in NON_MONOTONE for op in state.chain):
            return self._lookup(node, state, t, dtype, scale)
        unit = ThresholdUnit(self._name("thr"), stream, ind, dtype, source=node.name)
        c = unit.channels
        probe = (lambda n: (n, -1)) if len(shape) == 2 else (lambda n: (n, -1, 1, 1))
        try:
            thr, out_bias, sign = thresholds_for(unit, _per_channel(state.scale, c), state.chain,
                                                 self._call(node, t), probe,
                                                 bounds=(np.full(c, ind.min), np.full(c, ind.max)))
        except CompileError as e:
            if "not monotone" not in str(e):
                raise
            self.counters["thr"] -= 1
            return self._lookup(node, state, t, dtype, scale)
        if np.any(sign < 0):
            raise CompileError(f"node {node.name!r} (Quant): the ops between the levels of "
                               f"{state.src[0] or 'the input'} and this quantizer decrease with them; "
                               "a threshold unit needs an increasing function (put the sign into a "
                               "weight)")
        unit.thresholds, unit.out_bias = thr, out_bias
        levels = np.array([-1, 1]) if ind.bipolar else np.arange(ind.min, ind.max + 1)
        same = apply_thresholds(np.repeat(levels[:, None], c, 1), thr, dtype, out_bias)
        if dtype == ind and np.size(scale) == np.size(state.scale) and \
                np.all(np.abs(np.asarray(scale) - state.scale) <= 1e-9 * np.asarray(scale)) and \
                np.array_equal(same, np.repeat(levels[:, None], c, 1)):
            self.counters["thr"] -= 1  # the quantizer is an identity here: no unit
            return _Quantized(ind, state.scale, self._shape(node.output[0]), src=state.srcs[0])
        return _Quantized(dtype, scale, self._shape(node.output[0]), src=self._emit(unit, state.srcs[0]),
                          scale_from=node.name)

    def _lookup(self, node, state: _Summing, t: str, dtype: DataType, scale):
        """Quantizer after an elementwise function thresholds cannot express (not monotone: a
        HardSwish, GELU ...): a lookup table indexed by the input level, evaluated on the model's
        own ops for every level."""
        from .thresholds import _levels_fn

        shape = state.shape
        stream = (shape[2], shape[3], shape[1]) if len(shape) == 4 else tuple(shape[1:])
        ind = state.dtypes[0]
        ops = ", ".join(repr(op.node) for op in state.chain)
        if ind.bits > MAX_LOOKUP_BITS:
            raise CompileError(f"node {node.name!r} ({self._op(node)}): the ops before it ({ops}) are not "
                               f"monotone, so they need a lookup table indexed by the {ind.bits}-bit input "
                               f"levels; tables take inputs of up to {MAX_LOOKUP_BITS} bits: quantize the "
                               "input more narrowly")
        c = stream[-1]
        levels = np.array([-1, 1]) if ind.bipolar else np.arange(ind.min, ind.max + 1)
        probe = (-1, c) + (1,) * (len(shape) - 2)
        x = (levels[:, None] * _per_channel(state.scale, c)[None, :]).reshape(probe)
        quantize, _ = _levels_fn(self._call(node, t))
        with np.errstate(all="ignore"):
            v = np.asarray(run_chain(state.chain, x.astype(np.float64)), dtype=np.float64)
            out = np.asarray(quantize(v)).reshape(levels.size, c).T  # (C, levels)
        table = out[0] if np.all(out == out[:1]) else out
        from .units.lookup import LookupUnit

        unit = LookupUnit(self._name("lut"), stream, ind, dtype, table.astype(np.int64), source=node.name)
        return _Quantized(dtype, scale, self._shape(node.output[0]), src=self._emit(unit, state.srcs[0]),
                          scale_from=node.name)

    # the end
    def _finish(self, state) -> CompiledModel:
        if self.host_in is None or (not self.units and not isinstance(state, _Accumulating)):
            raise CompileError(f"{self.source}: no quantized matrix product found between input and "
                               "output; nothing to put in hardware")
        out_shape = self._shape(self.output.name)
        if isinstance(state, _Summing) and len(state.srcs) == 1:
            state = self._raw_sum(state)  # levels, then host steps
        if isinstance(state, _Accumulating):
            unit = state.kind(name=state.name, weights=state.weights, weight_dtype=state.weight_dtype,
                              in_dtype=state.in_dtype, out_dtype=BIPOLAR, rows_shape=state.rows_shape,
                              source=state.source)
            unit.out_dtype = unit.acc_dtype
            src = self._emit(unit, state.src)
            mw = unit.weights.shape[1]
            pre = np.asarray(state.pre_scale, dtype=np.float64)
            if unit.binary:  # popcount p -> dot product 2p - MW
                mul, add = 2 * pre, -mw * pre
            else:
                mul, add = pre, np.zeros_like(pre)
            host_out = HostOutput(mul, add, state.chain, "flat" if len(state.shape) == 2 else "nchw")
        elif isinstance(state, _Quantized):
            c = state.shape[1] if len(state.shape) >= 2 else 1
            host_out = HostOutput(_per_channel(state.scale, c).astype(np.float32), np.zeros(c), state.tail,
                                  "nchw" if len(state.shape) == 4 else "flat", exact=True)
            src = state.src
        elif isinstance(state, _Summing):
            c = state.shape[1] if len(state.shape) >= 2 else 1
            # the model adds two float32 products: equal to the integer sum times its scale up to
            # float32 rounding (not bit for bit)
            host_out = HostOutput(_per_channel(state.scale, c), np.zeros(c), state.chain,
                                  "nchw" if len(state.shape) == 4 else "flat")
            src = self._raw_sum(state).src
        else:
            raise CompileError(f"{self.source}: the output is reached before any quantized layer")
        if src == (None, 0):
            raise CompileError(f"{self.source}: no quantized layer between input and output; nothing "
                               "to put in hardware")
        self.edges.append(Edge(src[0], None, 2, src[1], 0))
        pipeline = DataflowGraph(self.units, edges=self.edges)
        try:
            pipeline.check()
        except ValueError as e:  # neighbouring units disagree: the model's shapes do not add up
            raise CompileError(f"{self.source}: {e}; the model's tensor shapes are inconsistent") from None
        return CompiledModel(pipeline, self.host_in, host_out, self.input.name, self.in_shape,
                             self.output.name, out_shape, self.source)


def lower(model, source: str = "model") -> CompiledModel:
    """Lower a cleaned ModelWrapper to a :class:`CompiledModel` (unfolded: PE = SIMD = 1)."""
    return Lowering(model, source).run()

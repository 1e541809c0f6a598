"""The streamfold IR: the contract between compiler, hardware and simulation.

A compiled network is a :class:`Pipeline`: an ordered list of stream units, each a plain
dataclass holding everything needed to elaborate its hardware (``streamfold.hw``), compute its
integer reference (``streamfold.sim.reference``) and estimate its cost (``streamfold.compiler.cost``).

Stream conventions
------------------
* A unit consumes one input stream and produces one output stream.
* A frame is one tensor of ``StreamSpec.shape``, streamed in C order of that shape (channel-last:
  ``(H, W, C)`` for images, ``(..., features)`` for vectors).
* A beat carries ``StreamSpec.fold`` consecutive elements; element 0 sits in the least significant
  ``dtype.bits`` bits of the beat.
* Elements are integers in two's complement (signed) or plain binary (unsigned). A bipolar element
  (values -1/+1) is one bit: 1 means +1, 0 means -1.

Integer semantics (defined here, once)
--------------------------------------
MatrixVectorUnit, for each input vector ``x`` (length MW) and output channel ``c``:

* ``acc[c] = sum_i W[c, i] * x[i]`` with values decoded (bipolar -> -1/+1), except in *binary*
  mode (weights and inputs both bipolar), where ``acc[c] = popcount(xnor(W_bits[c], x_bits))``,
  the number of matching signs, in ``[0, MW]``.
* With thresholds ``T[c, 0..n-1]`` (ascending): ``count = sum_k (acc[c] >= T[c, k])``; the
  output value is ``out_bias + count``; for a bipolar output the output bit is ``count`` (n == 1).
* Without thresholds the output is ``acc`` itself.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from .errors import StreamfoldError

IR_VERSION = 1


# ----------------------------------------------------------------------------- datatypes
@dataclass(frozen=True)
class DataType:
    """An integer element type: ``bits`` wide, signed or not, or bipolar (-1/+1 in one bit).

    ``narrow`` drops the most negative signed value (or the largest unsigned value) from the range,
    as QONNX's ``Quant(narrow=1)`` does; the element width stays ``bits``.
    """

    bits: int
    signed: bool
    bipolar: bool = False
    narrow: bool = False

    def __post_init__(self):
        if self.bits < 1:
            raise ValueError(f"datatype needs at least 1 bit, got {self.bits}")
        if self.bipolar and (self.bits != 1 or self.signed or self.narrow):
            raise ValueError("a bipolar datatype is 1 bit, unsigned code, not narrow")

    # constructors
    @staticmethod
    def bipolar_type() -> "DataType":
        return DataType(1, False, bipolar=True)

    @staticmethod
    def int_type(bits: int, narrow: bool = False) -> "DataType":
        return DataType(bits, True, narrow=narrow)

    @staticmethod
    def uint_type(bits: int, narrow: bool = False) -> "DataType":
        return DataType(bits, False, narrow=narrow)

    @staticmethod
    def for_range(lo: int, hi: int) -> "DataType":
        """The narrowest plain integer type that holds every value in ``[lo, hi]``."""
        lo, hi = int(lo), int(hi)
        if lo >= 0:
            return DataType(max(1, int(hi).bit_length()), False)
        bits = max((-lo - 1).bit_length(), hi.bit_length()) + 1
        return DataType(bits, True)

    @staticmethod
    def parse(name: str) -> "DataType":
        n = name.upper()
        if n == "BIPOLAR":
            return DataType.bipolar_type()
        narrow = n.endswith("N")
        if narrow:
            n = n[:-1]
        if n.startswith("UINT"):
            return DataType(int(n[4:]), False, narrow=narrow)
        if n.startswith("INT"):
            return DataType(int(n[3:]), True, narrow=narrow)
        raise ValueError(f"unknown datatype name {name!r}")

    # properties
    @property
    def name(self) -> str:
        if self.bipolar:
            return "BIPOLAR"
        return f"{'INT' if self.signed else 'UINT'}{self.bits}{'N' if self.narrow else ''}"

    @property
    def min(self) -> int:
        if self.bipolar:
            return -1
        if self.signed:
            return -(1 << (self.bits - 1)) + (1 if self.narrow else 0)
        return 0

    @property
    def max(self) -> int:
        if self.bipolar:
            return 1
        if self.signed:
            return (1 << (self.bits - 1)) - 1
        return (1 << self.bits) - 1 - (1 if self.narrow else 0)

    def contains(self, values) -> bool:
        v = np.asarray(values)
        if self.bipolar:
            return bool(np.all((v == 1) | (v == -1)))
        return bool(np.all((v >= self.min) & (v <= self.max)))

    # element codes <-> values
    def encode(self, values) -> np.ndarray:
        """Values -> unsigned element codes (as int64 numpy array)."""
        v = np.asarray(values, dtype=np.int64)
        if self.bipolar:
            return (v > 0).astype(np.int64)
        return v & ((1 << self.bits) - 1)

    def decode(self, codes) -> np.ndarray:
        """Unsigned element codes -> values (int64 numpy array)."""
        c = np.asarray(codes, dtype=np.int64) & ((1 << self.bits) - 1)
        if self.bipolar:
            return 2 * c - 1
        if self.signed:
            return np.where(c >= (1 << (self.bits - 1)), c - (1 << self.bits), c)
        return c

    def __str__(self) -> str:
        return self.name


BIPOLAR = DataType.bipolar_type()


# ----------------------------------------------------------------------------- streams
@dataclass(frozen=True)
class StreamSpec:
    """What flows on a stream: frames of ``shape``, ``fold`` elements of ``dtype`` per beat."""

    shape: tuple
    dtype: DataType
    fold: int

    @property
    def elems_per_frame(self) -> int:
        return int(math.prod(self.shape))

    @property
    def beats_per_frame(self) -> int:
        return self.elems_per_frame // self.fold

    @property
    def beat_bits(self) -> int:
        return self.fold * self.dtype.bits


# ----------------------------------------------------------------------------- units
class Unit:
    """Base of every unit kind. Subclasses are dataclasses with a ``name`` and ``kind``."""

    kind: ClassVar[str] = "unit"
    name: str

    @property
    def in_stream(self) -> StreamSpec:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def out_stream(self) -> StreamSpec:  # pragma: no cover - abstract
        raise NotImplementedError

    def folding(self) -> dict:
        """The unit's folding knobs (what fold.json holds for it)."""
        return {}

    def fold_choices(self) -> dict:
        """For each folding knob, the values the unit accepts."""
        return {}

    def with_folding(self, **knobs) -> "Unit":
        return dataclasses.replace(self, **knobs)


class DotProductUnit(Unit):
    """What the matrix-vector and vector-vector units share: integer dot products of a weight row
    with its input, optionally followed by thresholds (semantics in the module docstring)."""

    weights: np.ndarray
    weight_dtype: DataType
    in_dtype: DataType
    thresholds: np.ndarray | None
    rows_shape: tuple

    @property
    def rows(self) -> int:
        return int(math.prod(self.rows_shape))

    @property
    def binary(self) -> bool:
        """XNOR-popcount mode: both weights and inputs are bipolar."""
        return self.weight_dtype.bipolar and self.in_dtype.bipolar

    @property
    def acc_range(self) -> tuple[int, int]:
        """Exact (min, max) of the accumulator over all valid inputs."""
        if self.binary:
            return 0, int(self.weights.shape[1])
        w = self.weights.astype(np.int64)
        a, b = w * self.in_dtype.min, w * self.in_dtype.max
        return int(np.minimum(a, b).sum(1).min()), int(np.maximum(a, b).sum(1).max())

    @property
    def acc_dtype(self) -> DataType:
        lo, hi = self.acc_range
        if self.thresholds is not None and self.thresholds.size:
            lo, hi = min(lo, int(self.thresholds.min())), max(hi, int(self.thresholds.max()))
        return DataType.for_range(min(lo, 0), hi)

    @property
    def n_thresholds(self) -> int:
        return 0 if self.thresholds is None else int(self.thresholds.shape[1])


@dataclass
class MatrixVectorUnit(DotProductUnit):
    """Matrix-vector product with optional multi-threshold activation (FINN's MVAU).

    ``weights`` is ``(MH, MW)``: one row per output channel. The unit processes
    ``prod(rows_shape)`` input vectors per frame. ``pe`` output channels and ``simd`` input
    elements are computed per cycle; one vector takes ``(MH/pe) * (MW/simd)`` cycles.
    """

    kind: ClassVar[str] = "mvau"
    name: str
    weights: np.ndarray
    weight_dtype: DataType
    in_dtype: DataType
    out_dtype: DataType
    thresholds: np.ndarray | None = None
    out_bias: int = 0
    rows_shape: tuple = ()
    pe: int = 1
    simd: int = 1
    ram_style: str = "auto"
    source: str = ""

    @property
    def mh(self) -> int:
        return int(self.weights.shape[0])

    @property
    def mw(self) -> int:
        return int(self.weights.shape[1])


    @property
    def neuron_fold(self) -> int:
        return self.mh // self.pe

    @property
    def synapse_fold(self) -> int:
        return self.mw // self.simd


    @property
    def in_stream(self) -> StreamSpec:
        return StreamSpec(tuple(self.rows_shape) + (self.mw,), self.in_dtype, self.simd)

    @property
    def out_stream(self) -> StreamSpec:
        return StreamSpec(tuple(self.rows_shape) + (self.mh,), self.out_dtype, self.pe)

    def folding(self) -> dict:
        return {"pe": self.pe, "simd": self.simd}

    def fold_choices(self) -> dict:
        return {"pe": divisors(self.mh), "simd": divisors(self.mw)}

    def check_folding(self) -> None:
        if self.pe < 1 or self.mh % self.pe:
            raise FoldError(f"layer {self.name}: PE={self.pe} does not divide its {self.mh} output "
                            f"channels; pick one of {divisors(self.mh)}")
        if self.simd < 1 or self.mw % self.simd:
            raise FoldError(f"layer {self.name}: SIMD={self.simd} does not divide its {self.mw} input "
                            f"elements; pick one of {divisors(self.mw)}")


UNIT_KINDS: dict[str, type] = {"mvau": MatrixVectorUnit}


def _conv_out(size: int, k: int, s: int, pad_a: int, pad_b: int) -> int:
    return (size + pad_a + pad_b - k) // s + 1


@dataclass
class SlidingWindowUnit(Unit):
    """Sliding-window generator (FINN's ConvolutionInputGenerator) with line buffers.

    Input: frames of ``in_shape = (H, W, C)``, ``simd`` channels per beat. Output, for every
    output pixel ``(oy, ox)`` in row-major order, its ``kh x kw`` window. ``pads`` is
    ``(top, left, bottom, right)``; padded positions carry ``pad_value`` (a value of ``dtype``).

    Window element order: ``(ky, kx, c)`` (the matrix-vector unit's column order), or, when
    ``depthwise``, ``(c // simd, ky, kx, c % simd)`` so a vector-vector unit with ``pe == simd``
    sees all kernel positions of one channel group together.

    Folding: ``simd`` divides ``C`` (``simd`` channels of one kernel position per beat, in and
    out), or, for a non-depthwise window, ``simd == kh*kw*C``: the *parallel* (whole-window)
    mode, where an input beat is one whole pixel (``C`` elements) and an output beat one whole
    window (``kh*kw*C`` elements, same order). :attr:`in_fold` / :attr:`out_fold` give the beat
    sizes. (For a 1x1 kernel ``simd == C`` is both: one pixel is one window.)
    """

    kind: ClassVar[str] = "swg"
    name: str
    in_shape: tuple
    dtype: DataType
    kernel: tuple = (3, 3)
    stride: tuple = (1, 1)
    pads: tuple = (0, 0, 0, 0)
    pad_value: int = 0
    simd: int = 1
    depthwise: bool = False
    source: str = ""

    @property
    def out_hw(self) -> tuple[int, int]:
        h, w, _ = self.in_shape
        (kh, kw), (sh, sw), (pt, pl, pb, pr) = self.kernel, self.stride, self.pads
        return _conv_out(h, kh, sh, pt, pb), _conv_out(w, kw, sw, pl, pr)

    @property
    def window_elems(self) -> int:
        """Elements of one window, ``kh*kw*C``."""
        kh, kw = self.kernel
        return int(kh) * int(kw) * int(self.in_shape[2])

    @property
    def parallel(self) -> bool:
        """Whole-window mode: ``simd == kh*kw*C`` (never depthwise), one window per output beat."""
        return not self.depthwise and self.simd == self.window_elems

    @property
    def in_fold(self) -> int:
        """Elements per input beat: ``C`` in parallel mode, else ``simd``."""
        return int(self.in_shape[2]) if self.parallel else self.simd

    @property
    def out_fold(self) -> int:
        """Elements per output beat: ``kh*kw*C`` in parallel mode, else ``simd``."""
        return self.window_elems if self.parallel else self.simd

    @property
    def in_stream(self) -> StreamSpec:
        return StreamSpec(tuple(self.in_shape), self.dtype, self.in_fold)

    @property
    def out_stream(self) -> StreamSpec:
        oh, ow = self.out_hw
        kh, kw = self.kernel
        c = self.in_shape[2]
        if self.depthwise:
            return StreamSpec((oh, ow, c // self.simd, kh * kw, self.simd), self.dtype, self.simd)
        return StreamSpec((oh, ow, kh * kw * c), self.dtype, self.out_fold)

    def folding(self) -> dict:
        return {"simd": self.simd}

    def _simd_choices(self) -> list[int]:
        c = divisors(self.in_shape[2])
        return c if self.depthwise or self.window_elems in c else c + [self.window_elems]

    def fold_choices(self) -> dict:
        # a depthwise window's SIMD follows its vector-vector unit's PE (see tie_folds); a
        # non-depthwise one also takes kh*kw*C, the whole-window (parallel) mode
        return {} if self.depthwise else {"simd": self._simd_choices()}

    def check_folding(self) -> None:
        c = self.in_shape[2]
        if self.simd < 1 or (c % self.simd and not self.parallel):
            raise FoldError(f"layer {self.name}: SIMD={self.simd} does not divide its {c} channels; "
                            f"pick one of {self._simd_choices()}"
                            + ("" if self.depthwise else " (the last: a whole window per beat)"))


@dataclass
class VectorVectorUnit(DotProductUnit):
    """Depthwise convolution: per channel, a dot product over its own ``kh*kw`` window.

    Input is a depthwise-ordered sliding-window stream (see :class:`SlidingWindowUnit`) with
    ``pe`` channels per beat; ``weights`` is ``(C, K)`` with ``K = kh*kw``; thresholds and
    output as in :class:`MatrixVectorUnit`. One beat (``pe`` channels, one kernel position) per
    clock: ``(C/pe) * K`` cycles per output pixel.
    """

    kind: ClassVar[str] = "vvau"
    name: str
    weights: np.ndarray
    weight_dtype: DataType
    in_dtype: DataType
    out_dtype: DataType
    thresholds: np.ndarray | None = None
    out_bias: int = 0
    rows_shape: tuple = ()
    pe: int = 1
    ram_style: str = "auto"
    source: str = ""

    @property
    def channels(self) -> int:
        return int(self.weights.shape[0])

    @property
    def k(self) -> int:
        return int(self.weights.shape[1])


    @property
    def in_stream(self) -> StreamSpec:
        return StreamSpec(tuple(self.rows_shape) + (self.channels // self.pe, self.k, self.pe),
                          self.in_dtype, self.pe)

    @property
    def out_stream(self) -> StreamSpec:
        return StreamSpec(tuple(self.rows_shape) + (self.channels,), self.out_dtype, self.pe)

    def folding(self) -> dict:
        return {"pe": self.pe}

    def fold_choices(self) -> dict:
        return {"pe": divisors(self.channels)}

    def check_folding(self) -> None:
        if self.pe < 1 or self.channels % self.pe:
            raise FoldError(f"layer {self.name}: PE={self.pe} does not divide its {self.channels} "
                            f"channels; pick one of {divisors(self.channels)}")


@dataclass
class MaxPoolUnit(Unit):
    """Streaming max-pool over ``kernel`` windows with ``stride`` (no padding), ``pe`` channels
    per beat. On bipolar data the max is an OR of the element bits."""

    kind: ClassVar[str] = "maxpool"
    name: str
    in_shape: tuple
    dtype: DataType
    kernel: tuple = (2, 2)
    stride: tuple = (2, 2)
    pe: int = 1
    source: str = ""

    @property
    def out_hw(self) -> tuple[int, int]:
        h, w, _ = self.in_shape
        return _conv_out(h, self.kernel[0], self.stride[0], 0, 0), \
            _conv_out(w, self.kernel[1], self.stride[1], 0, 0)

    @property
    def in_stream(self) -> StreamSpec:
        return StreamSpec(tuple(self.in_shape), self.dtype, self.pe)

    @property
    def out_stream(self) -> StreamSpec:
        return StreamSpec(self.out_hw + (self.in_shape[2],), self.dtype, self.pe)

    def folding(self) -> dict:
        return {"pe": self.pe}

    def fold_choices(self) -> dict:
        return {"pe": divisors(self.in_shape[2])}

    def check_folding(self) -> None:
        c = self.in_shape[2]
        if self.pe < 1 or c % self.pe:
            raise FoldError(f"layer {self.name}: PE={self.pe} does not divide its {c} channels; "
                            f"pick one of {divisors(c)}")


@dataclass
class GlobalSumPoolUnit(Unit):
    """Sum of every pixel per channel: ``(H, W, C) -> (C,)``, ``pe`` channels per beat.

    The integer sum is exact; a global *average* divides by ``H*W`` downstream (the compiler
    folds that factor into the next scale or applies the model's Trunc there).
    """

    kind: ClassVar[str] = "gsumpool"
    name: str
    in_shape: tuple
    dtype: DataType
    pe: int = 1
    source: str = ""

    @property
    def out_dtype(self) -> DataType:
        h, w, _ = self.in_shape
        return DataType.for_range(min(0, self.dtype.min * h * w), self.dtype.max * h * w)

    @property
    def in_stream(self) -> StreamSpec:
        return StreamSpec(tuple(self.in_shape), self.dtype, self.pe)

    @property
    def out_stream(self) -> StreamSpec:
        return StreamSpec((self.in_shape[2],), self.out_dtype, self.pe)

    def folding(self) -> dict:
        return {"pe": self.pe}

    def fold_choices(self) -> dict:
        return {"pe": divisors(self.in_shape[2])}

    def check_folding(self) -> None:
        c = self.in_shape[2]
        if self.pe < 1 or c % self.pe:
            raise FoldError(f"layer {self.name}: PE={self.pe} does not divide its {c} channels; "
                            f"pick one of {divisors(c)}")


UNIT_KINDS.update({"swg": SlidingWindowUnit, "vvau": VectorVectorUnit, "maxpool": MaxPoolUnit,
                   "gsumpool": GlobalSumPoolUnit})


def register_unit(cls):
    """Class decorator: make a unit kind known to (de)serialisation."""
    UNIT_KINDS[cls.kind] = cls
    return cls


class FoldError(StreamfoldError):
    """A folding that the unit cannot implement."""


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


# ----------------------------------------------------------------------------- pipeline
@dataclass
class Pipeline:
    """The units in stream order, and the FIFO depth in front of each unit and after the last.

    ``fifo_depths[i]`` is the depth (in beats) of the FIFO that feeds unit ``i``;
    ``fifo_depths[-1]`` is the output FIFO. Zero means a direct connection.
    """

    units: list
    fifo_depths: list = field(default_factory=list)

    def __post_init__(self):
        if not self.fifo_depths:
            self.fifo_depths = [2] * (len(self.units) + 1)

    @property
    def in_stream(self) -> StreamSpec:
        return self.units[0].in_stream

    @property
    def out_stream(self) -> StreamSpec:
        return self.units[-1].out_stream

    def unit(self, name: str):
        for u in self.units:
            if u.name == name:
                return u
        raise KeyError(name)

    def check(self) -> None:
        """Every unit folds legally and neighbouring streams agree on shape and datatype."""
        for u in self.units:
            if hasattr(u, "check_folding"):
                u.check_folding()
        for a, b in zip(self.units, self.units[1:]):
            oa, ib = a.out_stream, b.in_stream
            if isinstance(b, VectorVectorUnit) and oa.shape != ib.shape:
                raise FoldError(f"{a.name} emits windows grouped by {oa.fold} channels but {b.name} "
                                f"reads groups of PE={b.pe}; they must match")
            if oa.elems_per_frame != ib.elems_per_frame or oa.dtype != ib.dtype:
                raise ValueError(f"stream mismatch between {a.name} ({oa.shape} {oa.dtype}) and "
                                 f"{b.name} ({ib.shape} {ib.dtype})")

    # serialisation: structure to JSON, arrays to an npz
    def to_files(self) -> tuple[dict, dict]:
        arrays: dict[str, np.ndarray] = {}
        units = []
        for u in self.units:
            d: dict[str, Any] = {"kind": u.kind}
            for f in dataclasses.fields(u):
                v = getattr(u, f.name)
                if isinstance(v, np.ndarray):
                    key = f"{u.name}.{f.name}"
                    arrays[key] = v
                    d[f.name] = {"array": key}
                elif isinstance(v, DataType):
                    d[f.name] = {"dtype": v.name}
                elif isinstance(v, tuple):
                    d[f.name] = {"tuple": list(v)}
                else:
                    d[f.name] = v
            units.append(d)
        return {"ir_version": IR_VERSION, "units": units, "fifo_depths": list(self.fifo_depths)}, arrays

    @staticmethod
    def from_files(doc: dict, arrays) -> "Pipeline":
        units = []
        for d in doc["units"]:
            cls = UNIT_KINDS[d["kind"]]
            kw = {}
            for f in dataclasses.fields(cls):
                if f.name not in d:
                    continue
                v = d[f.name]
                if isinstance(v, dict) and "array" in v:
                    v = np.asarray(arrays[v["array"]])
                elif isinstance(v, dict) and "dtype" in v:
                    v = DataType.parse(v["dtype"])
                elif isinstance(v, dict) and "tuple" in v:
                    v = tuple(v["tuple"])
                kw[f.name] = v
            units.append(cls(**kw))
        return Pipeline(units, list(doc.get("fifo_depths", [])))


def dumps(obj) -> str:
    """Deterministic JSON used for every file a build writes."""
    return json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n"


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, DataType):
        return o.name
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")

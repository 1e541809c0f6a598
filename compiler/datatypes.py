"""Element datatypes and stream descriptions: the vocabulary every other layer shares.

Stream conventions
------------------
* A frame is one tensor of ``StreamSpec.shape``, streamed in C order of that shape (channel-last:
  ``(H, W, C)`` for images, ``(..., features)`` for vectors).
* A beat carries ``StreamSpec.fold`` consecutive elements; element 0 sits in the least significant
  ``dtype.bits`` bits of the beat.
* Elements are integers in two's complement (signed) or plain binary (unsigned). A bipolar element
  (values -1/+1) is one bit: 1 means +1, 0 means -1.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np


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

"""What every unit kind is made of: the IR base class and the record a kind registers.

A *unit* is one streaming compute unit of the dataflow graph (a matrix-vector unit, a sliding
window, a pool ...): a plain dataclass holding its shapes, datatypes, integer parameters and
folding knobs. A *kind* is one module of this package that defines such a dataclass and, in a
:class:`UnitKind` record named ``KIND``, everything the rest of streamfold asks about it:

=====================  =================================================================
``ir``                 the dataclass (``kind`` ClassVar = the record's name)
``reference``          ``fn(unit, x) -> y``: integer semantics of frames of values
                       ``x (frames, *in_stream.shape)`` (the hardware is checked against it)
``cycles``             ``fn(unit) -> int``: clock cycles per frame at steady state (exact)
``timeline``           ``fn(unit, avail, frames, pace=1) -> (reads, outs)``: the beat-by-beat
                       schedule the FIFO analysis needs (:mod:`streamfold.compiler.fifo_sizing`)
``latest``             ``fn(unit, deadlines, frames, earliest, pace=1)``: its mirror image
``paced``              whether the schedules model a splitting width converter after the unit
``can_wait``           ``fn(unit, pace) -> bool``: whether ``latest`` gives a late schedule
``memories``           ``fn(unit) -> [MemSpec]``: its on-chip memories (estimates, line buffers)
``line_buffer``        whether those memories are line buffers (reported by tiling)
``features``           ``fn(unit, family) -> {"LUT": {...}, "FF": {...}, "exact": {...}}``:
                       the resource model's features (:mod:`streamfold.compiler.resources`)
``feature_names``      ``{"LUT": [...], "FF": [...]}`` in calibration order
``default_coef``       coefficients used before calibration
``model_key``          the calibration key (``calibration.json``); defaults to the name
``column_step``        ``fn(unit) -> ColumnStep | PER_PIXEL | None`` under column tiling:
                       how output columns read input columns, one to one, or ``None`` when
                       the unit needs the whole frame
``for_strip``          ``fn(unit, width) -> unit`` rebuilt for frames ``width`` columns wide
``multiport``          the schedules take and give one array per port: ``timeline(unit,
                       avails, frames) -> (reads per input port, outs per output port)``
                       (forks and joins; no ``latest``: the graph analysis runs them early)
``extra``              anything else, e.g. ``{"routing": True}`` for a kind that only moves
                       beats (fork, concat: never reported as the bottleneck when it ties)
``hardware``           ``"module:Class"`` of the Amaranth component (imported lazily by
                       :mod:`streamfold.hw`; the compiler never imports Amaranth)
=====================  =================================================================

Adding a kind is one new module here and one line in :mod:`streamfold.compiler.units`
(see ``docs/architecture.md``).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

from ..datatypes import StreamSpec
from ..errors import StreamfoldError


class FoldError(StreamfoldError):
    """A folding that the unit cannot implement."""


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def conv_out(size: int, k: int, s: int, pad_a: int, pad_b: int) -> int:
    """Output size of a window scan: ``(size + pads - k) // s + 1``."""
    return (size + pad_a + pad_b - k) // s + 1


class Unit:
    """Base of every unit's IR dataclass (subclasses are dataclasses with a ``name``).

    A unit has ``n_inputs`` input streams and ``n_outputs`` output streams; most have one of
    each, given by :attr:`in_stream` / :attr:`out_stream`. :meth:`input_streams` and
    :meth:`output_streams` list them all (what the graph checks and wires).
    """

    kind: ClassVar[str] = "unit"
    name: str

    @property
    def in_stream(self):  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def out_stream(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def input_streams(self) -> list:
        return [self.in_stream]

    def output_streams(self) -> list:
        return [self.out_stream]

    def folding(self) -> dict:
        """The unit's folding knobs (what fold.json holds for it)."""
        return {}

    def fold_choices(self) -> dict:
        """For each folding knob, the values the unit accepts."""
        return {}

    def check_folding(self) -> None:
        """Raise :class:`FoldError` naming the layer when a knob is not implementable."""

    def check_input(self, port: int, stream, producer: str) -> None:
        """Raise :class:`FoldError` when input ``port`` cannot read ``stream`` (written by
        ``producer``) beyond what every edge checks (same elements per frame and datatype)."""

    def tie_producer(self, producer: "Unit") -> "Unit":
        """The unit feeding this one, with the knobs that must follow this unit's fold set
        (a depthwise window groups channels as its vector-vector unit reads them)."""
        return producer

    def with_folding(self, **knobs) -> "Unit":
        """The unit with ``knobs`` set (a kind may answer with a unit of another kind, as the
        sliding window does for a whole-window fold)."""
        return dataclasses.replace(self, **knobs) if knobs else self

    def replace(self, **fields) -> "Unit":
        """The unit with other field values (shapes, for tiling), of the kind they select."""
        return dataclasses.replace(self, **fields)


class ElementFolded(Unit):
    """A stream unit whose one knob is ``pe``, the elements per beat, dividing ``channels``."""

    def folding(self) -> dict:
        return {"pe": self.pe}

    def fold_choices(self) -> dict:
        return {"pe": divisors(self.channels)}

    def check_folding(self) -> None:
        if self.pe < 1 or self.channels % self.pe:
            raise FoldError(f"layer {self.name}: PE={self.pe} does not divide its {self.channels} "
                            f"channels; pick one of {divisors(self.channels)}")


class Elementwise(ElementFolded):
    """A unit that maps each element of a ``shape`` frame (channels last) from ``in_dtype`` to
    ``out_dtype`` (thresholds, tables): one stream in, one out, ``pe`` elements per beat."""

    @property
    def channels(self) -> int:
        return int(self.shape[-1])

    @property
    def in_stream(self):
        return StreamSpec(tuple(self.shape), self.in_dtype, self.pe)

    @property
    def out_stream(self):
        return StreamSpec(tuple(self.shape), self.out_dtype, self.pe)


@dataclass(frozen=True)
class ColumnStep:
    """How one layer maps input columns to output columns under tiling: output column ``j``
    reads input columns ``j*stride - pad_left .. j*stride - pad_left + kernel - 1``."""

    unit: str
    kernel: int
    stride: int
    pad_left: int
    pad_right: int

    def out_width(self, w: int) -> int:
        return (w + self.pad_left + self.pad_right - self.kernel) // self.stride + 1


#: :attr:`UnitKind.column_step` of a unit whose output columns are its input columns
PER_PIXEL = "per pixel"


def _no_memories(unit) -> list:
    return []


def _whole_frame(unit):
    return None


def _always(unit, pace: int) -> bool:
    return True


@dataclass(frozen=True)
class UnitKind:
    """Everything streamfold needs to know about one unit kind (see the module docstring)."""

    name: str
    ir: type
    reference: Callable
    cycles: Callable
    hardware: str
    timeline: Callable | None = None
    latest: Callable | None = None
    paced: bool = False
    multiport: bool = False
    can_wait: Callable = _always
    memories: Callable = _no_memories
    line_buffer: bool = False
    features: Callable | None = None
    feature_names: dict = field(default_factory=dict)
    default_coef: dict = field(default_factory=dict)
    model_key: str = ""
    column_step: Callable = _whole_frame
    for_strip: Callable | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if self.ir.kind != self.name:
            raise ValueError(f"unit kind {self.name!r}: its dataclass says kind {self.ir.kind!r}")
        if not self.model_key:
            object.__setattr__(self, "model_key", self.name)

"""What the two sliding-window kinds share: fields, output shape, window order, reference, tiling.

A sliding-window generator (FINN's ConvolutionInputGenerator) reads frames of
``in_shape = (H, W, C)`` and emits, for every output pixel ``(oy, ox)`` in row-major order, its
``kh x kw`` window. ``pads`` is ``(top, left, bottom, right)``; padded positions carry
``pad_value`` (a value of ``dtype``).

Window element order: ``(ky, kx, c)`` (the matrix-vector unit's column order), or, when
``depthwise``, ``(c // simd, ky, kx, c % simd)`` so a vector-vector unit with ``pe == simd`` sees
all kernel positions of one channel group together.

Two kinds implement it, and the fold chooses between them (:meth:`WindowUnit.with_folding`):

* ``swg`` (:mod:`.sliding_window`): a circular line buffer, ``simd`` (dividing ``C``) channels
  of one kernel position per beat, in and out;
* ``swg_whole`` (:mod:`.whole_window`): ``simd == kh*kw*C`` (never depthwise): one pixel per
  input beat, one whole window per output beat, same element order. (For a 1x1 kernel
  ``simd == C`` is both: one pixel is one window; the whole-window kind takes it.)
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..datatypes import DataType
from .base import ColumnStep, FoldError, Unit, conv_out, divisors


@dataclass
class WindowUnit(Unit):
    """Fields and geometry of a sliding window (module docstring); the kinds are its subclasses."""

    kind: ClassVar[str] = "window"
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
    #: whole-window kind only: a skid register behind the output register, so the input side's
    #: ready is a register and never waits on the consumer's (:mod:`streamfold.hw.parallel_window`)
    skid: int = 0

    @classmethod
    def fits(cls, unit: "WindowUnit") -> bool:  # pragma: no cover - each kind says
        raise NotImplementedError

    @property
    def out_hw(self) -> tuple[int, int]:
        h, w, _ = self.in_shape
        (kh, kw), (sh, sw), (pt, pl, pb, pr) = self.kernel, self.stride, self.pads
        return conv_out(h, kh, sh, pt, pb), conv_out(w, kw, sw, pl, pr)

    @property
    def window_elems(self) -> int:
        """Elements of one window, ``kh*kw*C``."""
        kh, kw = self.kernel
        return int(kh) * int(kw) * int(self.in_shape[2])

    def folding(self) -> dict:
        return {"simd": self.simd}

    def _simd_choices(self) -> list[int]:
        c = divisors(self.in_shape[2])
        return c if self.depthwise or self.window_elems in c else c + [self.window_elems]

    def fold_choices(self) -> dict:
        # a depthwise window's SIMD follows its vector-vector unit's PE (see folding.tie_folds); a
        # non-depthwise one also takes kh*kw*C, the whole-window kind
        return {} if self.depthwise else {"simd": self._simd_choices()}

    def check_folding(self) -> None:
        c = self.in_shape[2]
        if self.simd < 1 or (c % self.simd and self.simd != self.window_elems) or \
                (self.depthwise and c % self.simd):
            raise FoldError(f"layer {self.name}: SIMD={self.simd} does not divide its {c} channels; "
                            f"pick one of {self._simd_choices()}"
                            + ("" if self.depthwise else " (the last: a whole window per beat)"))
        if not type(self).fits(self):
            raise FoldError(f"layer {self.name}: SIMD={self.simd} is not a fold of a {self.kind} unit")
        if isinstance(self.skid, bool) or self.skid not in (0, 1):
            raise FoldError(f"layer {self.name}: skid is 0 or 1 (1: a skid register behind the output "
                            f"register), got {self.skid!r}")
        if self.skid and self.kind != "swg_whole":
            raise FoldError(f"layer {self.name}: skid is a whole-window unit's knob (SIMD = kh*kw*C = "
                            f"{self.window_elems}); a line-buffer window's input ready never waits on its "
                            "output, so it needs none")

    def replace(self, **fields) -> "WindowUnit":
        """The window with other fields, of the kind that implements them."""
        return window_unit(**dict(_fields(self), **fields))

    def with_folding(self, **knobs) -> "WindowUnit":
        return self.replace(**knobs) if knobs else self


def _fields(u) -> dict:
    return {f.name: getattr(u, f.name) for f in dataclasses.fields(u)}


def window_unit(**fields) -> WindowUnit:
    """A sliding window of the kind its fold selects (each kind's :meth:`WindowUnit.fits`)."""
    probe = _Probe(**fields)
    for cls in WindowUnit.__subclasses__():
        if cls is not _Probe and cls.fits(probe):
            return cls(**fields)
    raise FoldError(f"layer {fields.get('name')}: no sliding-window kind takes SIMD={fields.get('simd')}; "
                    f"pick one of {probe._simd_choices()}")


@dataclass
class _Probe(WindowUnit):
    """A window not yet given a kind (what :func:`window_unit` asks the kinds about)."""

    @classmethod
    def fits(cls, unit) -> bool:
        return False


def reference(u: WindowUnit, x: np.ndarray) -> np.ndarray:
    """Sliding windows, ``(frames, OH, OW, K*C)`` in ``(ky, kx, c)`` order, or
    ``(frames, OH, OW, C/simd, K, simd)`` when ``depthwise``."""
    x = np.asarray(x, dtype=np.int64)
    n, h, w, c = x.shape
    (kh, kw), (sh, sw), (pt, pl, pb, pr) = u.kernel, u.stride, u.pads
    oh, ow = u.out_hw
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=int(u.pad_value))
    win = np.empty((n, oh, ow, kh, kw, c), dtype=np.int64)
    for ky in range(kh):
        for kx in range(kw):
            win[:, :, :, ky, kx, :] = xp[:, ky:ky + sh * (oh - 1) + 1:sh, kx:kx + sw * (ow - 1) + 1:sw, :]
    if u.depthwise:
        cf = c // u.simd
        win = win.reshape(n, oh, ow, kh, kw, cf, u.simd).transpose(0, 1, 2, 5, 3, 4, 6)
        return win.reshape(n, oh, ow, cf, kh * kw, u.simd)
    return win.reshape(n, oh, ow, kh * kw * c)


def column_step(u: WindowUnit) -> ColumnStep:
    return ColumnStep(u.name, int(u.kernel[1]), int(u.stride[1]), int(u.pads[1]), int(u.pads[3]))


def for_strip(u: WindowUnit, width: int) -> WindowUnit:
    h, _, c = u.in_shape
    return u.replace(in_shape=(h, int(width), c))

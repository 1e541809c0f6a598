"""The vector-vector unit: depthwise convolution, per channel a dot product over its own window.

Input is a depthwise-ordered sliding-window stream (:mod:`.sliding_window`) with ``pe`` channels
per beat; ``weights`` is ``(C, K)`` with ``K = kh*kw``; thresholds and output as in
:mod:`.dot_product`. One beat (``pe`` channels, one kernel position) per clock:
``(C/pe) * K`` cycles per output pixel. Hardware: :mod:`streamfold.hw.vvau`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..datatypes import StreamSpec
from ..memory import MemSpec
from ..resource_model import clog2, dsp_product, exact, mem_features, shapes_to_specs
from ..rom_images import vvau_threshold_image, vvau_weight_image
from ..schedule import BIG, asap, rchain, unbounded_tail
from .base import FoldError, UnitKind, divisors
from .dot_product import (DECOUPLED_LATENCY, DotProductUnit, activate, add_decoupled_buffer, for_strip,
                          pixel_step, stage_flipflops)
from .window import WindowUnit

#: cycles from a channel group's last input beat to its output beat (hw.vvau)
VVAU_LATENCY = 4


def latency(u) -> int:
    """:data:`VVAU_LATENCY` plus the registers ``tree_stages`` and ``out_stages`` add."""
    return VVAU_LATENCY + u.tree_stages + u.out_stages + DECOUPLED_LATENCY * bool(u.decoupled)


@dataclass
class VectorVectorUnit(DotProductUnit):
    """Depthwise convolution (module docstring)."""

    kind: ClassVar[str] = "vvau"
    pe: int = 1
    ram_style: str = "auto"
    res_type: str = "auto"
    tree_stages: int = 0
    out_stages: int = 0
    decoupled: int = 0
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

    def tie_producer(self, producer):
        """A depthwise window before it emits groups of ``pe`` channels."""
        if isinstance(producer, WindowUnit) and producer.depthwise and producer.simd != self.pe:
            return producer.with_folding(simd=self.pe)
        return producer

    def check_input(self, port: int, stream, producer: str) -> None:
        if stream.shape != self.in_stream.shape:
            raise FoldError(f"{producer} emits windows grouped by {stream.fold} channels but {self.name} "
                            f"reads groups of PE={self.pe}; they must match")

    def check_folding(self) -> None:
        if self.pe < 1 or self.channels % self.pe:
            raise FoldError(f"layer {self.name}: PE={self.pe} does not divide its {self.channels} "
                            f"channels; pick one of {divisors(self.channels)}")


def reference(u: VectorVectorUnit, x: np.ndarray) -> np.ndarray:
    """x ``(frames, *rows, C/pe, K, pe)`` values -> outputs ``(frames, *rows, C)``."""
    x = np.asarray(x, dtype=np.int64)
    cf, k, pe = u.channels // u.pe, u.k, u.pe
    lead = x.shape[:-3]
    xv = x.reshape(lead + (cf, k, pe)).swapaxes(-1, -2).reshape(lead + (cf * pe, k))  # (..., C, K)
    dot = (xv * np.asarray(u.weights, dtype=np.int64)).sum(axis=-1)
    return activate(u, (dot + k) // 2 if u.binary else dot)


def cycles(u: VectorVectorUnit) -> int:
    """One input beat (``pe`` channels, one kernel position) per clock."""
    return u.rows * (u.channels // u.pe) * u.k


def timeline(u, avail, frames):
    """One beat per clock; a channel group's output :data:`VVAU_LATENCY` after its ``K``-th beat."""
    r = asap(avail)
    return r, r[u.k - 1::u.k] + latency(u)


def latest(u, dl, frames, earliest):
    late = np.full(earliest.size, BIG, dtype=np.int64)
    late[u.k - 1::u.k] = dl - latency(u)
    return unbounded_tail(rchain(late), earliest)


def memories(u) -> list[MemSpec]:
    """Weight ROM (``C/pe * K`` words of ``pe`` weights) and threshold ROM (``C/pe`` words)."""
    # the images the hardware loads (compiler/rom_images.py); their contents are not given to the
    # estimate (its soft-logic ROM features were calibrated on whole ROM widths)
    mems = []
    for name, image in (("weights", vvau_weight_image), ("thresholds", vvau_threshold_image)):
        img = image(u)
        if img.in_rom:
            mems.append(MemSpec(name, img.depth, img.width, "rom", u.ram_style or "auto"))
    return mems


def features(u, family: str) -> dict:
    """``pe`` products per clock, weight/threshold ROMs, accumulators, comparators (the
    matrix-vector unit's structure with SIMD = 1 per lane)."""
    mem = mem_features(shapes_to_specs(memories(u), "rom", u.ram_style or "auto"), family)
    pe, K = u.pe, u.k
    CF = u.channels // pe
    wd, xd = u.weight_dtype, u.in_dtype
    ab, ob = u.acc_dtype.bits, u.out_dtype.bits
    n_thr = u.n_thresholds if u.thresholds is not None else 0
    dsp = neg = mul = pop = soft = 0
    if u.binary:
        pop = pe
    elif wd.bipolar or xd.bipolar:
        neg = pe * ((xd if wd.bipolar else wd).bits + 1)
    else:
        per = dsp_product(wd, xd, family) if u.res_type != "lut" else 0
        if u.res_type == "lut" and dsp_product(wd, xd, family):  # partial products, by choice
            soft = pe * wd.bits * xd.bits
        elif per:
            dsp = pe * per
        else:
            mul = pe * wd.bits * xd.bits
    ctr = clog2(CF) * 3 + clog2(K) + clog2(CF * K)
    lut = {"const": 1, "pop": pop, "neg": neg, "mul": mul, "acc": pe * ab, "cmp": pe * n_thr * ab,
           "rom": mem["rom_lut"], "romd": mem["rom_deep"], "ctr": ctr, "dsp": dsp, "soft": soft}
    ff = {"const": 1, "x": pe * xd.bits, "acc": pe * ab, "out": pe * ob, "mem": mem["mem_reg"],
          "ctr": ctr}
    out = {"LUT": lut, "FF": ff, "exact": exact(mem, dsp), "memories": mem["maps"]}
    if u.tree_stages or u.out_stages:  # one product per lane: the tree is the product itself
        soft_terms = u.res_type == "lut" and not (u.binary or wd.bipolar or xd.bipolar)
        terms, bits = (wd.bits, xd.bits + wd.bits // 2) if soft_terms else (1, 1 if u.binary else wd.bits + xd.bits)
        out["fixed"] = {"FF": stage_flipflops(u, terms, bits, CF)}
    return add_decoupled_buffer(u, out, family)


KIND = UnitKind(
    name="vvau", ir=VectorVectorUnit, reference=reference, cycles=cycles,
    hardware="streamfold.hw.vvau:VectorVectorUnitHW",
    timeline=timeline, latest=latest, memories=memories, features=features,
    feature_names={"LUT": ["const", "pop", "neg", "mul", "acc", "cmp", "rom", "romd", "ctr", "dsp", "soft"],
                   "FF": ["const", "x", "acc", "out", "mem", "ctr"]},
    default_coef={"LUT": {"const": 20, "pop": 2, "neg": 3, "mul": 2, "acc": 1, "cmp": 0.8, "rom": 1.7,
                          "romd": 5, "ctr": 1, "dsp": 3, "soft": 2.5},
                  "FF": {"const": 10, "x": 1, "acc": 2, "out": 1, "mem": 1, "ctr": 1}},
    column_step=pixel_step, for_strip=for_strip,
)

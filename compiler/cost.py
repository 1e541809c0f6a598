"""Cost models of every unit kind: cycles per frame (exact at steady state).

Resource models (LUT/FF/BRAM/DSP) join these, calibrated against Yosys.
"""
from __future__ import annotations

from .ir import MatrixVectorUnit

_CYCLES = {}


def cycles_of(kind: str):
    def deco(fn):
        _CYCLES[kind] = fn
        return fn
    return deco


@cycles_of("mvau")
def mvau_cycles(u: MatrixVectorUnit) -> int:
    """One (neuron fold, synapse fold) step per clock for every input vector."""
    return u.rows * u.neuron_fold * u.synapse_fold


def unit_cycles(unit) -> int:
    """Steady-state clock cycles the unit needs per frame."""
    return int(_CYCLES[unit.kind](unit))


def pipeline_cycles(pipeline) -> tuple[int, str]:
    """(cycles per frame of the pipeline, name of the bottleneck unit)."""
    worst = max(pipeline.units, key=unit_cycles)
    return unit_cycles(worst), worst.name


# ----------------------------------------------------------------------------- convolution units
@cycles_of("swg")
def swg_cycles(u) -> int:
    """Sliding-window generator (:mod:`streamfold.hw.sliding_window`), exact at steady state.

    ``max(out_beats + fill, in_beats)`` with ``out_beats = OH*OW*kh*kw*C/simd``,
    ``in_beats = H*W*C/simd`` and ``fill = max(0, L0 + 1 - (F_last + D - H*W)) * C/simd``: while
    a frame's last window is read out, the buffer (``D`` pixels) can already take the next frame's
    pixels up to ``F_last + D - H*W``; the first window needs pixels up to ``L0``, the rest arrive
    at one word per clock with the output idle (``L``, ``F``, ``D``: :mod:`.memory`).

    Parallel (whole-window) mode, ``simd == kh*kw*C`` (:mod:`streamfold.hw.parallel_window`): one
    scan step per clock, ``(vy1 - vy0 + 1) * (vx1 - vx0 + 1)`` steps per frame
    (:func:`.memory.parallel_geometry`): ``H*W`` without padding, plus the padded rows/columns
    that end a window (e.g. ``(H+1)*(W+1)`` for a 3x3 "same" convolution).
    """
    from .memory import parallel_geometry, window_geometry

    if getattr(u, "parallel", False):
        return parallel_geometry(u).steps
    g = window_geometry(u)
    preload = g.last_first + g.buffer_pixels - g.hw
    fill = max(0, g.first_last + 1 - preload) * g.cf
    return max(g.out_beats + fill, g.in_beats)


@cycles_of("vvau")
def vvau_cycles(u) -> int:
    """One input beat (``pe`` channels, one kernel position) per clock."""
    return u.rows * (u.channels // u.pe) * u.k


@cycles_of("maxpool")
def maxpool_cycles(u) -> int:
    """One input beat per clock; the output (fewer beats) never stalls it."""
    h, w, c = u.in_shape
    return h * w * (c // u.pe)


@cycles_of("gsumpool")
def gsumpool_cycles(u) -> int:
    """One input beat per clock; the ``C/pe`` output beats leave during the last pixel."""
    h, w, c = u.in_shape
    return h * w * (c // u.pe)

"""Random stream units built straight from the IR (no ONNX), and a Verilator check of one unit."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from streamfold.compiler.ir import BIPOLAR, DataType, MatrixVectorUnit, DataflowGraph, divisors
from streamfold.hw import emit_design
from streamfold.sim.reference import run_pipeline
from streamfold.sim.run import measure, simulate_stream
from streamfold.sim.simulate import axis_width
from streamfold.sim.streams import pack, unpack

SIM_CACHE = os.environ.get("STREAMFOLD_SIM_CACHE") or str(Path("build") / "sim_cache")


def random_dtype(rng, bits: int, signed: bool) -> DataType:
    if bits == 1 and signed:
        return BIPOLAR
    return DataType(bits, signed)


def random_values(rng, dtype: DataType, shape) -> np.ndarray:
    if dtype.bipolar:
        return rng.choice([-1, 1], size=shape).astype(np.int64)
    return rng.integers(dtype.min, dtype.max + 1, size=shape)


def random_mvau(rng, *, mw=None, mh=None, wbits=None, wsigned=None, ibits=None, isigned=None,
                out_bits=None, raw=False, pe=None, simd=None, rows_shape=()) -> MatrixVectorUnit:
    mw = mw or int(rng.integers(1, 40))
    mh = mh or int(rng.integers(1, 24))
    wdt = random_dtype(rng, wbits or int(rng.integers(1, 9)), bool(rng.integers(2)) if wsigned is None else wsigned)
    idt = random_dtype(rng, ibits or int(rng.integers(1, 9)), bool(rng.integers(2)) if isigned is None else isigned)
    w = random_values(rng, wdt, (mh, mw))
    pe = pe or int(rng.choice(divisors(mh)))
    simd = simd or int(rng.choice(divisors(mw)))
    u = MatrixVectorUnit("mvau", w, wdt, idt, BIPOLAR, rows_shape=rows_shape, pe=pe, simd=simd)
    if raw:
        u.out_dtype = u.acc_dtype
        return u
    ob = out_bits or int(rng.integers(1, 5))
    lo, hi = u.acc_range
    if ob == 1 and rng.integers(2):
        odt, n = BIPOLAR, 1
    else:
        odt = DataType(ob, bool(rng.integers(2)))
        n = odt.max - odt.min
    thr = np.sort(rng.integers(lo - 1, hi + 2, size=(mh, n)), axis=1)
    u.thresholds, u.out_dtype, u.out_bias = thr, odt, (0 if odt.bipolar else odt.min)
    return u


def _verilator_ok() -> bool:
    try:
        from streamfold.sim.verilator_build import tool_env
    except ImportError:  # pragma: no cover
        return False
    return shutil.which("verilator", path=tool_env()["PATH"]) is not None


#: Verilator is a core dependency; without it these tests skip, and under ``make test``
#: (STREAMFOLD_NO_SKIP=1, see conftest.py) a skip fails the run.
needs_verilator = pytest.mark.skipif(not _verilator_ok(), reason="verilator not installed")


def check_pipeline(pipeline: DataflowGraph, frames: int, rng, *, p_gap=0.3, p_stall=0.3, engine="verilator",
                   seed=0, rom="auto", design=None, build_dir=None, stall_limit=None) -> dict:
    """Stream random frames through the pipeline's Verilog; every integer must equal the reference.

    ``rom``: how :func:`streamfold.hw.emit_design` places the weight/threshold ROMs (``auto``,
    ``inline`` or ``file``); the memory files go to the simulator with the Verilog. ``design``:
    an already emitted design of ``pipeline`` (saves elaborating it again)."""
    ins, outs = pipeline.in_stream, pipeline.out_stream
    x = random_values(rng, ins.dtype, (frames,) + tuple(ins.shape))
    want = run_pipeline(pipeline, x)
    design = design or emit_design(pipeline, rom=rom)
    kw = {"stall_limit": stall_limit} if stall_limit else {}
    res = simulate_stream(design.verilog, "streamfold_top", pack(x, ins), axis_width(ins.beat_bits),
                          axis_width(outs.beat_bits), outs.beats_per_frame, ins.beats_per_frame,
                          engine=engine, p_gap=p_gap, p_stall=p_stall, seed=seed,
                          build_dir=build_dir or SIM_CACHE, data_files=design.files, **kw)
    assert not res.stalled, res.stall
    assert res.tlast_errors() == []
    assert res.extra_out_beats == 0
    mask = (1 << outs.beat_bits) - 1
    got = unpack([b & mask for b in res.out_beats], outs)
    np.testing.assert_array_equal(got, want)
    return {"result": res, "measure": measure(res), "design": design}


def lint_units(units: dict, tmp_path) -> None:
    """Each unit's component (``{case name: IR unit}``) as Verilog, linted by Verilator with
    ``-Wall``: no error."""
    import subprocess

    from amaranth.back import verilog

    from streamfold.hw.registry import build_unit
    from streamfold.sim.verilator_build import tool_env

    env = tool_env()
    exe = shutil.which("verilator", path=env["PATH"])
    for n, u in units.items():
        top = "sf_" + u.kind
        src = tmp_path / f"{n}.v"
        src.write_text(verilog.convert(build_unit(u), name=top, emit_src=False))
        r = subprocess.run([exe, "--lint-only", "-Wall", "-Wno-fatal", "--top-module", top, src.name],
                           cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120)
        assert r.returncode == 0, f"{n}: {r.stderr}"
        assert "%Error" not in r.stderr, f"{n}: {r.stderr}"

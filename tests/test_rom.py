"""Weight/threshold ROMs: inline ``Memory`` or ``streamfold_rom`` + ``$readmemh`` memory files.

* emission: which ROMs go to files, file names and format, determinism, the appended module;
* the ROM component in Amaranth's simulator (always inline there);
* Verilator: units whose ROMs live in memory files are bit-exact under gaps and back-pressure,
  on both engines (C++ harness and cocotb), with ``ram_style`` variants, including a unit large
  enough to use files by default; missing files are an error, not silent zeros.
"""
from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest

from streamfold.compiler.ir import DataType, DataflowGraph, VectorVectorUnit
from streamfold.hw import ROM, ROM_INLINE_MAX_BITS, emit_design, emit_verilog, rom_files
from streamfold.hw.rom import hex_image, rom_module_source
from streamfold.hw.simulate import run_stream

from unit_cases import SIM_CACHE, check_pipeline, needs_verilator, random_mvau




def big_mvau(seed=11, **kw):
    """2-bit weights, 128 x 256: 64 Kib of weights (in a file by default), 4,096 cycles a vector."""
    rng = np.random.default_rng(seed)
    knobs = dict(mw=256, mh=128, wbits=2, wsigned=True, ibits=2, isigned=False, out_bits=2,
                 pe=2, simd=4)
    knobs.update(kw)
    u = random_mvau(rng, **knobs)
    u.name = "fc0"
    return u, rng


def small_mvau(seed=3, name="fc1/MatMul:0", **kw):
    rng = np.random.default_rng(seed)
    knobs = dict(mw=12, mh=6, wbits=3, wsigned=True, ibits=2, isigned=False, out_bits=2,
                 pe=2, simd=3)
    knobs.update(kw)
    u = random_mvau(rng, **knobs)
    u.name = name
    return u, rng


# ----------------------------------------------------------------------------- emission
def test_hex_image_format():
    assert hex_image([0, 5, 15], 4) == "0\n5\nf\n"
    assert hex_image([1, 0x1ff], 9) == "001\n1ff\n"
    assert hex_image([1, 0], 1) == "1\n0\n"
    with pytest.raises(ValueError):
        hex_image([16], 4)


def test_rom_module_variants():
    auto = rom_module_source("auto")
    assert "module streamfold_rom #(" in auto and "rom_style" not in auto
    assert "$readmemh(INIT_FILE, mem);" in auto and "if (en) data <= mem[addr];" in auto
    blk = rom_module_source("block")
    assert "module streamfold_rom_block #(" in blk
    assert '(* rom_style = "block", ram_style = "block" *)' in blk


def test_small_design_stays_inline():
    u, _ = small_mvau()
    p = DataflowGraph([u], [2, 2])
    d = emit_design(p)
    assert d.files == {}
    assert "streamfold_rom" not in d.verilog and "$readmemh" not in d.verilog
    assert d.verilog == emit_verilog(p)


def test_large_design_uses_files_and_is_deterministic():
    u, _ = big_mvau()
    small, _ = small_mvau(mw=128, mh=4, pe=4, simd=128)  # one weight word: a constant
    small.in_dtype = u.out_dtype
    p = DataflowGraph([u, small], [2, 2, 2])
    d = emit_design(p)
    w_bits = u.weights.size * 2
    assert w_bits > ROM_INLINE_MAX_BITS
    assert list(d.files) == ["fc0_weights.hex"]  # thresholds: 64 words, small enough to inline
    lines = d.files["fc0_weights.hex"].splitlines()
    assert len(lines) == u.neuron_fold * u.synapse_fold
    assert {len(l) for l in lines} == {u.pe * u.simd * 2 // 4}
    from streamfold.hw.mvau import weight_words

    assert [int(l, 16) for l in lines] == weight_words(u)
    assert d.verilog.count("module streamfold_rom #(") == 1
    assert '.INIT_FILE("fc0_weights.hex")' in d.verilog
    assert len(d.verilog) < 200_000  # vs one `mem[i] = ...;` line per word inline
    again = emit_design(DataflowGraph([big_mvau()[0], small], [2, 2, 2]))
    assert again.verilog == d.verilog and again.files == d.files

    # every ROM in a file; names from the unit names, sanitised
    f = emit_design(p, rom="file")
    assert set(f.files) == {"fc0_weights.hex", "fc0_thresholds.hex"}
    # thresholds and weights of a unit with a non-identifier name
    s2, _ = small_mvau()
    f2 = emit_design(DataflowGraph([s2], [2, 2]), rom="file")
    assert set(f2.files) == {"fc1_MatMul_0_weights.hex", "fc1_MatMul_0_thresholds.hex"}
    # everything inline on request
    i = emit_design(p, rom="inline")
    assert i.files == {} and "streamfold_rom" not in i.verilog


def test_ram_style_variant_and_threshold_knob():
    u, _ = small_mvau()
    u.ram_style = "distributed"
    d = emit_design(DataflowGraph([u], [2, 2]), rom="auto", inline_max_bits=0)
    assert len(d.files) == 2
    assert "module streamfold_rom_distributed #(" in d.verilog
    assert re.search(r"\bstreamfold_rom_distributed\s+#\(", d.verilog)
    assert "module streamfold_rom #(" not in d.verilog


def test_verilog_design_write(tmp_path):
    u, _ = small_mvau()
    d = emit_design(DataflowGraph([u], [2, 2]), rom="file")
    paths = d.write(tmp_path)
    assert paths[0].name == "streamfold_top.v"
    assert sorted(p.name for p in paths[1:]) == sorted(d.files)
    for name, text in d.files.items():
        assert (tmp_path / name).read_text() == text


# ----------------------------------------------------------------------------- memory images
def _random_vvau(rng, c, k, pe, wdt, xdt, n_thr):
    from unit_cases import random_values

    u = VectorVectorUnit("dw/conv", random_values(rng, wdt, (c, k)), wdt, xdt, xdt, pe=pe)
    if n_thr is not None:
        lo, hi = u.acc_range
        u.thresholds = np.sort(rng.integers(lo - 1, hi + 2, size=(c, n_thr)), axis=1)
        u.out_dtype = DataType.uint_type(max(1, n_thr.bit_length()))
    else:
        u.out_dtype = u.acc_dtype
    return u


def _check_words_and_bits(img):
    """``words()`` and ``bit_matrix()`` of an image agree with its codes (lane 0 in the LSBs)."""
    words, bm = img.words(), img.bit_matrix()
    assert len(words) == img.depth and bm.shape == (img.depth, img.width)
    for w in range(img.depth):
        assert words[w] == sum(int(c) << (l * img.bits) for l, c in enumerate(img.codes[w]))
        for l in range(img.lanes):
            for b in range(img.bits):
                assert bm[w, l * img.bits + b] == (img.codes[w, l] >> b) & 1


def test_mvau_rom_images_follow_the_stated_layout():
    """Word nf*SF+sf, lane p*simd+s = W[nf*pe+p, sf*simd+s]; word nf, lane p*n+k = T[nf*pe+p, k]."""
    from streamfold.compiler.rom_images import mvau_threshold_image, mvau_weight_image

    for seed in range(8):
        rng = np.random.default_rng(seed)
        u = random_mvau(rng, raw=seed == 7)
        NF, SF, pe, simd, n = u.neuron_fold, u.synapse_fold, u.pe, u.simd, u.n_thresholds
        wi, ti = mvau_weight_image(u), mvau_threshold_image(u)
        assert wi.codes.shape == (NF * SF, pe * simd) and wi.bits == u.weight_dtype.bits
        for nf in range(NF):
            for sf in range(SF):
                for p in range(pe):
                    for s in range(simd):
                        v = u.weight_dtype.decode(wi.codes[nf * SF + sf, p * simd + s])
                        assert v == u.weights[nf * pe + p, sf * simd + s]
        assert ti.bits == u.acc_dtype.bits and ti.depth == NF
        if u.thresholds is None:
            assert ti.lanes == 0 and not ti.in_rom
        else:
            assert ti.lanes == pe * n and ti.in_rom == (NF > 1 and n > 0)
            for nf in range(NF):
                for p in range(pe):
                    for k in range(n):
                        v = u.acc_dtype.decode(ti.codes[nf, p * n + k])
                        assert v == u.thresholds[nf * pe + p, k]
        assert wi.in_rom == (NF * SF > 1)
        _check_words_and_bits(wi)
        _check_words_and_bits(ti)


@pytest.mark.parametrize("c,k,pe,w,x,n_thr", [(8, 9, 2, "INT3", "UINT4", 3), (6, 25, 6, "BIPOLAR", "INT4", 15),
                                              (4, 4, 1, "BIPOLAR", "BIPOLAR", 1), (3, 9, 3, "UINT2", "INT8", None)])
def test_vvau_rom_images_follow_the_stated_layout_and_are_what_the_hardware_loads(c, k, pe, w, x, n_thr):
    """Word g*K+k, lane p = W[g*pe+p, k]; word g, lane p*n+j = T[g*pe+p, j]; the memory files of
    the unit hold exactly these words."""
    from amaranth.back import verilog

    from streamfold.compiler.rom_images import vvau_threshold_image, vvau_weight_image
    from streamfold.hw import VectorVectorUnitHW

    u = _random_vvau(np.random.default_rng(c * k), c, k, pe, DataType.parse(w), DataType.parse(x), n_thr)
    CF, n = c // pe, u.n_thresholds
    wi, ti = vvau_weight_image(u), vvau_threshold_image(u)
    assert wi.codes.shape == (CF * k, pe) and wi.bits == u.weight_dtype.bits
    for g in range(CF):
        for kk in range(k):
            for p in range(pe):
                assert u.weight_dtype.decode(wi.codes[g * k + kk, p]) == u.weights[g * pe + p, kk]
    assert ti.depth == CF
    for g in range(CF):
        for p in range(pe):
            for j in range(n):
                assert u.acc_dtype.decode(ti.codes[g, p * n + j]) == u.thresholds[g * pe + p, j]
    _check_words_and_bits(wi)
    _check_words_and_bits(ti)
    with rom_files("file") as files:
        verilog.convert(VectorVectorUnitHW(u), name="top", emit_src=False)
    want = {}
    if wi.in_rom:
        want["dw_conv_weights.hex"] = hex_image(wi.words(), wi.width)
    if ti.in_rom:
        want["dw_conv_thresholds.hex"] = hex_image(ti.words(), ti.width)
    assert files.files == want


def test_rom_images_import_neither_amaranth_nor_onnx():
    import sys

    code = ("import sys, streamfold.compiler.rom_images; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'amaranth', 'onnx', 'qonnx', 'onnxruntime'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# ----------------------------------------------------------------------------- Amaranth simulator
def test_rom_component_in_amaranth_sim_is_inline():
    """The ROM reads with one cycle of latency, and holds its word while en is low; under a
    file-ROM context Amaranth's simulator still gets the inline memory (run_stream forces it)."""
    from amaranth.sim import Simulator

    words = [3, 1, 4, 1, 5, 9, 2, 6]
    for ctx in (False, True):
        rom = ROM(4, len(words), words, name="t")
        if ctx:
            from streamfold.hw import inline_roms

            with rom_files("file") as files, inline_roms():
                sim = Simulator(rom)
            assert files.files == {}
        else:
            sim = Simulator(rom)
        sim.add_clock(1e-8)
        got = []

        async def bench(c):
            for a in range(len(words)):
                c.set(rom.addr, a)
                c.set(rom.en, 1)
                await c.tick()
                got.append(c.get(rom.data))
            c.set(rom.en, 0)
            c.set(rom.addr, 0)
            await c.tick()
            got.append(c.get(rom.data))

        sim.add_testbench(bench)
        sim.run()
        assert got == words + [words[-1]]


def test_mvau_amaranth_sim_under_file_context():
    from streamfold.hw import MatrixVectorUnitHW
    from streamfold.sim.reference import run_pipeline
    from streamfold.sim.streams import pack
    from unit_cases import random_values

    u, rng = small_mvau()
    x = random_values(rng, u.in_dtype, (2,) + u.in_stream.shape)
    y = run_pipeline(DataflowGraph([u]), x)
    with rom_files("file"):
        r = run_stream(MatrixVectorUnitHW(u), pack(x, u.in_stream), len(pack(y, u.out_stream)))
    assert r.out == pack(y, u.out_stream)


# ----------------------------------------------------------------------------- Verilator
@needs_verilator
@pytest.mark.parametrize("engine", ["verilator", "cocotb"])
def test_file_roms_bit_exact_both_engines(engine):
    u, rng = small_mvau(seed=5)
    u.ram_style = "block"
    out = check_pipeline(DataflowGraph([u], [2, 2]), frames=4, rng=rng, seed=2, engine=engine,
                         rom="file")
    assert set(out["design"].files) == {"fc1_MatMul_0_weights.hex", "fc1_MatMul_0_thresholds.hex"}


@needs_verilator
def test_large_mvau_in_files_bit_exact():
    """A unit large enough to use memory files by default (64 Kib of weights), bit-exact under
    gaps and back-pressure, and at full rate at the cost model's cycles per frame."""
    from streamfold.compiler.cost import unit_cycles

    u, rng = big_mvau()
    p = DataflowGraph([u], [2, 2])
    out = check_pipeline(p, frames=3, rng=rng, seed=4)
    assert "fc0_weights.hex" in out["design"].files
    full = check_pipeline(p, frames=3, rng=rng, p_gap=0.0, p_stall=0.0, seed=4)
    assert full["measure"].ii == unit_cycles(u)


@needs_verilator
def test_vvau_file_roms_bit_exact():
    from streamfold.compiler.ir import SlidingWindowUnit

    rng = np.random.default_rng(21)
    win = SlidingWindowUnit("win", (6, 6, 8), DataType.int_type(3), (3, 3), (1, 1), (1, 1, 1, 1), 0,
                            2, True)
    w = rng.integers(-4, 4, size=(8, 9))
    dw = VectorVectorUnit("dw/conv", w, DataType.int_type(3), win.dtype, win.dtype,
                          rows_shape=win.out_hw, pe=2)
    lo, hi = dw.acc_range
    dw.thresholds = np.sort(rng.integers(lo - 1, hi + 2, size=(8, 3)), axis=1)
    dw.out_dtype, dw.out_bias = DataType.uint_type(2), 0
    out = check_pipeline(DataflowGraph([win, dw]), frames=2, rng=rng, seed=1, rom="file")
    assert set(out["design"].files) == {"dw_conv_weights.hex", "dw_conv_thresholds.hex"}


@needs_verilator
def test_changed_memory_file_changes_the_model_and_missing_file_is_an_error(tmp_path):
    from streamfold.sim.run import simulate_stream
    from streamfold.sim.simulate import axis_width
    from streamfold.sim.streams import pack

    u, rng = small_mvau(seed=8)
    d = emit_design(DataflowGraph([u], [2, 2]), rom="file")
    ins, outs = u.in_stream, u.out_stream
    x = rng.integers(0, 4, size=(1,) + ins.shape)
    args = (pack(x, ins), axis_width(ins.beat_bits), axis_width(outs.beat_bits),
            outs.beats_per_frame, ins.beats_per_frame)
    with pytest.raises(FileNotFoundError, match="memory file"):
        simulate_stream(d.verilog, "streamfold_top", *args, build_dir=SIM_CACHE)
    # a Verilog file next to its memory files needs nothing else
    d.write(tmp_path)
    r1 = simulate_stream(tmp_path / "streamfold_top.v", "streamfold_top", *args, build_dir=SIM_CACHE)
    r2 = simulate_stream(d, "streamfold_top", *args, build_dir=SIM_CACHE)
    assert r1.out_beats == r2.out_beats and r2.build_seconds == 0.0  # same model, reused
    # other weights (all zero): another model, other outputs
    zero = {k: ("0" * len(v.splitlines()[0]) + "\n") * len(v.splitlines()) if "weights" in k else v
            for k, v in d.files.items()}
    r3 = simulate_stream(d.verilog, "streamfold_top", *args, build_dir=SIM_CACHE, data_files=zero)
    assert r3.out_beats != r1.out_beats


def test_emitted_file_design_lints(tmp_path):
    from streamfold.sim.verilator_build import tool_env

    u, _ = small_mvau()
    u.ram_style = "block"
    d = emit_design(DataflowGraph([u], [2, 2]), rom="file")
    d.write(tmp_path)
    exe = shutil.which("verilator", path=tool_env()["PATH"])
    if exe is None:
        pytest.skip("verilator not installed")
    res = subprocess.run([exe, "--lint-only", "-Wall", "-Wno-fatal", "--top-module", "streamfold_top",
                          "streamfold_top.v"], cwd=tmp_path, capture_output=True, text=True,
                         env=tool_env(), timeout=120)
    assert res.returncode == 0, res.stderr
    assert "%Error" not in res.stderr

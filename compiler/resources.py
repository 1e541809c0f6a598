"""Resource estimates (LUT, FF, block RAM, DSP) of every unit kind, per FPGA family.

How an estimate is made
-----------------------
* **Memories** (weights, thresholds, input buffers, FIFO storage) are mapped the way Yosys'
  ``memory_libmap`` maps them: every candidate -- soft logic, each LUT-RAM geometry, each
  block-RAM aspect ratio (Xilinx RAMB18/RAMB36 1x16K..72x512, ECP5 DP16KD/PDPW16KD 1x16K..36x512,
  iCE40 EBR 2x2K..16x256) -- gets libmap's cost (primitive cost x replicas, plus read-mux and
  emulation penalties; soft logic costs ``bits/64`` for a ROM on Xilinx, ``bits/16`` on Lattice,
  1 per bit for a RAM) and the cheapest wins, as in :func:`map_memory`. Block RAM and LUT-RAM
  counts come from that mapping directly.
* **DSPs** follow Yosys' ``mul2dsp`` rules: a ``$mul`` goes to a DSP when both operands have at
  least 2 bits and the product at least 9 (Xilinx) / 11 (iCE40 with ``-dsp``) / any (ECP5) bits.
* **LUT and FF** are linear models in a few structural features (:func:`part_features`: datapath
  bits of the dot products, accumulators, comparators, soft-logic ROM size, counters...), with
  coefficients fitted per family against Yosys by ``benchmarks/calibrate_resources.py`` and stored
  in ``calibration.json`` beside this file.

Resource classes are those of :mod:`streamfold.hw.synth`: ``LUT`` (logic), ``LUTRAM`` (LUTs as
memory), ``FF``, ``BRAM`` (family block-RAM primitives, RAMB18 units on Xilinx), ``URAM``, ``DSP``;
``LUT_TOTAL = LUT + LUTRAM``.

API: :func:`estimate_unit`, :func:`estimate_part`, :func:`estimate_pipeline`, :func:`map_memory`.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

CALIBRATION_FILE = Path(__file__).with_name("calibration.json")
FAMILIES = ("xc7", "xcup", "ecp5", "ice40")
LUT_K = {"xc7": 6, "xcup": 6, "ecp5": 4, "ice40": 4}
CLASSES = ("LUT", "LUTRAM", "FF", "BRAM", "URAM", "DSP")


def clog2(n: int) -> int:
    return max(0, int(n - 1).bit_length()) if n > 1 else 0


# ============================================================================= memories
@dataclass(frozen=True)
class MemSpec:
    """One memory: ``depth`` words of ``width`` bits. ``kind``: ``rom`` (one synchronous read port,
    initialised), ``sp`` (a write and a read port on the same address), ``sdp`` (a write and a read
    port on different addresses). ``style``: the unit's ``ram_style`` (auto/block/distributed/ultra)."""

    name: str
    depth: int
    width: int
    kind: str = "rom"
    style: str = "auto"
    image: object = field(default=None, compare=False, repr=False)  # ROM contents, see rom_image


# Yosys libmap figures (techlibs/*/{brams,lutrams}*.txt): (name, cost, widthscale, abits, widths,
# ports, lut-equivalents per primitive or BRAM18 units per primitive)
_FAMILY_LIB = {
    "xc7": {
        "logic_rom": 1 / 64,
        "lutram": [  # (name, cost, widthscale, [(abits, width, whole primitive?)], port kinds,
            #            LUTs per primitive); a whole primitive (RAM32M ...) is used even when
            #            narrower, single-bit ones (RAM64X1S ...) only as wide as needed
            ("SP", 8, 8, [(5, 8, True), (6, 4, False), (7, 2, False), (8, 1, False)], {"sp"}, 4),
            ("DP", 8, 8, [(5, 4, True), (6, 2, False), (7, 1, False)], {"sp", "sdp"}, 4),
            ("SDP", 8, 7, [(5, 6, True), (6, 3, True)], {"sp", "sdp"}, 4),
        ],
        "bram": [  # (name, cost, abits, widths, port kinds, BRAM18 units per primitive)
            ("RAMB18", 129, 14, [1, 2, 4, 9, 18], {"rom", "sp", "sdp"}, 1),
            ("RAMB36", 257, 15, [1, 2, 4, 9, 18, 36], {"rom", "sp", "sdp"}, 2),
            ("RAMB18SDP", 129, 14, [1, 2, 4, 9, 18, 36], {"rom", "sp", "sdp"}, 1),
            ("RAMB36SDP", 257, 15, [1, 2, 4, 9, 18, 36, 72], {"rom", "sp", "sdp"}, 2),
        ],
    },
    "xcup": {
        "logic_rom": 1 / 64,
        "lutram": [
            ("SP", 16, 16, [(5, 16, True), (6, 8, False), (7, 4, False), (8, 2, False)], {"sp"}, 8),
            ("SP64X8SW", 16, 0, [(9, 1, True), (8, 2, True), (7, 4, True), (6, 8, True)], {"sp"}, 8),
            ("DP", 16, 16, [(5, 8, True), (6, 4, False), (7, 2, False), (8, 1, False)], {"sp", "sdp"}, 8),
            ("SDP", 16, 16, [(5, 14, True), (6, 7, True)], {"sp", "sdp"}, 8),
        ],
        "bram": [
            ("RAMB18", 129, 14, [1, 2, 4, 9, 18], {"rom", "sp", "sdp"}, 1),
            ("RAMB36", 257, 15, [1, 2, 4, 9, 18, 36], {"rom", "sp", "sdp"}, 2),
            ("RAMB18SDP", 129, 14, [1, 2, 4, 9, 18, 36], {"rom", "sp", "sdp"}, 1),
            ("RAMB36SDP", 257, 15, [1, 2, 4, 9, 18, 36, 72], {"rom", "sp", "sdp"}, 2),
        ],
        "uram": ("URAM288", 1024, 12, [72]),
    },
    "ecp5": {
        "logic_rom": 1 / 16,
        "lutram": [("DPR16X4", 4, 0, [(4, 4, True)], {"sp", "sdp"}, 4)],
        "bram": [
            ("DP16KD", 128, 14, [1, 2, 4, 9, 18], {"rom", "sp", "sdp"}, 1),
            ("PDPW16KD", 128, 14, [1, 2, 4, 9, 18, 36], {"rom"}, 1),
            ("PDPW16KD", 128, 9, [36], {"sp", "sdp"}, 1),  # its write port is 36 bits wide only
        ],
    },
    "ice40": {
        "logic_rom": 1 / 16,
        "lutram": [],
        "bram": [("RAM4K", 64, 11, [2, 4, 8, 16], {"rom", "sp", "sdp"}, 1)],
    },
}
_FACTOR_MUX = 0.5
_FACTOR_DEMUX = 0.5
_FACTOR_EMU = 2


def _check_family(family: str) -> None:
    if family not in _FAMILY_LIB:
        raise ValueError(f"unknown family {family!r}; one of {', '.join(FAMILIES)}")


def map_memory(m: MemSpec, family: str) -> dict:
    """Where Yosys puts memory ``m`` on ``family``: ``{"map": logic|lutram|bram|uram, "BRAM",
    "LUTRAM", "URAM" (counts), "config": geometry, "cost": libmap cost}``."""
    _check_family(family)
    lib = _FAMILY_LIB[family]
    D, W = max(1, int(m.depth)), max(1, int(m.width))
    style = (m.style or "auto").lower()
    cands = []  # (cost, order, result)
    logic_ok = style in ("auto", "logic", "registers", "distributed")
    logic_cost = D * W * (lib["logic_rom"] if m.kind == "rom" else 1.0)
    if style in ("logic", "registers"):
        return {"map": "logic", "BRAM": 0, "LUTRAM": 0, "URAM": 0, "config": "logic", "cost": logic_cost}
    if style in ("auto", "distributed") and m.kind != "rom":
        for name, cost, ws, geoms, kinds, luts in lib["lutram"]:
            if m.kind not in kinds:
                continue
            for abits, u, whole in geoms:
                mult_a = -(-D // (1 << abits))
                repl = mult_a * -(-W // u)
                c = (cost - ws) * repl + ws * mult_a * W / u
                c += _FACTOR_MUX * (mult_a - 1) * W
                if mult_a > 1:
                    c += _FACTOR_DEMUX * mult_a
                n_luts = repl * luts if whole else mult_a * -(-W * luts // u)
                cands.append((c, {"map": "lutram", "BRAM": 0, "LUTRAM": n_luts, "URAM": 0,
                                  "config": f"{name} {1 << abits}x{u} x{repl}", "cost": c,
                                  "mult_a": mult_a}))
    if style in ("auto", "block"):
        for name, cost, abits, widths, kinds, units in lib["bram"]:
            if m.kind not in kinds:
                continue
            for i, u in enumerate(widths):
                depth_u = 1 << (abits - i)
                mult_a = -(-D // depth_u)
                repl = mult_a * -(-W // u)
                c = cost * repl + _FACTOR_MUX * (mult_a - 1) * W
                if mult_a > 1 and m.kind != "rom":
                    c += _FACTOR_DEMUX * mult_a
                if name == "PDPW16KD" and m.kind != "rom":
                    c += 2 * _FACTOR_EMU  # learnt: a written PDPW16KD loses near-ties to LUT-RAM
                cands.append((c, {"map": "bram", "BRAM": repl * units, "LUTRAM": 0, "URAM": 0,
                                  "config": f"{name} {depth_u}x{u} x{repl}", "cost": c}))
                if m.kind == "rom" and mult_a > 1 and W < u:
                    # libmap also lays address ranges side by side across a wide block's data
                    # bits (parity bits included) and muxes the read: a 50176x1 ROM fits three
                    # 2048x9 RAMB18s (25 ranges of 2048 words, 9 per block) instead of four 16Kx1
                    packed = -(-mult_a * W // u)
                    if packed < repl:
                        c = cost * packed + _FACTOR_MUX * (mult_a - 1) * W
                        cands.append((c, {"map": "bram", "BRAM": packed * units, "LUTRAM": 0, "URAM": 0,
                                          "config": f"{name} {depth_u}x{u} x{packed} (ranges side by side)",
                                          "cost": c}))
    if style in ("ultra", "huge") and "uram" in lib and m.kind != "rom":
        name, cost, abits, widths = lib["uram"]
        mult_a = -(-D // (1 << abits))
        repl = mult_a * -(-W // widths[0])
        c = cost * repl + _FACTOR_MUX * (mult_a - 1) * W
        cands.append((c, {"map": "uram", "BRAM": 0, "LUTRAM": 0, "URAM": repl,
                          "config": f"{name} {1 << abits}x{widths[0]} x{repl}", "cost": c}))
    best = {"map": "logic", "BRAM": 0, "LUTRAM": 0, "URAM": 0, "config": "logic", "cost": logic_cost}
    best_cost = int(logic_cost) if logic_ok else math.inf  # libmap compares with an int here
    for c, r in cands:
        if c < best_cost:
            best, best_cost = r, c
    return best


# ============================================================================= features
def rom_image(codes, bits: int) -> np.ndarray:
    """(words, lanes) element codes -> (words, lanes*bits) bit matrix, lane 0 / bit 0 first."""
    codes = np.asarray(codes, dtype=np.int64)
    b = (codes[:, :, None] >> np.arange(bits, dtype=np.int64)) & 1
    return b.reshape(codes.shape[0], -1).astype(np.uint8)


def rom_columns(image: np.ndarray) -> tuple[int, int]:
    """Of a ROM's bit columns: (distinct non-constant ones, distinct up to complement).

    Yosys keeps one register per distinct data column of a soft-logic ROM (equal columns merge,
    constant ones vanish) and one LUT function per column up to inversion (free in a LUT)."""
    img = np.asarray(image, dtype=np.uint8)
    if img.size == 0:
        return 0, 0
    cols = img.T
    nonconst = cols[(cols.min(axis=1) != cols.max(axis=1))]
    if not len(nonconst):
        return 0, 0
    packed = np.packbits(nonconst, axis=1)
    distinct = len(np.unique(packed, axis=0))
    canon = np.where(nonconst[:, :1] == 1, 1 - nonconst, nonconst)
    distinct_c = len(np.unique(np.packbits(canon, axis=1), axis=0))
    return distinct, distinct_c


def _mem_features(mems: list[MemSpec], family: str) -> dict:
    """Totals over a part's memories: exact BRAM/LUTRAM/URAM and the soft-logic features."""
    k = LUT_K[family]
    out = {"BRAM": 0, "LUTRAM": 0, "URAM": 0, "rom_lut": 0.0, "rom_deep": 0.0, "ram_bits": 0, "mem_reg": 0,
           "lutram_mux": 0, "maps": {}, "where": {}}
    for m in mems:
        r = map_memory(m, family)
        out["maps"][m.name] = r["config"]
        out["where"][m.name] = r["map"]
        out["BRAM"] += r["BRAM"]
        out["LUTRAM"] += r["LUTRAM"]
        out["URAM"] += r["URAM"]
        if r["map"] == "lutram" or (r["map"] == "logic" and m.kind != "rom"):
            out["mem_reg"] += m.width  # the synchronous read register stays in fabric
        if r["map"] == "logic":
            if m.kind == "rom":
                if m.image is not None:
                    regs, funcs = rom_columns(m.image() if callable(m.image) else m.image)
                else:
                    regs = funcs = m.width
                out["mem_reg"] += regs
                # a column of up to 2**k words is one LUT; deeper ones grow (a lot on Xilinx)
                out["rom_lut"] += funcs
                out["rom_deep"] += funcs * max(0, m.depth - (1 << (k - 2))) / (1 << k)
            else:
                out["ram_bits"] += m.depth * m.width
        if r["map"] == "lutram":  # read multiplexer and write decoder over address ranges
            out["lutram_mux"] += m.width * (r["mult_a"] - 1) + (r["mult_a"] > 1) * r["mult_a"]
    return out


def _dsp_product(wd, xd, family: str) -> int:
    """DSP blocks Yosys' ``mul2dsp`` spends on one weight x input multiplier (0: soft logic).

    Operand widths are as Amaranth emits them (an unsigned operand of a signed product gains a
    sign bit); the product width is what ``wreduce`` leaves: the bits its value range needs."""
    a_bits, b_bits = wd.bits, xd.bits
    if wd.signed != xd.signed:
        if wd.signed:
            b_bits += 1
        else:
            a_bits += 1
    if min(a_bits, b_bits) < 2:
        return 0
    prods = [p * q for p in (wd.min, wd.max) for q in (xd.min, xd.max)]
    lo, hi = min(prods), max(prods)
    y_bits = max((-lo - 1).bit_length(), hi.bit_length()) + (1 if lo < 0 else 0)
    ymin = {"xc7": 9, "xcup": 9, "ecp5": 0, "ice40": 11}[family]
    if y_bits < ymin:
        return 0
    amax, bmax = {"xc7": (25, 18), "xcup": (27, 18), "ecp5": (18, 18), "ice40": (16, 16)}[family]
    a_bits, b_bits = max(a_bits, b_bits), min(a_bits, b_bits)
    return math.ceil(a_bits / amax) * math.ceil(b_bits / bmax)


def mvau_memories(u) -> list[MemSpec]:
    NF, SF = u.neuron_fold, u.synapse_fold
    style = getattr(u, "ram_style", "auto") or "auto"
    mems = []

    def wimg():  # weight memory image: word nf*SF+sf, lane p*simd+s = W[nf*pe+p, sf*simd+s]
        codes = u.weight_dtype.encode(np.asarray(u.weights))
        codes = codes.reshape(NF, u.pe, SF, u.simd).transpose(0, 2, 1, 3).reshape(NF * SF, -1)
        return rom_image(codes, u.weight_dtype.bits)

    def timg():  # threshold memory image: word nf, lane p*n+k = T[nf*pe+p, k]
        codes = u.acc_dtype.encode(np.asarray(u.thresholds, dtype=np.int64))
        return rom_image(codes.reshape(NF, -1), u.acc_dtype.bits)

    if NF * SF > 1:
        mems.append(MemSpec("weights", NF * SF, u.pe * u.simd * u.weight_dtype.bits, "rom", style, wimg))
    if u.thresholds is not None and u.n_thresholds and NF > 1:
        mems.append(MemSpec("thresholds", NF, u.pe * u.n_thresholds * u.acc_dtype.bits, "rom", style, timg))
    if NF > 1:
        mems.append(MemSpec("inbuf", SF, u.simd * u.in_dtype.bits, "sp"))
    return mems


def _mvau_features(u, family: str) -> dict:
    pe, simd = u.pe, u.simd
    NF, SF = u.neuron_fold, u.synapse_fold
    wd, xd = u.weight_dtype, u.in_dtype
    ab, ob, ib = u.acc_dtype.bits, u.out_dtype.bits, xd.bits
    n_thr = u.n_thresholds if u.thresholds is not None else 0
    mem = _mem_features(mvau_memories(u), family)
    ctr = clog2(NF) * 3 + clog2(SF) + clog2(NF * SF)
    dsp = 0
    pop = neg = mul = tree = 0
    popc = 0
    if u.binary and NF * SF == 1:  # constant weights: the XNORs fold into the popcount's inputs
        popc = pe * simd
        dot_bits = clog2(simd + 1)
    elif u.binary:
        pop = pe * simd
        dot_bits = clog2(simd + 1)
    else:
        lo_w, hi_w = wd.min, wd.max
        lo_x, hi_x = xd.min, xd.max
        prods = [lo_w * lo_x, lo_w * hi_x, hi_w * lo_x, hi_w * hi_x]
        pbits = max(1, max(abs(min(prods)), abs(max(prods))).bit_length() + 1)
        dot_bits = min(ab, pbits + clog2(simd))
        if wd.bipolar or xd.bipolar:
            other = xd if wd.bipolar else wd
            neg = pe * simd * (other.bits + 1)
        else:
            per = _dsp_product(wd, xd, family)
            if per:
                dsp = pe * simd * per
            else:
                mul = pe * simd * wd.bits * xd.bits
        tree = pe * simd * pbits
    lut = {"const": 1, "pop": pop, "popc": popc, "neg": neg, "mul": mul, "tree": tree, "acc": pe * ab,
           "cmp": pe * n_thr * ab, "rom": mem["rom_lut"], "romd": mem["rom_deep"], "xmux": (NF > 1) * simd * ib, "ctr": ctr,
           "ram": mem["ram_bits"], "dsp": dsp, "lutmux": mem["lutram_mux"],
           "treelog": pe * simd * clog2(simd),  # adder-tree depth grows with log2(simd)
           # weights in soft logic: the ROM outputs feed the products directly
           "wlogic": pe * simd * wd.bits * (mem["where"].get("weights") == "logic")}
    ff = {"const": 1, "x": simd * ib, "dot": pe * min(dot_bits, ab), "acc": pe * ab, "out": pe * ob,
          "mem": mem["mem_reg"], "ctr": ctr, "ram": mem["ram_bits"]}
    return {"LUT": lut, "FF": ff,
            "exact": {"BRAM": mem["BRAM"], "LUTRAM": mem["LUTRAM"], "URAM": mem["URAM"], "DSP": dsp},
            "memories": mem["maps"]}


def fifo_memories(width: int, depth: int) -> list[MemSpec]:
    return [MemSpec("storage", depth - 1, width, "sdp")] if depth >= 3 else []


def _fifo_features(width: int, depth: int, family: str) -> dict:
    mem = _mem_features(fifo_memories(width, depth), family)
    big = depth >= 3
    where = map_memory(fifo_memories(width, depth)[0], family)["map"] if big else None
    lut = {"const": int(depth > 0), "skid": width * (depth == 2), "ptr": clog2(depth) * big,
           "lut_w": width * (where in ("lutram", "logic")), "bram_w": width * (where == "bram"),
           "ram": mem["ram_bits"], "lutram_mux": mem["lutram_mux"]}
    ff = {"const": int(depth > 0), "regs": width * {0: 0, 1: 1, 2: 2}.get(depth, 0),
          "ptr": clog2(depth) * big, "lut_w": width * (where in ("lutram", "logic")),
          "bram_w": width * (where == "bram"), "ram": mem["ram_bits"]}
    return {"LUT": lut, "FF": ff, "exact": {"BRAM": mem["BRAM"], "LUTRAM": mem["LUTRAM"],
                                           "URAM": mem["URAM"], "DSP": 0}, "memories": mem["maps"]}


def swg_parallel_memories(u) -> list[MemSpec]:
    """The whole-window generator's line buffer: ``W`` words of ``(kh-1)*C*bits`` (none for kh=1)."""
    from .memory import swg_memories

    return [MemSpec(m.name, m.depth, m.width, "sdp") for m in swg_memories(u)]


def _swg_parallel_features(u, family: str) -> dict:
    """Whole-window sliding window (:mod:`streamfold.hw.parallel_window`): the ``kh x kw`` output
    register and the ``kh x (kw-1)`` column history (``win`` FFs, clock-enabled: no LUTs), pad
    multiplexers on the incoming column and, with left padding, on the row-start clear of the
    history, scan counters and the line-buffer memory."""
    from .memory import parallel_geometry

    g = parallel_geometry(u)
    pix = g.c * u.dtype.bits
    mem = _mem_features(swg_parallel_memories(u), family)
    padded = any(g.pads)
    clear = (g.kw - 1) * g.kh * pix if (g.cols[0] > 0 and g.kw > 1) else 0
    ctr = clog2(g.rows[1] + 1) + clog2(g.cols[1] + 1) + clog2(g.w) * (g.kh > 1) + clog2(g.sh) + clog2(g.sw)
    lut = {"const": 1, "pad": g.kh * pix * padded, "clear": clear, "ctr": ctr,
           "ram": mem["ram_bits"], "lutmux": mem["lutram_mux"]}
    ff = {"const": 1, "win": g.kh * (2 * g.kw - 1) * pix, "ctr": ctr, "mem": mem["mem_reg"],
          "ram": mem["ram_bits"]}
    return {"LUT": lut, "FF": ff,
            "exact": {"BRAM": mem["BRAM"], "LUTRAM": mem["LUTRAM"], "URAM": mem["URAM"], "DSP": 0},
            "memories": mem["maps"]}


def _shapes_to_specs(shapes, kind: str, style: str = "auto") -> list[MemSpec]:
    return [MemSpec(m.name, max(int(m.depth), 1), int(m.width), kind, style) for m in shapes
            if int(m.depth) * int(m.width) > 0]


def _swg_buffer_features(u, family: str) -> dict:
    """Circular-buffer sliding window (:mod:`streamfold.hw.sliding_window`): one line-buffer
    memory (write and read on different addresses), pad multiplexer on the output beat, counters."""
    from .memory import swg_memories
    mems = _shapes_to_specs(swg_memories(u), "sdp")
    for m in mems:  # the hardware gives the buffer at least 2 words
        object.__setattr__(m, "depth", max(m.depth, 2))
    mem = _mem_features(mems, family)
    h, w, c = u.in_shape
    kh, kw = u.kernel
    ob = u.out_stream.beat_bits
    ctr = sum(clog2(n) for n in (h, w, max(1, c // max(1, u.simd)), kh, kw)) + \
        2 * sum(clog2(m.depth) for m in mems)
    lut = {"const": 1, "pad": ob, "ctr": ctr, "ram": mem["ram_bits"], "lutmux": mem["lutram_mux"]}
    ff = {"const": 1, "out": ob, "ctr": ctr, "mem": mem["mem_reg"], "ram": mem["ram_bits"]}
    return {"LUT": lut, "FF": ff, "exact": {"BRAM": mem["BRAM"], "LUTRAM": mem["LUTRAM"],
                                           "URAM": mem["URAM"], "DSP": 0}, "memories": mem["maps"]}


def _pool_features(u, family: str) -> dict:
    """Max-pool / global sum-pool (:mod:`streamfold.hw.window_reduce`): partial banks in memory
    (read-modify-write) or registers, a max/add per lane, counters."""
    from .memory import gsumpool_memories, maxpool_memories
    shapes = maxpool_memories(u) if u.kind == "maxpool" else gsumpool_memories(u)
    mems = _shapes_to_specs(shapes, "sdp")
    mem = _mem_features(mems, family)
    h, w, c = u.in_shape
    ob = u.out_stream.beat_bits
    ctr = sum(clog2(n) for n in (h, w, max(1, c // max(1, u.pe)))) + sum(clog2(m.depth) for m in mems)
    lut = {"const": 1, "w": ob * max(1, len(mems)), "ctr": ctr, "ram": mem["ram_bits"],
           "lutmux": mem["lutram_mux"]}
    ff = {"const": 1, "w": ob, "regs": ob * (not mems), "ctr": ctr, "mem": mem["mem_reg"],
          "ram": mem["ram_bits"]}
    return {"LUT": lut, "FF": ff, "exact": {"BRAM": mem["BRAM"], "LUTRAM": mem["LUTRAM"],
                                           "URAM": mem["URAM"], "DSP": 0}, "memories": mem["maps"]}


def _vvau_features(u, family: str) -> dict:
    """Vector-vector unit: ``pe`` products per clock, weight/threshold ROMs, accumulators,
    comparators (the matrix-vector unit's structure with SIMD = 1 per lane)."""
    from .memory import vvau_memories
    mems = _shapes_to_specs(vvau_memories(u), "rom", getattr(u, "ram_style", "auto") or "auto")
    mem = _mem_features(mems, family)
    pe, K = u.pe, u.k
    CF = u.channels // pe
    wd, xd = u.weight_dtype, u.in_dtype
    ab, ob = u.acc_dtype.bits, u.out_dtype.bits
    n_thr = u.n_thresholds if u.thresholds is not None else 0
    dsp = neg = mul = pop = 0
    if u.binary:
        pop = pe
    elif wd.bipolar or xd.bipolar:
        neg = pe * ((xd if wd.bipolar else wd).bits + 1)
    else:
        per = _dsp_product(wd, xd, family)
        if per:
            dsp = pe * per
        else:
            mul = pe * wd.bits * xd.bits
    ctr = clog2(CF) * 3 + clog2(K) + clog2(CF * K)
    lut = {"const": 1, "pop": pop, "neg": neg, "mul": mul, "acc": pe * ab, "cmp": pe * n_thr * ab,
           "rom": mem["rom_lut"], "romd": mem["rom_deep"], "ctr": ctr, "dsp": dsp}
    ff = {"const": 1, "x": pe * xd.bits, "acc": pe * ab, "out": pe * ob, "mem": mem["mem_reg"],
          "ctr": ctr}
    return {"LUT": lut, "FF": ff, "exact": {"BRAM": mem["BRAM"], "LUTRAM": mem["LUTRAM"],
                                           "URAM": mem["URAM"], "DSP": dsp}, "memories": mem["maps"]}


def model_key(unit) -> str:
    """The model (FEATURES / calibration key) of a unit: its kind, except that the circular-buffer
    sliding window is ``swg_buf`` (``swg`` is the whole-window mode)."""
    if unit.kind == "swg" and not getattr(unit, "parallel", False):
        return "swg_buf"
    return unit.kind


def _dwc_features(width: int, a: int, b: int, family: str) -> dict:
    if a == b:
        z = {"const": 0, "buf": 0, "ins": 0, "count": 0, "split": 0, "splitw": 0}
        return {"LUT": dict(z), "FF": {"const": 0, "buf": 0, "count": 0},
                "exact": {"BRAM": 0, "LUTRAM": 0, "URAM": 0, "DSP": 0}, "memories": {}}
    g = math.gcd(a, b)
    C = a + b - g
    positions = (C - a) // g + 1
    cnt = clog2(C // g + 1)
    lut = {"const": 1, "buf": C * width, "ins": positions * a * width, "count": cnt,
           "split": C * width * (a > b),  # a splitter's buffer bits also take the shifted-down bit
           # measured: on ECP5 a splitter of multi-bit elements costs ~7 LUT4 per buffer bit,
           # one of 1-bit elements ~2 (Yosys 0.70; xc7 ~2 for both)
           "splitw": C * width * (a > b) * (width > 1)}
    ff = {"const": 1, "buf": C * width, "count": cnt}
    return {"LUT": lut, "FF": ff, "exact": {"BRAM": 0, "LUTRAM": 0, "URAM": 0, "DSP": 0}, "memories": {}}


#: feature names of each (kind, resource), in the order calibration.json stores coefficients
FEATURES = {
    "mvau": {"LUT": ["const", "pop", "popc", "neg", "mul", "tree", "acc", "cmp", "rom", "xmux", "ctr", "ram", "dsp",
                     "lutmux", "treelog", "wlogic", "romd"],
             "FF": ["const", "x", "dot", "acc", "out", "mem", "ctr", "ram"]},
    "fifo": {"LUT": ["const", "skid", "ptr", "lut_w", "bram_w", "ram", "lutram_mux"],
             "FF": ["const", "regs", "ptr", "lut_w", "bram_w", "ram"]},
    "dwc": {"LUT": ["const", "buf", "ins", "count", "split", "splitw"], "FF": ["const", "buf", "count"]},
    # sliding window: "swg" is the whole-window (parallel) mode, "swg_buf" the circular buffer
    "swg": {"LUT": ["const", "pad", "clear", "ctr", "ram", "lutmux"],
            "FF": ["const", "win", "ctr", "mem", "ram"]},
    "swg_buf": {"LUT": ["const", "pad", "ctr", "ram", "lutmux"], "FF": ["const", "out", "ctr", "mem", "ram"]},
    "maxpool": {"LUT": ["const", "w", "ctr", "ram", "lutmux"], "FF": ["const", "w", "regs", "ctr", "mem", "ram"]},
    "gsumpool": {"LUT": ["const", "w", "ctr", "ram", "lutmux"], "FF": ["const", "w", "regs", "ctr", "mem", "ram"]},
    "vvau": {"LUT": ["const", "pop", "neg", "mul", "acc", "cmp", "rom", "romd", "ctr", "dsp"],
             "FF": ["const", "x", "acc", "out", "mem", "ctr"]},
}

#: coefficients used when calibration.json has none for a (family, kind): structural guesses
_DEFAULT_COEF = {
    "mvau": {"LUT": {"const": 20, "pop": 1.2, "popc": 1.0, "neg": 0.6, "mul": 1.0, "tree": 1.0, "acc": 1.0,
                     "cmp": 0.5, "rom": 1.3, "xmux": 1.0, "ctr": 2.0, "ram": 0.3, "dsp": 1.0, "lutmux": 1.0,
                     "treelog": 0.2, "wlogic": 0.0, "romd": 2.0},
             "FF": {"const": 8, "x": 1, "dot": 1, "acc": 1, "out": 1, "mem": 1, "ctr": 1, "ram": 1}},
    "fifo": {"LUT": {"const": 3, "skid": 1, "ptr": 8, "lut_w": 0.3, "bram_w": 0.3, "ram": 0.3,
                     "lutram_mux": 1},
             "FF": {"const": 2, "regs": 1, "ptr": 4, "lut_w": 1, "bram_w": 1, "ram": 1}},
    "dwc": {"LUT": {"const": 4, "buf": 1, "ins": 0.3, "count": 3, "split": 0.5}, "FF": {"const": 0, "buf": 1, "count": 1}},
    # checked by hand against Yosys synth_xilinx (xc7) on six whole-window units (3x3 ... 5x5,
    # 1 to 64 channels, with and without padding): LUT within ~15 (+-10%), FF within ~5
    "swg": {"LUT": {"const": 5, "pad": 1.0, "clear": 1.0, "ctr": 1.5, "ram": 0.3, "lutmux": 1.0},
            "FF": {"const": 2, "win": 1, "ctr": 1, "mem": 0.05, "ram": 1}},
    "swg_buf": {"LUT": {"const": 20, "pad": 1.0, "ctr": 3.0, "ram": 0.3, "lutmux": 1.0},
                "FF": {"const": 6, "out": 1, "ctr": 1.5, "mem": 1, "ram": 1}},
    "maxpool": {"LUT": {"const": 10, "w": 1.5, "ctr": 3, "ram": 0.3, "lutmux": 1},
                "FF": {"const": 6, "w": 2, "regs": 1, "ctr": 2, "mem": 1, "ram": 1}},
    "gsumpool": {"LUT": {"const": 10, "w": 1.5, "ctr": 3, "ram": 0.3, "lutmux": 1},
                 "FF": {"const": 6, "w": 2, "regs": 1, "ctr": 2, "mem": 1, "ram": 1}},
    "vvau": {"LUT": {"const": 20, "pop": 2, "neg": 3, "mul": 2, "acc": 1, "cmp": 0.8, "rom": 1.7,
                     "romd": 5, "ctr": 1, "dsp": 3},
             "FF": {"const": 10, "x": 1, "acc": 2, "out": 1, "mem": 1, "ctr": 1}},
}


def has_model(unit) -> bool:
    """Whether :func:`estimate_unit` models ``unit``: its :func:`model_key` is in :data:`FEATURES`."""
    return model_key(unit) in FEATURES


def part_features(kind: str, params: dict | None, family: str, unit=None) -> dict:
    """Features of one piece: a unit (``unit`` given) or ``fifo``/``dwc`` from ``params``
    (``width, depth`` / ``width, a, b``)."""
    _check_family(family)
    if kind == "mvau":
        return _mvau_features(unit, family)
    if kind == "fifo":
        return _fifo_features(params["width"], params["depth"], family)
    if kind == "dwc":
        return _dwc_features(params["width"], params["a"], params["b"], family)
    if kind == "swg" and unit is not None and getattr(unit, "parallel", False):
        return _swg_parallel_features(unit, family)
    if kind in ("swg", "swg_buf") and unit is not None:
        return _swg_buffer_features(unit, family)
    if kind in ("maxpool", "gsumpool"):
        return _pool_features(unit, family)
    if kind == "vvau":
        return _vvau_features(unit, family)
    raise KeyError(kind)


@lru_cache(maxsize=1)
def calibration() -> dict:
    try:
        return json.loads(CALIBRATION_FILE.read_text())
    except (OSError, ValueError):
        return {"families": {}}


#: a family without its own coefficients for a kind borrows those of a family with the same LUTs
_SIBLING = {"xcup": "xc7", "xc7": "xcup", "ice40": "ecp5", "ecp5": "ice40"}


def _coef(family: str, kind: str, res: str) -> tuple[dict, bool]:
    fams = calibration().get("families", {})
    for f in (family, _SIBLING[family]):
        c = fams.get(f, {}).get(kind, {}).get(res)
        if c:
            return c, f == family
    return _DEFAULT_COEF[kind][res], False


def _from_features(kind: str, f: dict, family: str) -> dict:
    out = {}
    calibrated = True
    for res in ("LUT", "FF"):
        coef, ok = _coef(family, kind, res)
        calibrated &= ok
        out[res] = int(round(sum(coef.get(n, 0.0) * v for n, v in f[res].items())))
    out.update({k: int(v) for k, v in f["exact"].items()})
    out["LUT_TOTAL"] = out["LUT"] + out["LUTRAM"]
    out["calibrated"] = calibrated
    if f.get("memories"):
        out["memories"] = f["memories"]
    return out


def estimate_part(kind: str, params: dict, family: str) -> dict:
    """Estimate of a FIFO (``width``, ``depth``) or width converter (``width``, ``a``, ``b``)."""
    return _from_features(kind, part_features(kind, params, family), family)


def estimate_unit(unit, family: str) -> dict | None:
    """Estimate of one IR unit on ``family`` (None for a unit with no model yet, see :func:`has_model`)."""
    if not has_model(unit):
        return None
    return _from_features(model_key(unit), part_features(unit.kind, None, family, unit=unit), family)


def _add(total: dict, est: dict) -> None:
    for k in CLASSES + ("LUT_TOTAL",):
        total[k] = total.get(k, 0) + int(est.get(k, 0))


def estimate_pipeline(pipeline, family: str) -> dict:
    """Per piece and total estimates of a pipeline's top level (FIFOs, units, width converters).

    Returns ``{"family", "parts": [{"name", "kind", "unit", **resources}], "units": {unit name:
    resources of the unit plus its input FIFO and output converter}, "total": {...},
    "unmodelled": [kinds without a model]}``. Part names match :func:`streamfold.hw.synth.pipeline_parts`.
    """
    _check_family(family)
    parts, per_unit, unmodelled = [], {}, []
    total: dict = {}
    units = pipeline.units
    for k, u in enumerate(units):
        group: dict = {}
        d = pipeline.fifo_depths[k]
        if d > 0:
            e = estimate_part("fifo", {"width": u.in_stream.beat_bits, "depth": d}, family)
            parts.append({"name": f"fifo{k}", "kind": "fifo", "unit": None, **e})
            _add(group, e)
        e = estimate_unit(u, family)
        name = f"u{k}_{''.join(c if c.isalnum() or c == '_' else '_' for c in u.name)}"
        if e is None:
            unmodelled.append(u.kind)
            parts.append({"name": name, "kind": u.kind, "unit": u.name, "estimate": None})
        else:
            parts.append({"name": name, "kind": u.kind, "unit": u.name, **e})
            _add(group, e)
        if k + 1 < len(units):
            out, nxt = u.out_stream, units[k + 1].in_stream
            if out.fold != nxt.fold:
                e = estimate_part("dwc", {"width": out.dtype.bits, "a": out.fold, "b": nxt.fold}, family)
                parts.append({"name": f"dwc{k}", "kind": "dwc", "unit": None, **e})
                _add(group, e)
        per_unit[u.name] = group
        _add(total, group)
    d = pipeline.fifo_depths[-1]
    if d > 0:
        e = estimate_part("fifo", {"width": pipeline.out_stream.beat_bits, "depth": d}, family)
        parts.append({"name": f"fifo{len(units)}", "kind": "fifo", "unit": None, **e})
        _add(total, e)
    # the top level's own logic: the output beat counter for tlast
    beats = pipeline.out_stream.beats_per_frame
    top = {"LUT": 1 + clog2(beats), "LUT_TOTAL": 1 + clog2(beats), "FF": clog2(beats)}
    _add(total, top)
    # Whole designs synthesise flattened: logic merges across unit boundaries, which per-unit
    # calibration cannot see. A per-family factor fitted on whole-design runs
    # (benchmarks/synth_vs_estimate.py --fit-in-context) scales the total's soft logic.
    k = in_context_factor(family)
    if k != 1.0 and "LUT" in total:
        total["parts_LUT"] = total["LUT"]
        total["LUT"] = int(round(total["LUT"] * k))
        total["LUT_TOTAL"] = total["LUT"] + total.get("LUTRAM", 0)
    return {"family": family, "parts": parts, "units": per_unit, "total": total,
            "unmodelled": sorted(set(unmodelled)), "in_context_lut_factor": k}


def in_context_factor(family: str) -> float:
    """Whole-design LUT (without LUT-RAM) over the sum of the per-part estimates, as fitted for
    ``family`` (1.0 when not fitted)."""
    return float(calibration().get("in_context", {}).get(family, {}).get("LUT", 1.0))


def utilisation(total: dict, board) -> dict:
    """Fractions of ``board``'s device that ``total`` uses (LUT counts LUT-RAM too)."""
    used = {"LUT": total.get("LUT_TOTAL", total.get("LUT", 0)), "FF": total.get("FF", 0),
            "BRAM": total.get("BRAM", 0), "URAM": total.get("URAM", 0), "DSP": total.get("DSP", 0)}
    return board.utilisation(used)


DEFAULT_FAMILY = "xc7"


def report_resources(pipeline, board=None) -> dict:
    """The resource section of ``report.json``: per unit (with its input FIFO and output width
    converter) and total estimates on ``board``'s family (a name or a Board; default xc7, no
    utilisation), plus utilisation of the board's device."""
    b = None
    if board is not None:
        from streamfold.boards import load_board
        b = load_board(board) if isinstance(board, str) else board
    family = b.family if b else DEFAULT_FAMILY
    est = estimate_pipeline(pipeline, family)
    keys = ("LUT", "LUTRAM", "LUT_TOTAL", "FF", "BRAM", "URAM", "DSP")
    out = {"family": family, "board": b.name if b else None,
           "units": {n: {k: int(r.get(k, 0)) for k in keys} for n, r in est["units"].items()},
           "total": {k: int(est["total"].get(k, 0)) for k in keys},
           "unmodelled": est["unmodelled"],
           "method": "estimate (compiler/resources.py, calibrated against Yosys); "
                     "`streamfold synth` gives synthesised figures"}
    if b:
        out["utilisation"] = utilisation(out["total"], b)
        out["fits"] = all(v <= 1.0 for v in out["utilisation"].values())
    return out

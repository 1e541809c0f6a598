"""The resource model's building blocks, with no unit kind in them: how Yosys maps a memory,
when a product goes to a DSP, and the features of the stream plumbing (FIFOs, width converters).

Unit kinds (:mod:`streamfold.compiler.units`) describe their own features with these;
:mod:`streamfold.compiler.resources` turns features into estimates with the calibrated
coefficients. See that module for how an estimate is made.
"""
from __future__ import annotations

import math

import numpy as np

from .memory import MemSpec
from .rom_images import bit_matrix as rom_image  # noqa: F401  (a ROM's bit matrix)

FAMILIES = ("xc7", "xcup", "ecp5", "ice40")
LUT_K = {"xc7": 6, "xcup": 6, "ecp5": 4, "ice40": 4}
CLASSES = ("LUT", "LUTRAM", "FF", "BRAM", "URAM", "DSP")


def clog2(n: int) -> int:
    return max(0, int(n - 1).bit_length()) if n > 1 else 0


# ============================================================================= memories
# Yosys libmap figures (techlibs/*/{brams,lutrams}*.txt): (name, cost, widthscale, abits, widths,
# ports, lut-equivalents per primitive or BRAM18 units per primitive)
_FAMILY_LIB = {
    "xc7": {
        "logic_rom": 1 / 64,
        "bram_emu": 1,
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
        "bram_emu": 1,
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
        "bram_emu": 7,
        "lutram": [("DPR16X4", 4, 0, [(4, 4, True)], {"sp", "sdp"}, 4)],
        "bram": [
            ("DP16KD", 128, 14, [1, 2, 4, 9, 18], {"rom", "sp", "sdp"}, 1),
            ("PDPW16KD", 128, 14, [1, 2, 4, 9, 18, 36], {"rom"}, 1),
            ("PDPW16KD", 128, 9, [36], {"sp", "sdp"}, 1),  # its write port is 36 bits wide only
        ],
    },
    "ice40": {
        "logic_rom": 1 / 16,
        "bram_emu": 1,
        "lutram": [],
        "bram": [("RAM4K", 64, 11, [2, 4, 8, 16], {"rom", "sp", "sdp"}, 1)],
    },
}
_FACTOR_MUX = 0.5
_FACTOR_DEMUX = 0.5
_FACTOR_EMU = 2
#: libmap's emulation scores of a written memory with one synchronous read port (a FIFO, a line
#: buffer): a LUT-RAM emulates the read register (1); an ECP5 block RAM emulates read-first and
#: transparency (7), a Xilinx one only the read register (1). Read from `debug memory_libmap`.
_EMU_LUTRAM = 1


def check_family(family: str) -> None:
    if family not in _FAMILY_LIB:
        raise ValueError(f"unknown family {family!r}; one of {', '.join(FAMILIES)}")


def map_memory(m: MemSpec, family: str) -> dict:
    """Where Yosys puts memory ``m`` on ``family``: ``{"map": logic|lutram|bram|uram, "BRAM",
    "LUTRAM", "URAM" (counts), "config": geometry, "cost": libmap cost}``."""
    check_family(family)
    lib = _FAMILY_LIB[family]
    D, W = max(1, int(m.depth)), max(1, int(m.width))
    if m.kind == "rom" and m.image is not None:
        # Yosys' opt_mem drops the data bits of a ROM that are constant over its words (0 or 1)
        # before mapping: CNV's threshold ROMs have a few
        img = np.asarray(m.image() if callable(m.image) else m.image, dtype=np.uint8)
        if img.size:
            W = max(1, int((img.min(axis=0) != img.max(axis=0)).sum()))
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
                c += _EMU_LUTRAM * _FACTOR_EMU  # the synchronous read register, emulated
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
                # emulation: a written memory's (see _EMU_LUTRAM), a ROM's read port options (1)
                c += (lib["bram_emu"] if m.kind != "rom" else 1) * _FACTOR_EMU
                cands.append((c, {"map": "bram", "BRAM": repl * units, "LUTRAM": 0, "URAM": 0,
                                  "config": f"{name} {depth_u}x{u} x{repl}", "cost": c}))
                if m.kind == "rom" and mult_a > 1:
                    # libmap also lays address ranges side by side across a wide block's data
                    # bits (parity bits included) and muxes the read: a 50176x1 ROM fits three
                    # 2048x9 RAMB18s (25 ranges of 2048 words, 9 per block) instead of four 16Kx1,
                    # an 8192x32 one fifteen (4 ranges x 32 bits over 9-bit words), not sixteen
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


def mem_features(mems: list[MemSpec], family: str) -> dict:
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


def dsp_product(wd, xd, family: str) -> int:
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


def fifo_memories(width: int, depth: int) -> list[MemSpec]:
    return [MemSpec("storage", depth - 1, width, "sdp")] if depth >= 3 else []


def fifo_features(width: int, depth: int, family: str) -> dict:
    mem = mem_features(fifo_memories(width, depth), family)
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


def shapes_to_specs(shapes, kind: str, style: str = "auto") -> list[MemSpec]:
    """The non-empty memories of ``shapes`` as ``kind`` memories in ``style`` (at least one word)."""
    return [MemSpec(m.name, max(int(m.depth), 1), int(m.width), kind, style) for m in shapes
            if int(m.depth) * int(m.width) > 0]


def exact(mem: dict, dsp: int = 0) -> dict:
    """The exactly counted resources of a part whose memories gave ``mem`` (:func:`mem_features`)."""
    return {"BRAM": mem["BRAM"], "LUTRAM": mem["LUTRAM"], "URAM": mem["URAM"], "DSP": dsp}


def dwc_features(width: int, a: int, b: int, family: str) -> dict:
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




#: LUT/FF feature names of the stream plumbing, in calibration order (units: their kind records)
PLUMBING_FEATURES = {
    "fifo": {"LUT": ["const", "skid", "ptr", "lut_w", "bram_w", "ram", "lutram_mux"],
             "FF": ["const", "regs", "ptr", "lut_w", "bram_w", "ram"]},
    "dwc": {"LUT": ["const", "buf", "ins", "count", "split", "splitw"], "FF": ["const", "buf", "count"]},
}
PLUMBING_DEFAULT_COEF = {
    "fifo": {"LUT": {"const": 3, "skid": 1, "ptr": 8, "lut_w": 0.3, "bram_w": 0.3, "ram": 0.3,
                     "lutram_mux": 1},
             "FF": {"const": 2, "regs": 1, "ptr": 4, "lut_w": 1, "bram_w": 1, "ram": 1}},
    "dwc": {"LUT": {"const": 4, "buf": 1, "ins": 0.3, "count": 3, "split": 0.5}, "FF": {"const": 0, "buf": 1, "count": 1}},
}

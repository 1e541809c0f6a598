"""The matrix-vector unit (FINN's MVAU): dense layers and the channel-mixing part of convolutions.

``weights`` is ``(MH, MW)``: one row per output channel; the unit processes ``prod(rows_shape)``
input vectors per frame. ``pe`` output channels and ``simd`` input elements are computed per
cycle; one vector takes ``(MH/pe) * (MW/simd)`` cycles. Semantics: :mod:`.dot_product`
(XNOR-popcount when weights and inputs are bipolar). Hardware: :mod:`streamfold.hw.mvau`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..datatypes import DataType, StreamSpec
from ..memory import MemSpec
from ..resource_model import LUT_K, clog2, dsp_product, exact, mem_features, rom_columns
from ..rom_images import mvau_threshold_image, mvau_weight_image
from ..schedule import BIG, chain, rchain, unbounded_tail
from .base import FoldError, UnitKind, divisors
from .dot_product import (DECOUPLED_LATENCY, DotProductUnit, activate, for_strip, pixel_step, product_columns,
                          products_in_dsp, signed_digits, stage_flipflops, add_decoupled_buffer,
                          tree_split_bits)

#: cycles from the step that ends a neuron fold to the output handshake (hw.mvau: LATENCY 3 + 1),
#: before the unit's register stages (:func:`latency`)
MVAU_LATENCY = 4


def latency(u) -> int:
    """:data:`MVAU_LATENCY` plus the registers ``tree_stages``, ``out_stages``, the input
    copies (``input_copies`` > 1: one) and the decoupled mode's output buffer add."""
    return (MVAU_LATENCY + u.tree_stages + u.out_stages + int(u.input_copies > 1 or u.weight_register)
            + DECOUPLED_LATENCY * bool(u.decoupled))


@dataclass
class MatrixVectorUnit(DotProductUnit):
    """Matrix-vector product with optional multi-threshold activation (module docstring)."""

    kind: ClassVar[str] = "mvau"
    pe: int = 1
    simd: int = 1
    ram_style: str = "auto"
    res_type: str = "auto"
    tree_stages: int = 0
    out_stages: int = 0
    decoupled: int = 0
    input_copies: int = 0
    #: 1: a few-word weight ROM in soft logic is read into one register per weight bit, kept
    #: apart in synthesis, beside the lane that uses it (not one register per distinct column,
    #: each driving every lane with that column: the broadcast nextpnr found on TFC's fc0)
    local_weights: int = 0
    #: 1: a register after the weight ROM's read (and one on the input word, to match): a block
    #: RAM's clock-to-output (5.8 ns on ECP5 in nextpnr) then has a path of its own
    weight_register: int = 0
    #: N >= 1: a few-word weight ROM in soft logic is read by every PE lane from its own N copies
    #: of the word address (kept apart in synthesis; each for 1/N of the lane's SIMD elements),
    #: the weights staying logic of the address folded into the products; without it the ROM's
    #: one read register is merged by synthesis into a few flip-flops that drive every product
    #: (the demo's conv1 at 100 MHz: nextpnr's critical path, 8.5 of its 11.4 ns routing)
    lane_addresses: int = 0
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
        if not 0 <= self.input_copies <= self.pe:
            raise FoldError(f"layer {self.name}: input_copies={self.input_copies}: at most one copy of "
                            f"the input per PE (PE={self.pe}); 0 or 1 for none")
        if self.local_weights not in (0, 1):
            raise FoldError(f"layer {self.name}: local_weights is 0 or 1, got {self.local_weights!r}")
        if self.weight_register not in (0, 1):
            raise FoldError(f"layer {self.name}: weight_register is 0 or 1, got {self.weight_register!r}")
        if self.weight_register and self.neuron_fold * self.synapse_fold == 1:
            raise FoldError(f"layer {self.name}: weight_register needs a weight memory; with one weight "
                            "word (PE*SIMD = all weights) the weights are constants")
        if (isinstance(self.lane_addresses, bool) or not isinstance(self.lane_addresses, (int, np.integer))
                or not 0 <= self.lane_addresses <= self.simd):
            raise FoldError(f"layer {self.name}: lane_addresses is 0 (none) or 1..SIMD={self.simd} copies of "
                            f"the weight address per PE lane, got {self.lane_addresses!r}")
        if self.lane_addresses and (self.local_weights or self.weight_register):
            raise FoldError(f"layer {self.name}: lane_addresses (a word address per PE lane) excludes "
                            "local_weights and weight_register (registers after the read)")
        if self.weight_register and self.local_weights:
            raise FoldError(f"layer {self.name}: weight_register (a block RAM's read registered) and "
                            "local_weights (a soft-logic ROM's bits registered per lane) exclude each other")


# ----------------------------------------------------------------------------- reference
def reference(u: MatrixVectorUnit, x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.int64)
    dot = x @ np.asarray(u.weights, dtype=np.int64).T
    return activate(u, (dot + u.mw) // 2 if u.binary else dot)


# ----------------------------------------------------------------------------- cycles, schedule
def cycles(u: MatrixVectorUnit) -> int:
    """One (neuron fold, synapse fold) step per clock for every input vector."""
    return u.rows * u.neuron_fold * u.synapse_fold


def _steps(u, n: int, fold: int) -> np.ndarray:
    """Step index of the step that takes input beat ``k`` (``(k // SF)*NF*F + k % SF``, with
    ``F = SF`` cycles per neuron fold unless paced)."""
    nf_, sf_ = u.neuron_fold, u.synapse_fold
    k = np.arange(n, dtype=np.int64)
    return (k // sf_) * (nf_ * fold) + k % sf_


def timeline(u, avail, frames, pace=1):
    """One ``(nf, sf)`` step per clock; input beat ``sf`` of vector ``v`` taken at step
    ``(v, 0, sf)``; output beat ``(v, nf)`` :data:`MVAU_LATENCY` after the vector's last step of
    neuron fold ``nf`` (:func:`latency`). A splitter after it stretches every neuron fold to ``max(SF, pace)``."""
    nf_, sf_ = u.neuron_fold, u.synapse_fold
    fold = max(sf_, pace)
    g = _steps(u, avail.size, fold)
    r = chain(avail, g)
    last = r[sf_ - 1::sf_]  # step (v, 0, SF-1) of every vector
    out = last[:, None] + (np.arange(nf_, dtype=np.int64) * fold)[None, :] + latency(u)
    return r, out.reshape(-1)


def latest(u, dl, frames, earliest, pace=1):
    nf_, sf_ = u.neuron_fold, u.synapse_fold
    fold = max(sf_, pace)
    n_in = earliest.size
    g = _steps(u, n_in, fold)
    bound = (dl.reshape(-1, nf_) - (np.arange(nf_, dtype=np.int64) * fold)[None, :]
             - latency(u)).min(axis=1)
    late = np.full(n_in, BIG, dtype=np.int64)
    late[sf_ - 1::sf_] = bound
    return unbounded_tail(rchain(late, g), earliest, g)


# ----------------------------------------------------------------------------- resources
def memories(u) -> list[MemSpec]:
    """Weight ROM (``NF*SF`` words of ``pe*simd`` weights), threshold ROM (``NF`` words), and the
    input buffer that replays a vector for every neuron fold."""
    NF, SF = u.neuron_fold, u.synapse_fold
    style = u.ram_style or "auto"
    mems = []
    # the images the hardware loads (compiler/rom_images.py): the same words, the same rule for
    # which become memories
    for name, image in (("weights", mvau_weight_image), ("thresholds", mvau_threshold_image)):
        img = image(u)
        if img.in_rom:
            mems.append(MemSpec(name, img.depth, img.width, "rom", style, img.bit_matrix))
    if NF > 1:
        mems.append(MemSpec("inbuf", SF, u.simd * u.in_dtype.bits, "sp"))
    return mems


def local_weight_bits(u) -> int:
    """Weight bits that vary over the ROM's words: the registers of ``local_weights``."""
    img = np.asarray(mvau_weight_image(u).bit_matrix(), dtype=np.uint8)
    return int((img.min(axis=0) != img.max(axis=0)).sum()) if img.size else 0


def lane_terms(u) -> tuple[list, list | None]:
    """Each PE lane's adder-tree terms as :meth:`streamfold.hw.dot_product.DotProductUnit.products`
    builds them, ``(width, signed)`` each, ``None`` where a term is constant zero (a weight, or a
    weight bit, that is zero in every word), and their identities (lanes that read the same input
    register and have the same weights in every word compute the same terms; None where no two
    lanes share a term): what :func:`~streamfold.compiler.units.dot_product.lane_register_bits`
    counts registers from."""
    pe, simd = u.pe, u.simd
    wd, xd = u.weight_dtype, u.in_dtype
    if u.binary:
        return [[(1, False)] * simd] * pe, None
    image = mvau_weight_image(u)
    codes = np.asarray(image.codes).reshape(-1, pe, simd)  # (words, pe, simd)
    x = (xd.bits, bool(xd.signed))
    copies = u.input_copies if u.input_copies > 1 else 1
    group = [p * copies // pe for p in range(pe)]  # the input copy a lane reads
    shared = not u.local_weights  # lane-local weight registers are kept apart
    col = [[hash((group[p], s, codes[:, p, s].tobytes())) for s in range(simd)] for p in range(pe)]

    def shifted(k, negate=False):
        w, sg = x[0] + k, x[1]
        return (w + 1, True) if negate else (w, sg)

    if not image.in_rom and not xd.bipolar:  # constant weights: signed digits of each
        w = wd.decode(codes[0])
        digits = [[signed_digits(int(w[p, s])) for s in range(simd)] for p in range(pe)]
        terms = [[shifted(k, d < 0) for s in range(simd) for k, d in digits[p][s]] for p in range(pe)]
        keys = [[(col[p][s], k) for s in range(simd) for k, _ in digits[p][s]] for p in range(pe)]
        return terms, keys if shared else None
    if u.res_type == "lut" and not (wd.bipolar or xd.bipolar):  # shifted partial products
        n = wd.bits
        bit_live = [((codes >> k) & 1).any(axis=0) for k in range(n)]
        terms = [[shifted(k, wd.signed and k == n - 1) if bit_live[k][p, s] else None
                  for s in range(simd) for k in range(n)] for p in range(pe)]
        # (lanes with the same weights here are not merged as far as their registers: measured,
        # counting them once underestimated by 13%, counting each lane's is within 8%)
        return terms, None
    if wd.bipolar or xd.bipolar:
        other = xd if wd.bipolar else wd
        shape = (other.bits + 1, True)
    else:
        ends = [a * b for a in (wd.min, wd.max) for b in (xd.min, xd.max)]
        rng = DataType.for_range(min(ends), max(ends))
        full = wd.bits + xd.bits
        shape = (rng.bits, bool(rng.signed)) if rng.bits < full else (full, bool(wd.signed or xd.signed))
    # a weight the same in every word is a constant: synthesis narrows its product to the
    # product's range (a bipolar +1 leaves the input as it is, unsigned)
    fixed = (codes == codes[:1]).all(axis=0)
    value = wd.decode(codes[0])

    def term(p, s):
        if not fixed[p, s]:
            return shape
        w = int(value[p, s])
        if w == 0:
            return None
        r = DataType.for_range(min(w * xd.min, w * xd.max), max(w * xd.min, w * xd.max))
        return r.bits, bool(r.signed)

    terms = [[term(p, s) for s in range(simd)] for p in range(pe)]
    return terms, (col if shared else None)


#: LUTs per bit of the partial sums a tree stage registers below the tree's top
#: (:func:`~streamfold.compiler.units.dot_product.tree_split_bits`): measured on ECP5 with the
#: digits demo staged for 100 MHz (conv0, conv1 and conv2 staged, 7,247 such bits: 2,358 more
#: CCU2C than unstaged, 4,186 LUTs over the estimate without it). Not measured on other families.
TREE_SPLIT_LUT_PER_BIT = {"ecp5": 0.58}


def features(u, family: str) -> dict:
    pe, simd = u.pe, u.simd
    NF, SF = u.neuron_fold, u.synapse_fold
    wd, xd = u.weight_dtype, u.in_dtype
    ab, ob, ib = u.acc_dtype.bits, u.out_dtype.bits, xd.bits
    n_thr = u.n_thresholds if u.thresholds is not None else 0
    mems = memories(u)
    mem = mem_features(mems, family)
    # a threshold ROM in soft logic: wide and shallow (one word per output fold), its columns
    # registered and compared; priced apart from weight ROMs, whose deep columns feed products
    tmem = mem_features([m for m in mems if m.name == "thresholds"], family)
    ctr = clog2(NF) * 3 + clog2(SF) + clog2(NF * SF)
    dsp = 0
    pop = neg = mul = lmul = tree = wfun = soft = 0
    wide = False
    operands = pe * simd  # terms into the adder trees
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
        if NF * SF == 1 and not xd.bipolar:
            # constant weights: each product is a shifted copy of the input per signed digit of its
            # weight (hw/elements.constant_products), added into the tree; no multiplier, no DSP
            operands = sum(len(signed_digits(int(w))) for w in np.asarray(u.weights).ravel())
        elif (mem["where"].get("weights") == "logic" and not xd.bipolar and not wd.bipolar
              and clog2(NF * SF) + xd.bits <= 6 and not products_in_dsp(u, family)
              and not (u.res_type == "lut" and xd.signed)):
            # a few-word weight ROM in soft logic and a product Yosys leaves in soft logic: each
            # product is a function of the word address and the input element, one LUT per
            # product bit (Yosys folds the ROM into it); a lane whose words are all zero has none
            # (partial products of a signed input do not fold so: measured at twice the LUTs)
            words = wd.decode(mvau_weight_image(u).codes)
            operands = int((words != 0).any(axis=0).sum())
            wfun = product_columns(words, xd, pbits)
            # where the address and input bits fill a LUT or more (ECP5: 4 words and 4-bit inputs
            # into a LUT4; xc7: the same into a LUT6) a product bit takes several LUTs: priced apart
            wide = clog2(NF * SF) + xd.bits >= LUT_K[family]
        elif wd.bipolar or xd.bipolar:
            other = xd if wd.bipolar else wd
            neg = pe * simd * (other.bits + 1)
        elif u.res_type == "lut":
            # products in soft logic by choice: shifted partial products into the adder tree
            # (hw/elements.partial_products), whether or not Yosys would have taken DSP blocks
            soft = pe * simd * wd.bits * xd.bits
        else:
            per = dsp_product(wd, xd, family)
            if per:
                dsp = pe * simd * per
            elif wd.bits + xd.bits <= LUT_K[family]:
                lmul = pe * simd * pbits  # a product of few input bits: a LUT per output bit
            else:
                mul = pe * simd * wd.bits * xd.bits
        tree = operands * pbits
    lut = {"const": 1, "pop": pop, "popc": popc, "neg": neg, "mul": mul, "lmul": lmul, "tree": tree, "acc": pe * ab,
           # a threshold compare: against a constant (one output fold) or against a threshold
           # word read per fold, which synthesis cannot fold into the compare
           "cmp": pe * n_thr * ab * (NF == 1), "cmpv": pe * n_thr * ab * (NF > 1),
           "rom": mem["rom_lut"] - tmem["rom_lut"],
           "romd": mem["rom_deep"] - tmem["rom_deep"], "trom": tmem["rom_lut"],
           "tromd": tmem["rom_deep"], "xmux": (NF > 1) * simd * ib, "ctr": ctr,
           "ram": mem["ram_bits"], "dsp": dsp, "lutmux": mem["lutram_mux"],
           "treelog": operands * clog2(simd),  # adder-tree depth grows with log2(simd)
           # weights in soft logic: the ROM outputs feed the products directly
           "wlogic": pe * simd * wd.bits * (mem["where"].get("weights") == "logic") * (not wfun),
           # few-word products of signed inputs: sign extension into the tree costs more
           "wfun": wfun * (not xd.signed) * (not wide), "wfuns": wfun * xd.signed * (not wide),
           # partial products of a signed input: its sign bit's row is negated and sign-extended
           # into the tree (calibration points INT4 x INT4, INT2N x INT2N: 20% over unsigned ones)
           "wfunw": wfun * wide, "soft": soft * (not xd.signed), "softs": soft * xd.signed}
    ff = {"const": 1, "x": simd * ib, "dot": pe * min(dot_bits, ab), "acc": pe * ab, "out": pe * ob,
          "mem": mem["mem_reg"], "ctr": ctr, "ram": mem["ram_bits"]}
    out = {"LUT": lut, "FF": ff, "exact": exact(mem, dsp), "memories": mem["maps"]}
    if u.tree_stages or u.out_stages or u.input_copies > 1 or u.weight_register:
        abits = clog2(NF * SF) if mvau_weight_image(u).in_rom else 0  # the delayed ROM address
        terms, keys = lane_terms(u)
        out["fixed"] = {"FF": stage_flipflops(u, 0, 0, NF, abits, terms, keys)}
        if u.tree_stages:  # the separate adders a cut leaves, each with its own carry chain
            out["fixed"]["LUT"] = TREE_SPLIT_LUT_PER_BIT.get(family, 0.0) * tree_split_bits(
                terms, u.tree_stages, keys)
    if u.local_weights and mvau_weight_image(u).in_rom:
        # every varying weight bit its own register (the ROM's registers count distinct columns)
        regs, _ = rom_columns(mvau_weight_image(u).bit_matrix())
        varying = local_weight_bits(u)
        out.setdefault("fixed", {"FF": 0})
        out["fixed"]["FF"] = out["fixed"].get("FF", 0) + max(0, varying - regs)
        if u.input_copies > 1:  # the word address copied per input copy (one was there already)
            out["fixed"]["FF"] += (u.input_copies - 1) * clog2(NF * SF)
    if u.lane_addresses and mvau_weight_image(u).in_rom:
        out.setdefault("fixed", {"FF": 0})
        out["fixed"]["FF"] = out["fixed"].get("FF", 0) + u.pe * u.lane_addresses * clog2(NF * SF)
    return add_decoupled_buffer(u, out, family)


KIND = UnitKind(
    name="mvau", ir=MatrixVectorUnit, reference=reference, cycles=cycles,
    hardware="streamfold.hw.mvau:MatrixVectorUnitHW",
    timeline=timeline, latest=latest, paced=True, memories=memories, features=features,
    feature_names={"LUT": ["const", "pop", "popc", "neg", "mul", "tree", "acc", "cmp", "cmpv", "rom", "xmux", "ctr",
                           "ram", "dsp", "lutmux", "treelog", "wlogic", "romd", "wfun", "wfuns",
                           "soft", "softs", "trom", "tromd", "lmul", "wfunw"],
                   "FF": ["const", "x", "dot", "acc", "out", "mem", "ctr", "ram"]},
    default_coef={"LUT": {"const": 20, "pop": 1.2, "popc": 1.0, "neg": 0.6, "mul": 1.0, "tree": 1.0, "acc": 1.0,
                          "cmp": 0.5, "cmpv": 1.0, "rom": 1.3, "xmux": 1.0, "ctr": 2.0, "ram": 0.3, "dsp": 1.0,
                          "lutmux": 1.0, "treelog": 0.2, "wlogic": 0.0, "romd": 2.0, "wfun": 1.0, "wfuns": 1.5,
                          "soft": 2.5, "softs": 3.0, "trom": 1.3, "tromd": 2.0, "lmul": 1.0, "wfunw": 3.0},
                  "FF": {"const": 8, "x": 1, "dot": 1, "acc": 1, "out": 1, "mem": 1, "ctr": 1, "ram": 1}},
    column_step=pixel_step, for_strip=for_strip,
)

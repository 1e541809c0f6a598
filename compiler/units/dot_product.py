"""What the matrix-vector and vector-vector units share: integer dot products of a weight row with
its input, optionally followed by multi-threshold activation.

Integer semantics (for each input vector ``x`` and output channel ``c``):

* ``acc[c] = sum_i W[c, i] * x[i]`` with values decoded (bipolar -> -1/+1), except in *binary*
  mode (weights and inputs both bipolar), where ``acc[c] = popcount(xnor(W_bits[c], x_bits))``,
  the number of matching signs, in ``[0, len(x)]``.
* With thresholds ``T[c, 0..n-1]`` (ascending): ``count = sum_k (acc[c] >= T[c, k])``; the
  output value is ``out_bias + count``; for a bipolar output the output bit is ``count`` (n == 1).
* Without thresholds the output is ``acc`` itself.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..datatypes import DataType
from .base import PER_PIXEL, Unit


@dataclass
class DotProductUnit(Unit):
    """Fields and semantics the dot-product kinds share (see the module docstring); a kind adds
    its folding knobs, then ``ram_style`` and ``source``."""

    name: str
    weights: np.ndarray
    weight_dtype: DataType
    in_dtype: DataType
    out_dtype: DataType
    thresholds: np.ndarray | None = None
    out_bias: int = 0
    rows_shape: tuple = ()

    @property
    def rows(self) -> int:
        return int(math.prod(self.rows_shape))

    @property
    def binary(self) -> bool:
        """XNOR-popcount mode: both weights and inputs are bipolar."""
        return self.weight_dtype.bipolar and self.in_dtype.bipolar

    @property
    def acc_range(self) -> tuple[int, int]:
        """Exact (min, max) of the accumulator over all valid inputs."""
        if self.binary:
            return 0, int(self.weights.shape[1])
        w = self.weights.astype(np.int64)
        a, b = w * self.in_dtype.min, w * self.in_dtype.max
        return int(np.minimum(a, b).sum(1).min()), int(np.maximum(a, b).sum(1).max())

    @property
    def acc_dtype(self) -> DataType:
        lo, hi = self.acc_range
        if self.thresholds is not None and self.thresholds.size:
            lo, hi = min(lo, int(self.thresholds.min())), max(hi, int(self.thresholds.max()))
        return DataType.for_range(min(lo, 0), hi)

    @property
    def n_thresholds(self) -> int:
        return 0 if self.thresholds is None else int(self.thresholds.shape[1])


#: where a dot-product unit's multi-bit products go (fold.json ``res_type``, FINN's resType): "auto"
#: lets synthesis map each multiplication (to DSP blocks where the operand widths qualify), "lut"
#: builds it from shifted partial products in soft logic (:func:`streamfold.hw.elements.partial_products`)
RES_TYPES = ("auto", "lut")


def has_multipliers(u: DotProductUnit) -> bool:
    """Whether the unit's products are multiplications of a stored weight by an input (not XNOR or
    sign flips of bipolar operands, not the constant-weight shifts of a one-word weight image)."""
    from ..rom_images import mvau_weight_image, vvau_weight_image

    if u.weight_dtype.bipolar or u.in_dtype.bipolar:
        return False
    image = mvau_weight_image(u) if u.kind == "mvau" else vvau_weight_image(u)
    return bool(image.in_rom)


def products_in_dsp(u: DotProductUnit, family: str) -> int:
    """DSP blocks per product on ``family`` (0: soft logic, by ``res_type`` or by the widths)."""
    from ..resource_model import dsp_product

    if u.res_type == "lut" or not has_multipliers(u):
        return 0
    return dsp_product(u.weight_dtype, u.in_dtype, family)


#: clock edges the decoupled mode's output buffer adds between the output register and the stream
DECOUPLED_LATENCY = 2


def decoupled_buffer_depth(stages: int) -> int:
    """Beats of a decoupled dot-product unit's output buffer for ``stages`` extra registers
    between a step and its output (tree stages, the input copies' register, output stages): the
    datapath's own three, the registers added, the buffer's latency and two spare."""
    return 3 + int(stages) + DECOUPLED_LATENCY + 2


def add_decoupled_buffer(u, out: dict, family: str) -> dict:
    """Add a decoupled unit's output buffer (a FIFO of the output beat, :func:`decoupled_buffer_depth`
    deep, as the resource model prices FIFOs) to the unit's feature dict ``out``."""
    if not getattr(u, "decoupled", 0):
        return out
    from ..resources import estimate_part

    stages = u.tree_stages + u.out_stages + int(getattr(u, "input_copies", 0) > 1
                                                or getattr(u, "weight_register", 0))
    e = estimate_part("fifo", {"width": u.out_stream.beat_bits, "depth": decoupled_buffer_depth(stages)}, family)
    fixed = out.setdefault("fixed", {})
    for k in ("LUT", "FF"):
        fixed[k] = fixed.get(k, 0) + e[k]
    for k in ("LUTRAM", "BRAM"):
        out["exact"][k] = out["exact"].get(k, 0) + e.get(k, 0)
    return out


def tree_levels(n: int) -> int:
    """Adder levels of a balanced tree of ``n`` terms."""
    return max(0, (max(1, n) - 1).bit_length())


def stage_cuts(layers: int, stages: int) -> list[int]:
    """Where ``stages`` registers split a path of ``layers`` logic layers: the layer indices
    (0-based) a register follows; never after the last layer (the register that ends the path is
    already there). Every segment above the first gets ``layers // (stages + 1)`` layers and the
    first the rest: upper adder levels are wider and slower, and a cut low in a tree splits it into
    many small adders (on ECP5 each its own carry chain: TFC fc0 with cuts after layers 2 and 4
    took 2,889 CCU2C, with one after layer 3 1,546). The hardware
    (:func:`streamfold.hw.elements.staged_tree_sum`) places its registers by this rule and adds
    any left over at the tree's end."""
    stages = max(0, min(int(stages), layers - 1))
    if not stages:
        return []
    base = layers // (stages + 1)
    return [layers - 1 - j * base for j in range(stages, 0, -1)]


def tree_register_bits(lanes: int, terms: int, term_bits: int, stages: int) -> int:
    """Flip-flops of ``stages`` registers in ``lanes`` balanced adder trees of ``terms`` terms of
    ``term_bits`` bits (a term grows a bit per adder level), as the hardware places them."""
    depth = tree_levels(terms)
    cuts = stage_cuts(depth + 1, stages)
    bits = sum(-(-terms // (1 << layer)) * (term_bits + layer) for layer in cuts)
    bits += (int(stages) - len(cuts)) * (term_bits + depth)
    return lanes * bits


def _sum_shape(a: tuple, b: tuple) -> tuple:
    """The (width, signed) of ``a + b`` as Amaranth widens it: an unsigned operand beside a signed
    one gains a sign bit, and the sum a carry bit."""
    (wa, sa), (wb, sb) = a, b
    if sa != sb:
        wa, wb = wa + (not sa), wb + (not sb)
    return max(wa, wb) + 1, sa or sb


def lane_register_bits(terms: list, stages: int, keys: list | None = None, seen: set | None = None,
                       depth: int | None = None, split_only: bool = False) -> int:
    """Flip-flops of ``stages`` registers in one lane's balanced adder tree whose layer-0 terms
    are ``terms``, each ``(width, signed)`` or ``None`` for a term that is constant zero, as
    :func:`streamfold.hw.elements.staged_tree_sum` places them: pairs added in order, every sum
    as wide as Amaranth makes it; a register of a constant-zero sum is left out (synthesis
    removes it, as it removes a product of a zero weight). With ``keys`` (a hashable identity per
    term: the same key, the same signal) and ``seen`` (the registers other lanes already have,
    shared across calls), a register that holds the same sum as another lane's is counted once,
    as synthesis merges them (lanes that read the same input and have the same weights).
    ``depth``: the adder levels of the unit's deepest lane, where the hardware cuts every lane
    (default: this lane's own). ``split_only``: only the registers of cuts below the tree's top,
    the partial sums that split it into separate adders (:func:`tree_split_bits`)."""
    terms = list(terms) or [None]
    keys = list(keys) if keys is not None else None
    depth = tree_levels(len(terms)) if depth is None else depth
    cuts = stage_cuts(depth + 1, stages)
    bits = 0
    for layer in range(depth + 1):
        if layer > 0:
            nxt, nkeys = [], []
            for j in range(0, len(terms), 2):
                a, b = terms[j], (terms[j + 1] if j + 1 < len(terms) else None)
                nxt.append(a if b is None else b if a is None else _sum_shape(a, b))
                if keys is not None:
                    nkeys.append(hash((keys[j], keys[j + 1] if j + 1 < len(terms) else None)))
            terms, keys = nxt, (nkeys if keys is not None else None)
        if layer in cuts and not (split_only and len(terms) <= 1):
            for j, t in enumerate(terms):
                if t is None:
                    continue
                if keys is not None and seen is not None:
                    k = (layer, j, keys[j])
                    if k in seen:
                        continue
                    seen.add(k)
                bits += t[0]
    if terms[0] is not None and not split_only:
        bits += (int(stages) - len(cuts)) * terms[0][0]
    return bits


def lanes_register_bits(lane_terms: list, stages: int, lane_keys: list | None = None,
                        split_only: bool = False) -> int:
    """:func:`lane_register_bits` over every PE lane, all cut at the deepest lane's levels; with
    ``lane_keys`` a register two lanes share is counted once, and lanes that are one list (binary
    units) are walked once."""
    depth = max((tree_levels(len(t)) for t in lane_terms), default=0)
    seen: set = set()
    counted: dict = {}
    bits = 0
    for p, t in enumerate(lane_terms):
        if lane_keys is not None:
            bits += lane_register_bits(t, stages, lane_keys[p], seen, depth, split_only)
            continue
        if id(t) not in counted:
            counted[id(t)] = lane_register_bits(t, stages, depth=depth, split_only=split_only)
        bits += counted[id(t)]
    return bits


def tree_split_bits(lane_terms: list, stages: int, lane_keys: list | None = None) -> int:
    """Bits of the registered partial sums where register stages split each lane's adder tree
    (cuts below its top), counted as :func:`stage_flipflops` counts them. Unstaged, synthesis
    builds a lane's tree as one multi-operand adder: compressors in LUTs and one carry chain at
    the end. A cut leaves that many separate sums, each finished by its own carry chain, which on
    ECP5 costs LUTs in proportion to their bits (``units.mvau.TREE_SPLIT_LUT_PER_BIT``)."""
    return lanes_register_bits(lane_terms, stages, lane_keys, split_only=True) if stages else 0


def stage_flipflops(u: DotProductUnit, terms: int, term_bits: int, folds: int, weight_bits: int = 0,
                    lane_terms: list | None = None, lane_keys: list | None = None) -> int:
    """Flip-flops the register stages and input copies of a dot-product unit add (one per bit by
    construction, so counted, not fitted): the adder-tree registers (``terms`` per PE lane of
    ``term_bits``), the compare-and-count registers, the step flags that travel with them
    (``folds``: output folds, the fold tag's range) and, for input copies, the copies and the
    delayed weight word (``weight_bits``). With ``lane_terms`` (each PE lane's layer-0 terms, as
    :func:`lane_register_bits` takes them) the tree registers are counted at their exact widths,
    and with ``lane_keys`` (their identities) a register two lanes share is counted once."""
    pe = u.pe
    copies = getattr(u, "input_copies", 0)
    wreg = getattr(u, "weight_register", 0)
    copy = int(copies > 1 or wreg)
    if lane_terms is not None:
        ff = lanes_register_bits(lane_terms, u.tree_stages, lane_keys)
    else:
        ff = tree_register_bits(pe, terms, term_bits, u.tree_stages)
    flag_bits = 3 + max(0, (folds - 1).bit_length()) if folds > 1 else 3
    ff += (u.tree_stages + copy) * flag_bits
    k = u.out_stages
    if k:
        n_thr = u.n_thresholds if u.thresholds is not None else 0
        if n_thr:
            ff += tree_register_bits(pe, n_thr, 1, k)
        else:
            ff += k * pe * u.acc_dtype.bits
        ff += k  # the output valid flag
    if copies > 1:
        ff += copies * u.simd * u.in_dtype.bits + (0 if wreg else weight_bits)
    elif wreg:
        ff += u.simd * u.in_dtype.bits  # the input word's register
    if wreg:
        ff += pe * u.simd * u.weight_dtype.bits  # the weight word's register
    return ff


def activate(u: DotProductUnit, acc: np.ndarray) -> np.ndarray:
    """The unit's output values for accumulators ``acc (..., C)``: thresholds, or ``acc``."""
    if u.thresholds is None:
        return acc
    return apply_thresholds(acc, np.asarray(u.thresholds, dtype=np.int64), u.out_dtype, u.out_bias)


def apply_thresholds(acc: np.ndarray, thresholds: np.ndarray, out_dtype, out_bias: int) -> np.ndarray:
    """acc (..., C), thresholds (C, T) ascending -> output values (..., C)."""
    count = (acc[..., :, None] >= thresholds).sum(axis=-1).astype(np.int64)
    if out_dtype.bipolar:
        return 2 * count - 1
    return out_bias + count


def pixel_step(u: DotProductUnit):
    """Under tiling: one vector per pixel maps columns one to one; a dense layer needs the frame."""
    return PER_PIXEL if len(u.rows_shape) == 2 else None


def for_strip(u: DotProductUnit, width: int) -> DotProductUnit:
    return u.replace(rows_shape=(u.rows_shape[0], int(width)))


def signed_digits(w: int) -> list[tuple[int, int]]:
    """The non-adjacent form of ``w``: ``[(shift, sign), ...]`` with ``w = sum(sign << shift)``,
    no two digits adjacent, the fewest non-zero digits of any signed-digit form. A product with a
    constant weight is these shifted copies of the input added up (``[]`` for 0, one copy for a
    power of two): what the hardware builds when a fold gives every lane one weight."""
    digits, k, w = [], 0, int(w)
    while w:
        if w & 1:
            d = 2 - (w & 3)  # +1 where w = 1 mod 4, -1 where w = 3 mod 4
            digits.append((k, d))
            w -= d
        w >>= 1
        k += 1
    return digits


def product_columns(words: np.ndarray, xd: DataType, pbits: int) -> int:
    """Bit columns of few-word soft-logic products that need logic, summed over lanes.

    ``words`` is ``(n_words, lanes)`` signed weights; a lane's product ``w[addr] * x`` is a
    function of the word address and the input element, and each of its ``pbits`` output bits a
    column of that function's truth table. Counted per lane: the distinct columns that are neither
    constant nor one of the input's own bits (sign extension repeats a column, a weight of 1 passes
    ``x`` through, a lane of zeros has none). Trained low-bit weights (many zeros, many equal
    words) have far fewer than ``lanes * pbits``: Yosys folds the ROM and the product into the
    same LUTs and drops what is constant or repeated."""
    w = np.asarray(words, dtype=np.int64)
    xs = np.arange(xd.min, xd.max + 1, dtype=np.int64)
    m = w.shape[0] * xs.size
    if m > 64 or w.size == 0:
        raise ValueError("product_columns: at most 64 (word, input) pairs per lane")
    row_bit = np.left_shift(np.uint64(1), np.arange(m, dtype=np.uint64))

    def key(bits):  # a column of m truth-table bits as one integer
        return np.bitwise_or.reduce(bits.astype(np.uint64) * row_bit.reshape((m,) + (1,) * (bits.ndim - 1)), axis=0)

    table = (w[:, None, :] * xs[None, :, None]).reshape(m, -1) & ((1 << pbits) - 1)  # (m, lanes)
    keys = key((table[:, :, None] >> np.arange(pbits)) & 1).ravel()                  # lanes * pbits
    full = np.uint64((1 << m) - 1) if m < 64 else np.uint64(0xFFFFFFFFFFFFFFFF)
    x_rows = np.tile(xs & ((1 << max(xd.bits, 1)) - 1), w.shape[0])
    x_keys = np.array([key((x_rows >> j) & 1) for j in range(xd.bits)], dtype=np.uint64)
    lanes = np.repeat(np.arange(table.shape[1]), pbits)
    live = (keys != 0) & (keys != full) & ~np.isin(keys, x_keys)
    return int(np.unique(np.stack([lanes[live], keys[live].view(np.int64)]), axis=1).shape[1])

"""Element-level helpers of the dot-product datapath (:mod:`.dot_product`): lane slicing, decoding
element codes (bipolar -> -1/+1, two's complement), products and balanced adder trees. Memory
words are packed by :mod:`streamfold.compiler.rom_images`."""
from __future__ import annotations

from amaranth.hdl import Const, Mux, Signal, signed, unsigned

from streamfold.compiler.ir import DataType
from streamfold.compiler.units.dot_product import signed_digits, stage_cuts, tree_levels


def shape_of(dtype: DataType):
    """Amaranth shape of a plain (non-bipolar) IR datatype."""
    return signed(dtype.bits) if dtype.signed else unsigned(dtype.bits)


def tree_sum(terms: list):
    """Balanced adder tree (Amaranth widens every addition, so nothing overflows)."""
    terms = list(terms)
    if not terms:
        return Const(0, 1)
    while len(terms) > 1:
        terms = [terms[j] + terms[j + 1] if j + 1 < len(terms) else terms[j]
                 for j in range(0, len(terms), 2)]
    return terms[0]


def staged_tree_sum(m, en, lanes_terms: list[list], stages: int, name: str) -> list:
    """A balanced adder tree per lane (``lanes_terms``: each lane's terms, layer 0) split by
    exactly ``stages`` registers loaded on ``en``: spread over the layers by :func:`stage_cuts`
    (layer ``l >= 1`` is adder level ``l``), any the tree is too shallow for added at its end.
    Every lane gets a register at every cut, finished or not, so all lanes see the same latency:
    ``stages`` clock edges."""
    lanes = [list(t) if t else [Const(0, 1)] for t in lanes_terms]
    depth = max(tree_levels(len(t)) for t in lanes) if lanes else 0
    cuts = stage_cuts(depth + 1, stages)
    for layer in range(depth + 1):
        if layer > 0:
            lanes = [[t[j] + t[j + 1] if j + 1 < len(t) else t[j] for j in range(0, len(t), 2)]
                     for t in lanes]
        if layer in cuts:
            regs = []
            for p, t in enumerate(lanes):
                rs = [Signal(v.shape(), name=f"{name}_l{layer}_{p}_{j}") for j, v in enumerate(t)]
                with m.If(en):
                    m.d.sync += [r.eq(v) for r, v in zip(rs, t)]
                regs.append(rs)
            lanes = regs
    return delay_line(m, en, [t[0] for t in lanes], int(stages) - len(cuts), f"{name}_end")


def delay_line(m, en, values: list, n: int, name: str) -> list:
    """``values`` delayed by ``n`` registers loaded on ``en`` (None entries pass through)."""
    for k in range(n):
        out = []
        for j, v in enumerate(values):
            if v is None:
                out.append(None)
                continue
            r = Signal(v.shape(), name=f"{name}_d{k}_{j}")
            with m.If(en):
                m.d.sync += r.eq(v)
            out.append(r)
        values = out
    return values


def decode(code, dtype: DataType):
    """Element code -> Amaranth value of the element (bipolar decoded as -1/+1)."""
    if dtype.bipolar:
        return Mux(code[0], Const(1, signed(2)), Const(-1, signed(2)))
    return code.as_signed() if dtype.signed else code.as_unsigned()


def product(w_code, w_dtype: DataType, x_code, x_dtype: DataType):
    """Product of one weight and one input element (not binary mode)."""
    if w_dtype.bipolar:
        x = decode(x_code, x_dtype)
        return Mux(w_code[0], x, -x)
    if x_dtype.bipolar:
        w = decode(w_code, w_dtype)
        return Mux(x_code[0], w, -w)
    p = decode(w_code, w_dtype) * decode(x_code, x_dtype)
    # the product's own range can be narrower than the operands' widths together (narrow-range
    # types: INT2N x INT2N is in [-1, 1]): keep only the bits that range needs, so the adder
    # tree is no wider than the values it adds
    ends = [a * b for a in (w_dtype.min, w_dtype.max) for b in (x_dtype.min, x_dtype.max)]
    rng = DataType.for_range(min(ends), max(ends))
    if rng.bits < len(p):
        return p[:rng.bits].as_signed() if rng.signed else p[:rng.bits]
    return p


def partial_products(w_code, w_dtype: DataType, x_code, x_dtype: DataType) -> list:
    """The terms of ``w * x`` in soft logic: the input shifted by ``k`` where weight bit ``k`` is
    set (negated for the sign bit of a signed weight). The caller adds them into its adder tree;
    no multiplier is built, so synthesis cannot map one to a DSP block (fold.json ``res_type``
    "lut")."""
    x = decode(x_code, x_dtype)
    n = w_dtype.bits
    terms = []
    for k in range(n):
        t = x << k
        terms.append(Mux(w_code[k], -t if (w_dtype.signed and k == n - 1) else t, 0))
    return terms


def constant_products(w: int, x_code, x_dtype: DataType) -> list:
    """The terms of ``w * x`` for a constant weight ``w``: one shifted copy of the input per
    signed digit of ``w`` (:func:`~streamfold.compiler.units.dot_product.signed_digits`), negated
    where the digit is -1; no term for 0. The caller adds them into its adder tree: no multiplier
    is built, so no synthesis tool can map one to a DSP block."""
    x = decode(x_code, x_dtype)
    return [(x << k) if d > 0 else -(x << k) for k, d in signed_digits(w)]


def lanes(value, n: int, bits: int) -> list:
    return [value[j * bits:(j + 1) * bits] for j in range(n)]


"""Element-level helpers of the dot-product datapath (:mod:`.dot_product`): lane slicing, decoding
element codes (bipolar -> -1/+1, two's complement), products and balanced adder trees. Memory
words are packed by :mod:`streamfold.compiler.rom_images`."""
from __future__ import annotations

from amaranth.hdl import Const, Mux, signed, unsigned

from streamfold.compiler.ir import DataType
from streamfold.compiler.units.dot_product import signed_digits


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
    return decode(w_code, w_dtype) * decode(x_code, x_dtype)


def constant_products(w: int, x_code, x_dtype: DataType) -> list:
    """The terms of ``w * x`` for a constant weight ``w``: one shifted copy of the input per
    signed digit of ``w`` (:func:`~streamfold.compiler.units.dot_product.signed_digits`), negated
    where the digit is -1; no term for 0. The caller adds them into its adder tree: no multiplier
    is built, so no synthesis tool can map one to a DSP block."""
    x = decode(x_code, x_dtype)
    return [(x << k) if d > 0 else -(x << k) for k, d in signed_digits(w)]


def lanes(value, n: int, bits: int) -> list:
    return [value[j * bits:(j + 1) * bits] for j in range(n)]


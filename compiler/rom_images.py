"""Memory images of the dot-product units: which weight or threshold sits in which word and lane.

One place for the layout that the hardware (:mod:`streamfold.hw.mvau`, :mod:`streamfold.hw.vvau`)
loads into its ROMs and that the resource model reads to estimate soft-logic ROMs. Pure NumPy:
nothing here imports Amaranth or ONNX.

An image is a :class:`RomImage` ``(codes, bits)``: ``codes`` is a ``(words, lanes)`` int64 array of
unsigned element codes (:meth:`~streamfold.compiler.ir.DataType.encode`), ``bits`` the width of one
lane. A memory word is ``lanes * bits`` wide with lane 0 in the least significant bits.

Layouts (``W`` the weights, ``T`` the thresholds, ``n`` thresholds per channel)
--------------------------------------------------------------------------------
Matrix-vector unit (``NF = MH/pe``, ``SF = MW/simd``):

* weights: ``NF*SF`` words of ``pe*simd`` lanes of ``weight_dtype.bits``; word ``nf*SF + sf``,
  lane ``p*simd + s`` holds ``W[nf*pe + p, sf*simd + s]``;
* thresholds: ``NF`` words of ``pe*n`` lanes of ``acc_dtype.bits`` (two's complement when the
  accumulator is signed); word ``nf``, lane ``p*n + k`` holds ``T[nf*pe + p, k]``.

Vector-vector unit (``CF = C/pe``, ``K = kh*kw``):

* weights: ``CF*K`` words of ``pe`` lanes of ``weight_dtype.bits``; word ``g*K + k``, lane ``p``
  holds ``W[g*pe + p, k]``;
* thresholds: ``CF`` words of ``pe*n`` lanes of ``acc_dtype.bits``; word ``g``, lane ``p*n + j``
  holds ``T[g*pe + p, j]``.

Which images become memories: the hardware reads an image of more than one word from a ROM
(address = the unit's step or fold counter), holds a one-word image as a constant, and has no
memory for an image without lanes (no thresholds, or ``n == 0``): see :attr:`RomImage.in_rom`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np

if TYPE_CHECKING:  # only for annotations: the functions read the units' fields
    from .ir import MatrixVectorUnit, VectorVectorUnit


def pack_words(codes, bits: int) -> list[int]:
    """``codes`` (words, lanes) of unsigned element codes -> one int per word, lane 0 in the LSBs."""
    codes = np.asarray(codes, dtype=np.int64)
    words, lanes = codes.shape
    if words == 0:
        return []
    if lanes == 0 or bits == 0:
        return [0] * words
    bitarr = ((codes[:, :, None] >> np.arange(bits, dtype=np.int64)) & 1).astype(np.uint8)
    packed = np.packbits(bitarr.reshape(words, lanes * bits), axis=1, bitorder="little")
    return [int.from_bytes(row.tobytes(), "little") for row in packed]


def bit_matrix(codes, bits: int) -> np.ndarray:
    """``codes`` (words, lanes) -> (words, lanes*bits) uint8 bit matrix, lane 0 / bit 0 first."""
    codes = np.asarray(codes, dtype=np.int64)
    b = (codes[:, :, None] >> np.arange(bits, dtype=np.int64)) & 1
    return b.reshape(codes.shape[0], codes.shape[1] * bits).astype(np.uint8)


class RomImage(NamedTuple):
    """Contents of one memory: ``codes`` (words, lanes) unsigned element codes, ``bits`` per lane."""

    codes: np.ndarray
    bits: int

    @property
    def depth(self) -> int:
        """Number of words."""
        return int(self.codes.shape[0])

    @property
    def lanes(self) -> int:
        return int(self.codes.shape[1])

    @property
    def width(self) -> int:
        """Bits per word."""
        return self.lanes * self.bits

    @property
    def in_rom(self) -> bool:
        """Whether the hardware keeps this image in a ROM (more than one word, non-zero width);
        a one-word image is a constant, a zero-width one no memory at all."""
        return self.depth > 1 and self.width > 0

    @property
    def uniform(self) -> bool:
        """Whether every word is the same: Yosys folds such a ROM into the constant it holds."""
        return self.depth <= 1 or bool((self.codes == self.codes[:1]).all())

    def words(self) -> list[int]:
        """One unsigned int per word (lane 0 in the LSBs): the ROM's initial contents."""
        return pack_words(self.codes, self.bits)

    def bit_matrix(self) -> np.ndarray:
        """(words, width) uint8 bit matrix, bit 0 of lane 0 first (see :func:`bit_matrix`)."""
        return bit_matrix(self.codes, self.bits)


def _threshold_image(u, groups: int) -> RomImage:
    """Thresholds ``(channels, n)`` of ``groups`` words of ``channels/groups`` channels each;
    no thresholds: ``groups`` words of no lanes."""
    acc = u.acc_dtype
    if u.thresholds is None:
        return RomImage(np.zeros((groups, 0), dtype=np.int64), acc.bits)
    t = np.asarray(u.thresholds, dtype=np.int64)  # the reference's cast
    return RomImage(acc.encode(t).reshape(groups, -1), acc.bits)


def mvau_weight_image(u: MatrixVectorUnit) -> RomImage:
    """Weights of a matrix-vector unit: word ``nf*SF + sf``, lane ``p*simd + s`` =
    ``W[nf*pe + p, sf*simd + s]``."""
    nf_, sf_ = u.neuron_fold, u.synapse_fold
    codes = u.weight_dtype.encode(np.asarray(u.weights))  # (MH, MW)
    # (NF, pe, SF, simd) -> (NF, SF, pe, simd)
    codes = codes.reshape(nf_, u.pe, sf_, u.simd).transpose(0, 2, 1, 3)
    return RomImage(codes.reshape(nf_ * sf_, u.pe * u.simd), u.weight_dtype.bits)


def mvau_threshold_image(u: MatrixVectorUnit) -> RomImage:
    """Thresholds of a matrix-vector unit: word ``nf``, lane ``p*n + k`` = ``T[nf*pe + p, k]``."""
    return _threshold_image(u, u.neuron_fold)


def vvau_weight_image(u: VectorVectorUnit) -> RomImage:
    """Weights of a vector-vector unit: word ``g*K + k``, lane ``p`` = ``W[g*pe + p, k]``."""
    cf = u.channels // u.pe
    codes = u.weight_dtype.encode(np.asarray(u.weights))  # (C, K)
    codes = codes.reshape(cf, u.pe, u.k).transpose(0, 2, 1)  # (CF, K, pe)
    return RomImage(codes.reshape(cf * u.k, u.pe), u.weight_dtype.bits)


def vvau_threshold_image(u: VectorVectorUnit) -> RomImage:
    """Thresholds of a vector-vector unit: word ``g``, lane ``p*n + j`` = ``T[g*pe + p, j]``."""
    return _threshold_image(u, u.channels // u.pe)

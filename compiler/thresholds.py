"""Turn "accumulator -> per-channel float ops -> quantizer" into integer thresholds.

For each output channel ``c`` the model computes ``level = Q(f_c(acc * pre_scale[c]))``, where
``f_c`` is the chain of per-channel ops (bias, batch-norm, scales, ReLU, ...) and ``Q`` the
activation quantizer. For a per-channel affine ``f_c`` this is a monotone step function of the
integer accumulator, so it is exactly ``min_level + #(acc >= T[c, k])`` for the right integer
thresholds ``T``. We find them by bisection on the model's own ops (evaluated in float64, with
qonnx's rounding), instead of re-deriving formulas for every op: whatever mix of Mul/Add/Sub/Div/
BatchNormalization/Relu the exporter produced, the thresholds reproduce it.

A channel whose function decreases with the accumulator gets its weight row negated first. In
binary (XNOR-popcount) mode the search runs over the popcount ``p`` with ``acc = 2 p - MW``.
The result is verified on every accumulator value in range when the ranges are small (up to
``EXHAUSTIVE_POINTS`` values over all channels), else on samples around every threshold plus random
ones -- sound there because every per-channel op streamfold accepts is monotone in its data input,
except a division *by* the accumulator (or a batch-norm whose variance is the accumulator), which
is then checked exhaustively up to ``EXHAUSTIVE_POINTS_NONMONOTONE`` values and refused beyond.
A chain that is not monotone, or gives NaN, is an error.
"""
from __future__ import annotations

import numpy as np

from .errors import CompileError
from .ops import OpCall, bipolar_int, quant_int, run_chain, trunc_int

#: verify thresholds on every accumulator value when the channels' ranges hold at most this many
EXHAUSTIVE_POINTS = 1 << 21
#: ... and up to this many when the chain is not monotone by construction (else refuse)
EXHAUSTIVE_POINTS_NONMONOTONE = 1 << 25


def _levels_fn(q: OpCall):
    if q.op_type == "Trunc":
        scale, zp, in_bits, out_scale, out_bits = q.inputs[1:6]
        signed, narrow = int(q.attrs.get("signed", 1)), int(q.attrs.get("narrow", 0))
        ob = int(np.asarray(out_bits).reshape(-1)[0])
        lo = -(1 << (ob - 1)) + narrow if signed else 0
        hi = (1 << (ob - 1)) - 1 if signed else (1 << ob) - 1 - narrow

        def trunc_levels(x):
            return trunc_int(x, scale, zp, in_bits, out_scale, out_bits, signed, narrow,
                             q.attrs.get("rounding_mode", "FLOOR"))
        return trunc_levels, np.arange(lo, hi + 1)
    if q.op_type == "BipolarQuant":
        return bipolar_int, np.array([-1, 1])
    scale, zp, bits = q.inputs[1:4]
    # levels are computed on (samples, channels): a per-channel scale as one value per channel
    scale = np.asarray(scale).reshape(-1) if np.size(scale) > 1 else scale
    a = q.attrs
    signed, narrow = int(a.get("signed", 1)), int(a.get("narrow", 0))
    bits = int(np.asarray(bits).reshape(-1)[0])
    if bits == 1 and signed:
        return bipolar_int, np.array([-1, 1])
    lo = -(1 << (bits - 1)) + (1 if narrow else 0) if signed else 0
    hi = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1 - (1 if narrow else 0)

    def levels(x):
        return quant_int(x, scale, zp, bits, signed, narrow, a.get("rounding_mode", "ROUND"))
    return levels, np.arange(lo, hi + 1)


def monotone_by_construction(chain: list) -> bool:
    """True when every op of ``chain`` is monotone in its data input (see the module docstring)."""
    for op in chain:
        slot = next((i for i, a in enumerate(op.inputs) if a is None), 0)
        if op.op_type == "Div" and slot != 0:
            return False
        if op.op_type == "BatchNormalization" and slot not in (0, 1, 2, 3):
            return False
    return True


def thresholds_for(unit, pre_scale: np.ndarray, chain: list, quantizer: OpCall, probe, bounds=None):
    """Return ``(thresholds (MH, T) int64, out_bias, sign (MH,))`` for ``unit``.

    ``probe(n)`` gives the shape to evaluate the chain on ``n`` samples of every channel in the
    model's layout (``(n, MH)`` or ``(n, MH, 1, 1)``). ``bounds``: per-channel ``(lo, hi)`` of an
    integer that is not a dot product (an add's sum); else the range follows ``unit``'s weights.
    """
    with np.errstate(all="ignore"):  # inf/NaN are diagnosed below, not warned about
        return _thresholds_for(unit, pre_scale, chain, quantizer, probe, bounds)


def _thresholds_for(unit, pre_scale: np.ndarray, chain: list, quantizer: OpCall, probe, bounds):
    quantize, levels = _levels_fn(quantizer)
    if bounds is not None:
        lo, hi = (np.asarray(b, dtype=np.int64) for b in bounds)
        mh, mw, binary = lo.size, 0, False
    elif unit.binary:
        mh, mw = (int(d) for d in unit.weights.shape)
        binary = True
        lo = np.zeros(mh, dtype=np.int64)
        hi = np.full(mh, mw, dtype=np.int64)
    else:
        mh, mw = (int(d) for d in unit.weights.shape)
        binary = False
        w = np.asarray(unit.weights).astype(np.int64)
        xa, xb = w * unit.in_dtype.min, w * unit.in_dtype.max
        lo, hi = np.minimum(xa, xb).sum(1), np.maximum(xa, xb).sum(1)
    pre = np.asarray(pre_scale, dtype=np.float64).reshape(-1)

    def model_value(domain: np.ndarray, sign: np.ndarray) -> np.ndarray:
        """domain (n, MH) accumulator (or popcount) -> float value before the quantizer."""
        acc = 2 * domain - mw if binary else domain
        x = (acc * sign[None, :]).astype(np.float64) * pre[None, :]
        n = x.shape[0]
        v = np.asarray(run_chain(chain, x.reshape(probe(n))), dtype=np.float64)
        if v.size != n * mh:
            raise CompileError(f"layer {unit.name}: the ops between its matrix product and quantizer "
                               f"{quantizer.node!r} change the shape of its {mh} channels")
        v = v.reshape(n, mh)
        nan = np.isnan(v)
        if nan.any():
            i, c = np.argwhere(nan)[0]
            raise CompileError(
                f"layer {unit.name}: the ops between its matrix product and quantizer "
                f"{quantizer.node!r} give NaN for accumulator {int(acc[i, c] * sign[c])} of channel "
                f"{c}; check the constants of "
                f"{', '.join(repr(op.node) for op in chain if any(x is not None for x in op.inputs))}")
        return v

    def level(domain, sign):
        return np.asarray(quantize(model_value(domain, sign))).reshape(domain.shape)

    ones = np.ones(mh, dtype=np.int64)
    if binary:
        # negating a bipolar row maps popcount p to MW - p: search in the row's own domain
        v = model_value(np.stack([lo, hi]), ones)
        sign = np.where(v[1] < v[0], -1, 1)
    else:
        v = model_value(np.stack([lo, hi]), ones)
        sign = np.where(v[1] < v[0], -1, 1)
        lo, hi = np.where(sign > 0, lo, -hi), np.where(sign > 0, hi, -lo)

    def level_signed(domain):
        if binary:
            # with the row negated, popcount p corresponds to MW - p matches of the original row
            d = np.where(sign[None, :] > 0, domain, mw - domain)
            return level(d, ones)
        return level(domain, sign)

    targets = levels[1:]
    t = len(targets)
    lo_k = np.repeat(lo[None, :], t, 0)
    hi_k = np.repeat(hi[None, :], t, 0) + 1
    want = targets[:, None]
    while np.any(lo_k < hi_k):
        mid = (lo_k + hi_k) // 2
        ok = level_signed(np.minimum(mid, hi[None, :])) >= want
        ok = ok | (mid > hi[None, :])
        active = lo_k < hi_k
        hi_k = np.where(active & ok, mid, hi_k)
        lo_k = np.where(active & ~ok, mid + 1, lo_k)
    thr = lo_k.T.copy()  # (MH, T)
    thr = np.sort(thr, axis=1)
    points = int((hi - lo + 1).sum())
    monotone = monotone_by_construction(chain)
    where = (unit.name, quantizer.node, sign, binary, mw)
    if points <= EXHAUSTIVE_POINTS or (not monotone and points <= EXHAUSTIVE_POINTS_NONMONOTONE):
        _verify_all(level_signed, thr, lo, hi, levels, where)
    elif not monotone:
        raise CompileError(
            f"layer {unit.name}: the ops between its matrix product and quantizer {quantizer.node!r} "
            f"divide by the accumulator, which need not be monotone, and its range ({points} values) "
            "is too large to check every value; fold the division into a scale")
    else:
        _verify(level_signed, thr, lo, hi, levels, where)
    return thr.astype(np.int64), int(levels[0]), sign.astype(np.int64)


def _counts(dom: np.ndarray, thr: np.ndarray) -> np.ndarray:
    """``count[n, c] = #{k: dom[n, c] >= thr[c, k]}`` without an (N, MH, T) temporary."""
    out = np.empty(dom.shape, dtype=np.int64)
    for c in range(thr.shape[0]):
        out[:, c] = np.searchsorted(thr[c], dom[:, c], side="right")
    return out


def _check(level_signed, dom, thr, levels, where) -> None:
    name, node, sign, binary, mw = where
    got = level_signed(dom)
    expect = levels[_counts(dom, thr)]
    bad = np.argwhere(got != expect)
    if bad.size:
        i, c = bad[0]
        d = int(dom[i, c])  # the model's accumulator: undo the row's negation
        acc = (2 * (d if sign[c] > 0 else mw - d) - mw) if binary else d * int(sign[c])
        raise CompileError(
            f"layer {name}: the ops between its matrix product and quantizer {node!r} are not monotone "
            f"in the accumulator (channel {c}: accumulator {acc} gives level "
            f"{int(got[i, c])}, thresholds would give {int(expect[i, c])}); they cannot become "
            "thresholds")


def _verify(level_signed, thr, lo, hi, levels, where, samples: int = 64) -> None:
    mh = thr.shape[0]
    rng = np.random.default_rng(0)
    pts = [lo, hi, np.clip(np.zeros_like(lo), lo, hi)]
    for k in range(thr.shape[1]):
        for d in (-1, 0):
            pts.append(np.clip(thr[:, k] + d, lo, hi))
    pts.extend(rng.integers(lo, hi + 1, size=(samples, mh)))
    _check(level_signed, np.stack(pts), thr, levels, where)


def _verify_all(level_signed, thr, lo, hi, levels, where, chunk: int = 1 << 18) -> None:
    """Every accumulator value of every channel (in the row's own, sign-corrected domain)."""
    mh = thr.shape[0]
    span = int((hi - lo).max()) + 1
    rows = max(1, chunk // mh)
    for start in range(0, span, rows):
        r = np.arange(start, min(span, start + rows), dtype=np.int64)
        dom = np.minimum(lo[None, :] + r[:, None], hi[None, :])
        _check(level_signed, dom, thr, levels, where)

"""Property tests (hypothesis) of branching graphs, straight from the IR, in Verilator.

Each example draws a small random DAG: an input feature map, then one to three blocks, each a
plain convolution (kernel 1 or 3, stride 1 or 2), a residual block (a fork; one or two 3x3
convolutions against an identity or 1x1 skip; an add with integer multipliers, with thresholds
or the raw sum) or an Inception-style block (a fork into two or three convolutions of different
widths and output types, joined by a concat). Every unit then takes a random fold (any legal
knob values, so width converters appear on forks and joins too), the FIFOs get the depths the
graph's schedule analysis gives, and the design runs under random input gaps and output
back-pressure: it must not deadlock, every output integer must equal the graph's NumPy
reference, and at full rate it must run at the analysed pace (the cycles per frame the schedule
with unbounded FIFOs reaches), within 5%.

Profiles as in ``test_properties.py`` (``fast``: 3 derandomized examples; ``nightly``: more).
"""
from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import given
from hypothesis import strategies as st

from streamfold.compiler.fifo_sizing import analyse_fifos, expected_pace
from streamfold.compiler.folding import tie_folds
from streamfold.compiler.ir import (AddUnit, ConcatUnit, DataflowGraph, DataType, Edge, ForkUnit,
                                    MatrixVectorUnit, window_unit)

from unit_cases import check_pipeline, needs_verilator, random_values

PROFILE = settings.default
EXAMPLES = max(3, PROFILE.max_examples - 1)


class Dag:
    """Builds a graph unit by unit: streams are ``(src, shape, dtype)``."""

    def __init__(self, rng):
        self.rng, self.units, self.edges, self.k = rng, [], [], 0

    def emit(self, unit, *srcs):
        self.units.append(unit)
        for port, (src, sport) in enumerate(srcs):
            self.edges.append(Edge(src, unit.name, 2, sport, port))
        return (unit.name, 0)

    def name(self, what):
        self.k += 1
        return f"{what}{self.k}"

    def thresholds(self, lo, hi, rows, out: DataType):
        t = np.sort(self.rng.integers(lo - 1, hi + 2, size=(rows, out.max - out.min)), axis=1)
        return t.astype(np.int64)

    def conv(self, s, cout, k, stride, out_bits):
        src, (h, w, c), dt = s
        if k > 1 or stride > 1:
            p = k // 2
            win = window_unit(name=self.name("win"), in_shape=(h, w, c), dtype=dt, kernel=(k, k),
                              stride=(stride, stride), pads=(p, p, p, p), pad_value=0, simd=1,
                              depthwise=False)
            src = self.emit(win, src)
            h, w = win.out_hw
        wdt = DataType(3, True)
        out = DataType(out_bits, False)
        u = MatrixVectorUnit(self.name("mv"), random_values(self.rng, wdt, (cout, k * k * c)), wdt, dt,
                             out, rows_shape=(h, w))
        lo, hi = u.acc_range
        u.thresholds, u.out_bias = self.thresholds(lo, hi, cout, out), 0
        return self.emit(u, src), (h, w, cout), out

    def fork(self, s, n):
        src, shape, dt = s
        f = ForkUnit(self.name("fork"), shape, dt, n)
        self.emit(f, src)
        return [((f.name, i), shape, dt) for i in range(n)]


@st.composite
def dags(draw):
    blocks = draw(st.lists(st.sampled_from(["conv", "residual", "inception"]), min_size=1, max_size=3))
    assume_join = "residual" in blocks or "inception" in blocks
    if not assume_join:
        blocks.append(draw(st.sampled_from(["residual", "inception"])))
    return {"h": draw(st.integers(3, 6)), "w": draw(st.integers(3, 7)), "c": draw(st.sampled_from([2, 4])),
            "in_bits": draw(st.integers(2, 3)), "blocks": blocks,
            "seed": draw(st.integers(0, 2**31 - 1)), "p_gap": draw(st.sampled_from([0.1, 0.3, 0.6])),
            "p_stall": draw(st.sampled_from([0.1, 0.3, 0.6]))}


def build_dag(case) -> DataflowGraph:
    rng = np.random.default_rng(case["seed"])
    g = Dag(rng)
    s = ((None, 0), (case["h"], case["w"], case["c"]), DataType(case["in_bits"], False))
    for block in case["blocks"]:
        c = s[1][2]
        if block == "conv":
            s = g.conv(s, int(rng.choice([2, 4])), int(rng.choice([1, 3])), int(rng.choice([1, 1, 2])),
                       int(rng.integers(2, 4)))
        elif block == "residual":
            long, skip = g.fork(s, 2)
            for _ in range(int(rng.integers(1, 3))):
                long = g.conv(long, c, 3, 1, int(rng.integers(2, 4)))
            if rng.random() < 0.4:
                skip = g.conv(skip, c, 1, 1, int(rng.integers(2, 4)))
            am, bm = (int(v) for v in rng.choice([1, 1, 2, -1], size=2))
            add = AddUnit(g.name("add"), long[1], long[2], skip[2], DataType(1, False), am, bm)
            if rng.random() < 0.6:
                out = DataType(int(rng.integers(2, 4)), False)
                lo, hi = add.acc_range
                add.thresholds, add.out_dtype = g.thresholds(lo, hi, c, out), out
            else:
                add.out_dtype = add.acc_dtype
            s = (g.emit(add, long[0], skip[0]), long[1], add.out_dtype)
        else:
            branches = g.fork(s, int(rng.integers(2, 4)))
            outs = [g.conv(b, int(rng.choice([2, 4])), int(rng.choice([1, 3])), 1, int(rng.integers(2, 4)))
                    for b in branches]
            dts = tuple(o[2] for o in outs)
            out = DataType(max(d.bits for d in dts), False)
            h, w, _ = outs[0][1]
            cat = ConcatUnit(g.name("cat"), (h, w), tuple(o[1][2] for o in outs), dts, out)
            s = (g.emit(cat, *(o[0] for o in outs)), (h, w, sum(cat.channels)), out)
    g.edges.append(Edge(s[0][0], None, 2, s[0][1], 0))
    p = DataflowGraph(g.units, edges=g.edges)
    # a random legal fold of every unit (width converters appear where neighbours differ)
    units = []
    for u in p.units:
        knobs = {k: int(rng.choice(v)) for k, v in u.fold_choices().items()}
        units.append(u.with_folding(**knobs))
    p = tie_folds(p.with_units(units))
    p.check()
    return p.with_depths(analyse_fifos(p).depths)


@needs_verilator
@settings(max_examples=EXAMPLES, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(case=dags())
def test_random_dag_bit_exact_at_analysed_pace(case):
    p = build_dag(case)
    rng = np.random.default_rng(case["seed"] + 1)
    check_pipeline(p, 3, rng, p_gap=case["p_gap"], p_stall=case["p_stall"], seed=case["seed"] & 0xFFFF)
    full = check_pipeline(p, 5, np.random.default_rng(case["seed"] + 2), p_gap=0.0, p_stall=0.0)
    pace, what = expected_pace(p)
    ii = full["measure"].ii
    assert ii is not None and ii <= 1.05 * pace, f"{ii} cycles per frame at full rate, analysed {pace} ({what})"

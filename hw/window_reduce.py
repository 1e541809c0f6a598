"""One-dimensional streaming window reduction (max or sum), the building block of the pooling units.

:class:`WindowReduce1D` sees a stream of *positions* ``t = 0 .. n-1`` (then again from 0), each
``inner`` beats long (beat ``r`` of a position is record ``r``), ``lanes`` elements per beat. For
every window ``o = 0 .. on-1`` (positions ``o*s .. o*s + k - 1``, ``on = (n - k)//s + 1``) and
record ``r`` it emits the reduction of the window's beats ``r``, in the beat that closes the window:
the output is, per sequence, ``on`` windows of ``inner`` beats, in order. Positions after the last
window are consumed and dropped.

* 2-D max-pool is two of them: along x (position = pixel of a row, record = channel fold), then
  along y (position = row, record = ``(ox, channel fold)``).
* Global sum-pool is one: position = pixel of the frame, ``k = s = n``.

Storage: ``ceil(k/s)`` partial banks (windows ``o`` with the same ``o mod ceil(k/s)`` never
overlap), each ``inner`` words: a ``Memory`` with a synchronous read port (read-modify-write over
two pipeline stages; consecutive beats are different records, so there is no hazard), or a
register when ``inner == 1``.

Stream protocol: one input beat per clock; ``i.ready = ~o.valid | o.ready`` (all stages advance
together); at most one output beat per input beat, so the unit never slows its input.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from streamfold.compiler.ir import DataType


def _shape(dtype: DataType):
    return signed(dtype.bits) if dtype.signed else unsigned(dtype.bits)


class WindowReduce1D(wiring.Component):
    """Streaming 1-D window max / sum (see the module docstring).

    Parameters
    ----------
    lanes : elements per beat
    in_dtype : element type of the input
    op : ``"max"`` (output type = input type; bipolar max is OR) or ``"sum"``
    acc_dtype : output element type of ``"sum"`` (must hold every window sum)
    n, k, s : positions per sequence, window length, stride
    inner : beats per position
    """

    def __init__(self, lanes: int, in_dtype: DataType, op: str, n: int, k: int, s: int,
                 inner: int, acc_dtype: DataType | None = None):
        if op not in ("max", "sum"):
            raise ValueError(f"unknown reduction {op!r}")
        if not (1 <= k <= n) or s < 1 or inner < 1 or lanes < 1:
            raise ValueError(f"bad window reduction n={n} k={k} s={s} inner={inner}")
        self.lanes, self.in_dtype, self.op = lanes, in_dtype, op
        self.acc_dtype = in_dtype if op == "max" else acc_dtype
        if self.acc_dtype is None:
            raise ValueError("a sum needs acc_dtype")
        self.n, self.k, self.s, self.inner = n, k, s, inner
        self.on = (n - k) // s + 1
        self.phases = -(-k // s)
        super().__init__({
            "i": In(stream.Signature(unsigned(lanes * in_dtype.bits))),
            "o": Out(stream.Signature(unsigned(lanes * self.acc_dtype.bits))),
        })

    def _value(self, code):
        """Input element code -> value in the accumulator's domain."""
        d = self.in_dtype
        if self.op == "max":
            return code  # compared as codes: see _max
        if d.bipolar:
            return Mux(code[0], Const(1, signed(2)), Const(-1, signed(2)))
        return code.as_signed() if d.signed else code.as_unsigned()

    def _max(self, a, b):
        d = self.in_dtype
        if d.bipolar:
            return a | b
        if d.signed:
            return Mux(a.as_signed() >= b.as_signed(), a, b)
        return Mux(a >= b, a, b)

    def elaborate(self, platform):
        m = Module()
        L, P, R = self.lanes, self.phases, self.inner
        n, k, s, on = self.n, self.k, self.s, self.on
        ib, ab = self.in_dtype.bits, self.acc_dtype.bits
        tq_max = (n - 1) // s

        out_valid = Signal()
        en = Signal()
        fire = Signal()
        m.d.comb += [en.eq(~out_valid | self.o.ready), self.i.ready.eq(en),
                     fire.eq(en & self.i.valid)]

        # ---- stage 0: position t = tq*s + tr, window phase tqm = tq mod P, record r
        r = Signal(range(R), name="r") if R > 1 else Const(0, 1)
        tq = Signal(range(tq_max + 1), name="tq") if tq_max > 0 else Const(0, 1)
        tr = Signal(range(s), name="tr") if s > 1 else Const(0, 1)
        tqm = Signal(range(P), name="tqm") if P > 1 else Const(0, 1)
        r_last = (r == R - 1) if R > 1 else Const(1, 1)
        t_last = (tq == tq_max) & (tr == (n - 1) % s)
        with m.If(fire):
            if R > 1:
                m.d.sync += r.eq(Mux(r_last, 0, r + 1))
            with m.If(r_last):
                with m.If(t_last):
                    m.d.sync += [c.eq(0) for c in (tq, tr, tqm) if isinstance(c, Signal)]
                with m.Else():
                    if s > 1:
                        with m.If(tr == s - 1):
                            m.d.sync += tr.eq(0)
                            if tq_max > 0:
                                m.d.sync += tq.eq(tq + 1)
                            if P > 1:
                                m.d.sync += tqm.eq(Mux(tqm == P - 1, 0, tqm + 1))
                        with m.Else():
                            m.d.sync += tr.eq(tr + 1)
                    else:
                        if tq_max > 0:
                            m.d.sync += tq.eq(tq + 1)
                        if P > 1:
                            m.d.sync += tqm.eq(Mux(tqm == P - 1, 0, tqm + 1))

        # window o_j = tq - j contains t iff j*s + tr < k and 0 <= o_j < on; bank (tq - j) mod P
        act = [Signal(name=f"act{b}") for b in range(P)]
        fst = [Signal(name=f"first{b}") for b in range(P)]
        lst = [Signal(name=f"last{b}") for b in range(P)]
        act_e = [Const(0, 1)] * P
        fst_e = [Const(0, 1)] * P
        lst_e = [Const(0, 1)] * P
        for j in range(P):
            a_tr = [v for v in range(s) if j * s + v < k]
            if not a_tr:
                continue
            in_range = Const(1, 1)
            if j > 0:
                in_range = in_range & (tq >= j)
            if tq_max - j > on - 1:
                in_range = in_range & (tq <= on - 1 + j)
            a_j = in_range & _member(tr, a_tr, s)
            f_j = in_range & (tr == 0) if j == 0 else Const(0, 1)
            l_v = k - 1 - j * s
            l_j = in_range & (tr == l_v) if 0 <= l_v < s else Const(0, 1)
            for b in range(P):
                sel = (tqm == (b + j) % P) if P > 1 else Const(1, 1)
                act_e[b] = act_e[b] | (sel & a_j)
                fst_e[b] = fst_e[b] | (sel & f_j)
                lst_e[b] = lst_e[b] | (sel & l_j)
        for b in range(P):
            m.d.comb += [act[b].eq(act_e[b]), fst[b].eq(fst_e[b]), lst[b].eq(lst_e[b])]

        # partial banks
        banks = []
        for b in range(P):
            if R > 1:
                mem = Memory(shape=unsigned(L * ab), depth=R, init=[])
                m.submodules[f"bank{b}"] = mem
                banks.append((mem.read_port(), mem.write_port()))
            else:
                banks.append(Signal(L * ab, name=f"partial{b}"))

        # ---- stage 1
        v1 = Signal()
        r1 = Signal(range(R)) if R > 1 else r
        x1 = Signal(L * ib)
        act1 = [Signal(name=f"act1_{b}") for b in range(P)]
        fst1 = [Signal(name=f"first1_{b}") for b in range(P)]
        lst1 = [Signal(name=f"last1_{b}") for b in range(P)]
        with m.If(en):
            m.d.sync += [v1.eq(fire), x1.eq(self.i.payload)]
            if R > 1:
                m.d.sync += r1.eq(r)
            m.d.sync += [d.eq(v) for d, v in zip(act1 + fst1 + lst1, act + fst + lst)]
        xs = [self._value(x1[j * ib:(j + 1) * ib]) for j in range(L)]
        upd = []
        for b in range(P):
            if R > 1:
                rd, wr = banks[b]
                m.d.comb += [rd.addr.eq(r), rd.en.eq(en)]
                cur = rd.data
            else:
                cur = banks[b]
            lanes_new = []
            for j in range(L):
                old = cur[j * ab:(j + 1) * ab]
                if self.op == "max":
                    new = Mux(fst1[b], xs[j], self._max(old, xs[j]))
                else:
                    acc = old.as_signed() if self.acc_dtype.signed else old
                    new = Mux(fst1[b], xs[j], acc + xs[j])
                lane = Signal(ab, name=f"upd{b}_{j}")
                m.d.comb += lane.eq(new)
                lanes_new.append(lane)
            u_b = Cat(*lanes_new)
            upd.append(u_b)
            we = en & v1 & act1[b]
            if R > 1:
                m.d.comb += [wr.addr.eq(r1), wr.data.eq(u_b), wr.en.eq(we)]
            else:
                with m.If(we):
                    m.d.sync += banks[b].eq(u_b)

        # ---- output register: the bank whose window closes here
        emit = Const(0, 1)
        data = Const(0, L * ab)
        for b in range(P):
            closes = act1[b] & lst1[b]
            emit = emit | closes
            data = Mux(closes, upd[b], data)
        with m.If(en):
            m.d.sync += [out_valid.eq(v1 & emit), self.o.payload.eq(data)]
        m.d.comb += self.o.valid.eq(out_valid)
        return m


def _member(sig, values: list, size: int):
    """``sig in values`` for a counter over ``range(size)``."""
    if len(values) >= size:
        return Const(1, 1)
    e = Const(0, 1)
    for v in values:
        e = e | (sig == v)
    return e

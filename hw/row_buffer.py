"""Two-row ping-pong buffer in Amaranth: the hardware of the row-reordering kinds
(:mod:`.depth_to_space`, :mod:`.upsample`).

:class:`RowBufferHW` takes a :class:`streamfold.compiler.units.row_buffer.RowPlan`: rows of
``n_in`` input beats, each read out as ``n_out`` beats in the plan's order. Members ``i`` and
``o``, both ``pe * bits`` wide, element 0 in the LSBs.

Storage: ``amaranth.lib.memory.Memory`` of ``2*n_in`` words (one write port, one synchronous
read port: block RAM when large enough), row ``k`` in half ``k mod 2`` (words ``(k mod 2)*n_in
..``); one memory of ``pe``-element words, or, banked, ``pe`` memories of one element.

* Writer: ``i.ready = ~full[wsel]`` (registered flags only); an input beat is written at the
  next word (the write address wraps at ``2*n_in``); the row's last beat sets ``full[wsel]``
  and flips ``wsel``. Banked: lane ``q`` of the beat goes to bank ``(q + rot) mod pe``, all
  banks at the same word.
* Reader: ``en = ~o.valid | o.ready`` clocks the read port, the output valid and (banked) the
  lane selects; a read is issued (``go``) when ``en & full[rsel]``. The read address is the
  plan's nested loops, kept incrementally: a register ``addr``, an index per loop and, for every
  loop but the innermost, the address its current iteration started at (``mark``): the next
  address is ``mark_l + stride_l`` of the innermost loop not at its last index (``addr +
  stride`` for the innermost), or the other half's first word after the row's last read, which
  also clears ``full[rsel]`` and flips ``rsel``. Banked: the block position ``s = i*r + j`` is
  a second coordinate kept the same way (no multiplier); bank ``q`` reads ``addr +
  offset[s][q]`` and output lane ``p`` is the data of bank ``select[s][p]``, through a
  registered select over the banks that lane ever reads; the write rotator only has the
  ``gcd(pe, r^2)`` rotations that occur.

The output beat is the read port's data (valid one cycle after the read), so, with the reader
idle, a row's first beat leaves two cycles after its last input beat is taken; the reader moves
on to the next row in the cycle after a row's last read when that row is in (see
:mod:`streamfold.compiler.units.row_buffer` for the exact schedule).
"""
from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from streamfold.compiler.units.row_buffer import RowPlan


class RowBufferHW(wiring.Component):
    """Two-row ping-pong reorder buffer (module docstring). Members: ``i``, ``o``."""

    def __init__(self, plan: RowPlan):
        self.plan = plan
        width = plan.lanes * plan.bits
        super().__init__({
            "i": In(stream.Signature(unsigned(width))),
            "o": Out(stream.Signature(unsigned(width))),
        })

    def elaborate(self, platform):
        p = self.plan
        m = Module()
        i, o = self.i, self.o
        n, words, nb = p.n_in, p.words, p.banks
        pe, bits = p.lanes, p.bits

        mems = [Memory(shape=unsigned(p.word_bits), depth=words, init=[]) for _ in range(nb)]
        for b, mem in enumerate(mems):
            m.submodules[f"rows{b}" if nb > 1 else "rows"] = mem
        wports = [mem.write_port() for mem in mems]
        rports = [mem.read_port() for mem in mems]

        full = Signal(2, name="full")
        wsel = Signal(name="wsel")
        rsel = Signal(name="rsel")
        set_full = Signal(2, name="set_full")
        clr_full = Signal(2, name="clr_full")
        m.d.sync += full.eq((full | set_full) & ~clr_full)

        # ------------------------------------------------------------------ writer
        waddr = Signal(range(words), name="waddr")
        take = Signal(name="take")
        w_ok = ~full.bit_select(wsel, 1)
        m.d.comb += [i.ready.eq(w_ok), take.eq(i.valid & w_ok)]
        wlast = (waddr == n - 1) | (waddr == words - 1)
        with m.If(take):
            m.d.sync += waddr.eq(Mux(waddr == words - 1, 0, waddr + 1))
            with m.If(wlast):
                m.d.sync += wsel.eq(~wsel)
                m.d.comb += set_full.eq(Mux(wsel, 2, 1))
        in_lanes = [i.payload[q * bits:(q + 1) * bits] for q in range(pe)]
        if nb == 1:
            wdata = [i.payload]
        else:
            R = p.r * p.r
            rots = sorted(set(p.rot))
            if rots == [0]:
                wdata = in_lanes
            else:
                wb = Signal(range(R), name="wbeat")  # input beat mod R (rows hold whole groups)
                with m.If(take):
                    m.d.sync += wb.eq(Mux(wb == R - 1, 0, wb + 1))
                rot = Signal(range(max(rots) + 1), name="rot")
                m.d.comb += rot.eq(Array([Const(v, rot.shape()) for v in p.rot])[wb])
                wdata = []
                for b in range(pe):  # bank b takes lane (b - rot) mod pe: one of d lanes
                    d = Signal(bits, name=f"wdata{b}")
                    with m.Switch(rot):
                        for v in rots:
                            with m.Case(v):
                                m.d.comb += d.eq(in_lanes[(b - v) % pe])
                    wdata.append(d)
        for wp, d in zip(wports, wdata):
            m.d.comb += [wp.addr.eq(waddr), wp.data.eq(d), wp.en.eq(take)]

        # ------------------------------------------------------------------ reader
        v1 = Signal(name="out_valid")
        en = Signal(name="en")
        go = Signal(name="go")
        m.d.comb += [en.eq(~v1 | o.ready), go.eq(en & full.bit_select(rsel, 1))]
        with m.If(en):
            m.d.sync += v1.eq(go)

        loops = p.loops
        nl = len(loops)
        idx = [Signal(range(c), name=f"idx_{name}") if c > 1 else Const(0, 1)
               for name, c, _ in loops]
        last = [(x == c - 1) if c > 1 else Const(1, 1) for x, (_, c, _) in zip(idx, loops)]
        # coordinates kept incrementally: (register, stride per loop, value at a row's start)
        addr = Signal(range(words), name="raddr")
        coords = [(addr, [st for _, _, st in loops], Mux(rsel, 0, n))]
        R = p.r * p.r
        if nb > 1:  # s = i*r + j, the block position of the output beat
            s = Signal(range(R), name="s")
            coords.append((s, [{"i": p.r, "j": 1}.get(name, 0) for name, _, _ in loops], 0))
        marks = [[Signal.like(reg, name=f"mark_{name}_{reg.name}") for name, _, _ in loops[:-1]]
                 for reg, _, _ in coords]
        with m.If(go):
            first = True
            for lvl in range(nl - 1, -1, -1):
                if loops[lvl][1] == 1:
                    continue
                ctx = m.If(~last[lvl]) if first else m.Elif(~last[lvl])
                first = False
                with ctx:
                    m.d.sync += idx[lvl].eq(idx[lvl] + 1)
                    m.d.sync += [x.eq(0) for x in idx[lvl + 1:] if isinstance(x, Signal)]
                    for (reg, strides, _), mk in zip(coords, marks):
                        base = reg if lvl == nl - 1 else mk[lvl]
                        nxt = base + strides[lvl] if strides[lvl] else base
                        m.d.sync += [reg.eq(nxt)] + [x.eq(nxt) for x in mk[lvl:]]
            with (m.Else() if not first else m.If(1)):  # the row's last read
                m.d.sync += rsel.eq(~rsel)
                m.d.sync += [x.eq(0) for x in idx if isinstance(x, Signal)]
                for (reg, _, start), mk in zip(coords, marks):
                    m.d.sync += [reg.eq(start)] + [x.eq(start) for x in mk]
                m.d.comb += clr_full.eq(Mux(rsel, 2, 1))

        if nb == 1:
            m.d.comb += [rports[0].addr.eq(addr), rports[0].en.eq(en)]
            m.d.comb += [o.valid.eq(v1), o.payload.eq(rports[0].data)]
            return m

        for b, rp in enumerate(rports):
            offs = [p.offset[v][b] for v in range(R)]
            if len(set(offs)) == 1:
                baddr = addr + offs[0] if offs[0] else addr
            else:
                baddr = addr + Array([Const(v, range(R)) for v in offs])[s]
            m.d.comb += [rp.addr.eq(baddr), rp.en.eq(en)]
        out = []
        for q in range(pe):  # lane q: the banks it ever reads, one registered select
            opts = sorted({p.select[v][q] for v in range(R)})
            if len(opts) == 1:
                out.append(rports[opts[0]].data)
                continue
            sel = Signal(range(len(opts)), name=f"sel{q}")
            with m.If(en):
                m.d.sync += sel.eq(Array([Const(opts.index(p.select[v][q]), sel.shape())
                                          for v in range(R)])[s])
            out.append(Array([rports[b].data for b in opts])[sel])
        m.d.comb += [o.valid.eq(v1), o.payload.eq(Cat(*out))]
        return m

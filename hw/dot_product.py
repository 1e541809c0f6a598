"""The dot-product datapath shared by the matrix-vector and vector-vector units.

Both units (:mod:`.mvau`, :mod:`.vvau`) run one *step* per clock: ``pe`` lanes each add ``simd``
products of a weight word's lanes and input elements to an accumulator; the step that ends an
output fold (a neuron fold, a channel group) shows the ``pe`` finished sums, passed through
multi-threshold activations, as one output beat. :class:`DotProductDatapath` builds everything
after the step counters; a unit is a thin wrapper that supplies

* the step counters and the weight address (stage 0), the ``fire`` of a step and its ``first`` /
  ``last`` flags and output-fold tag,
* the stage-1 input word (the matrix-vector unit's input buffer lives in the wrapper),
* how input lanes map to products (``shared_inputs``): every PE lane reads the same ``simd``
  inputs (the matrix-vector product), or input lane ``p*simd + s`` feeds PE ``p`` (the depthwise
  vector-vector product, with ``simd = 1``).

Pipeline (every register advances on ``en = ~o.valid | o.ready``, the global enable)::

    stage 0 (wrapper)  counters, weight address  -> weight ROM read
    stage 1            step flags/tag registered; products (XNOR for binary), adder tree per PE
    stage 2            registered dot products
    stage 3            accumulators (cleared by the fold's first step, holding the finished sums
                       while v3); threshold word of the finishing fold read
    output register    threshold count (+ out_bias) or the raw accumulator, o.valid

so an output beat is valid :data:`LATENCY` (3) clock edges after the edge that ran its fold's
last step (the compiler's ``MVAU_LATENCY`` / ``VVAU_LATENCY`` count the output handshake too).

Memories are :class:`~.rom.ROM` s holding the images of :mod:`streamfold.compiler.rom_images`
(a constant when the image has one word), named ``<unit>_weights`` / ``<unit>_thresholds``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from amaranth.hdl import Array, Cat, Const, Mux, Signal
from amaranth.lib.fifo import SyncFIFOBuffered

from streamfold.compiler.units.dot_product import decoupled_buffer_depth

from .elements import (constant_products, delay_line, lanes, partial_products, product, shape_of, staged_tree_sum,
                       tree_sum)
from .rom import ROM, file_stem

if TYPE_CHECKING:
    from streamfold.compiler.ir import DataType
    from streamfold.compiler.rom_images import RomImage

#: clock edges between the edge that runs a fold's last step and the one that shows its output
LATENCY = 3


def _word_slice(words, lo: int, width: int, addr):
    """Bits ``lo .. lo+width`` of the constant word ``words[addr]``: logic of the address."""
    return Array(Const((w >> lo) & ((1 << width) - 1), width) for w in words)[addr]


class DotProductDatapath:
    """Builds the shared datapath into the wrapper's module ``m``; ``o`` is the unit's output stream.

    Call, in this order, from the wrapper's ``elaborate``: the constructor (makes :attr:`en`),
    then the wrapper's counters, :meth:`weight_word`, :meth:`step`, the wrapper's stage-1 input
    word, :meth:`finish`.

    Parameters
    ----------
    pe, simd : int
        PE lanes, products per PE lane and step.
    weight_dtype, in_dtype, acc_dtype, out_dtype : DataType
    out_bias : int
        Added to the threshold count (not for a bipolar output).
    binary : bool
        XNOR-popcount mode (weights and inputs both bipolar): a product is ``~(w ^ x)``.
    weights, thresholds : RomImage
        Memory images (``thresholds`` None: the output is the accumulator itself). The number of
        threshold words is the number of output folds.
    shared_inputs : bool
        True: PE ``p`` multiplies input lane ``s`` with weight lane ``p*simd + s``; False: input
        lane ``p*simd + s`` (the input word has ``pe*simd`` lanes).
    name, ram_style : str
        The unit's name (memory file stems) and ROM style.
    folds : int
        Output folds per vector (neuron folds, channel groups): the range of the fold tag.
    dot_name : str
        Verilog name stem of the per-lane registered dot products (``<dot_name>_<p>``).
    tree_stages, out_stages : int
        Registers splitting the adder tree (products to dot products) and the threshold compares
        with their count (accumulator to output); each adds one clock edge of latency.
    input_copies : int
        With ``shared_inputs``: registered copies of the input word, each feeding ``pe/copies``
        PEs, for the fan-out (more than one adds a clock edge of latency).
    decoupled : bool
        Free-running pipeline registers (no global enable, whose fan-out to every register
        limits the clock of a wide unit) and an output buffer with credits: a step issues while
        the buffer has room for all outputs in flight (``issue_ok``, which the wrapper uses
        where it would use ``en``).
    res_type : str
        "auto": multi-bit products are multiplications (synthesis maps them, to DSP blocks where
        the widths qualify); "lut": shifted partial products added in the adder tree.
    """

    LATENCY = LATENCY

    def __init__(self, m, o, *, pe: int, simd: int, weight_dtype: DataType, in_dtype: DataType,
                 acc_dtype: DataType, out_dtype: DataType, out_bias: int, binary: bool,
                 weights: RomImage, thresholds: RomImage | None, folds: int, shared_inputs: bool,
                 name: str, ram_style: str, dot_name: str = "dot2", tree_stages: int = 0,
                 out_stages: int = 0, res_type: str = "auto", input_copies: int = 0,
                 decoupled: bool = False, local_weights: bool = False, weight_register: bool = False,
                 lane_addresses: int = 0):
        self.m, self.o = m, o
        self.pe, self.simd = pe, simd
        self.weight_dtype, self.in_dtype = weight_dtype, in_dtype
        self.acc_dtype, self.out_dtype, self.out_bias = acc_dtype, out_dtype, int(out_bias)
        self.binary = binary
        self.weights, self.thresholds = weights, thresholds
        self.folds = folds
        self.shared_inputs = shared_inputs
        self.name, self.ram_style = name, ram_style
        self.dot_name = dot_name
        self.tree_stages, self.out_stages = int(tree_stages), int(out_stages)
        self.res_type = res_type
        self.input_copies = int(input_copies)
        self.local_weights = bool(local_weights)
        self.lane_addresses = int(lane_addresses) if weights.in_rom else 0
        self.weight_register = bool(weight_register) and weights.in_rom
        #: clock edges the input copies or the weight register add (one, when there are)
        self.copy_delay = int((self.input_copies > 1 and shared_inputs) or self.weight_register)
        if weights.lanes != pe * simd:
            raise ValueError(f"layer {name}: weight words of {weights.lanes} lanes for pe*simd = {pe * simd}")
        if thresholds is not None and thresholds.depth != folds:
            raise ValueError(f"layer {name}: {thresholds.depth} threshold words for {folds} folds")

        self.out_valid = out_valid = Signal()
        self.decoupled = bool(decoupled)
        if self.decoupled:
            # free-running pipeline: no enable to fan out; a step may issue (``issue_ok``, a
            # register) while the output buffer has room for every output in flight
            self.en = en = Const(1)
            self.issue_ok = Signal(init=1, name="issue_ok")
        else:
            # global enable: every pipeline register and memory read port advances together
            self.en = en = Signal()
            m.d.comb += en.eq(~out_valid | o.ready)
            self.issue_ok = en

    # ------------------------------------------------------------------------- stage 0 -> 1
    def _kept_copies(self, value, names: list) -> list:
        """Registered copies of ``value`` loaded on the enable, one per name, kept apart in
        synthesis (``streamfold.compiler.synth.KEEP_COPIES``: the names say "fanout_copy")."""
        regs = [Signal.like(value, name=n, attrs={"keep": 1}) for n in names]
        with self.m.If(self.en):
            self.m.d.sync += [r.eq(value) for r in regs]
        return regs

    def weight_word(self, addr):
        """The stage-1 weight word: a ROM read at ``addr`` (the step's word, a stage-0 signal)
        or, for a one-word image, a constant (``addr`` None)."""
        img = self.weights
        if img.in_rom and self.local_weights:
            # the words as constants, read into one register per weight bit; the registers are
            # kept apart in synthesis (streamfold.compiler.synth.KEEP_COPIES: "fanout_copy" in
            # the name), so each lane's weight comes from a register beside it. With input
            # copies, the word address is copied too, one per group of PEs an input copy feeds
            # (the address would otherwise reach every weight register of the unit)
            pe, groups = self.pe, (self.input_copies if self.copy_delay and self.input_copies > 1 else 1)
            if groups > 1:
                addrs = self._kept_copies(addr, [f"{self.dot_name}_waddr_fanout_copy_{g}" for g in range(groups)])
            else:
                addrs = [delay_line(self.m, self.en, [addr], 1, "waddr")[0] if self.copy_delay else addr]
            reg = Signal(img.width, name=f"{self.dot_name}_weights_fanout_copy", attrs={"keep": 1})
            per_pe = img.width // pe
            words = img.words()
            for g in range(groups):
                ps = [p for p in range(pe) if p * groups // pe == g]  # the PEs of copy g
                lo, hi = ps[0] * per_pe, (ps[-1] + 1) * per_pe
                with self.m.If(self.en):
                    self.m.d.sync += reg[lo:hi].eq(_word_slice(words, lo, hi - lo, addrs[g]))
            return reg
        if img.in_rom and self.lane_addresses:
            # every PE lane reads its slice of the words from its own copy of the address (kept
            # apart in synthesis: "fanout_copy" in the name), one edge after the address as a
            # ROM's read register would be (with input copies, one edge later still)
            if self.copy_delay:
                addr = delay_line(self.m, self.en, [addr], 1, "waddr")[0]
            # (``lane_addresses`` copies per lane, each for its share of the lane's SIMD elements)
            pe, simd, words, n = self.pe, self.simd, img.words(), self.lane_addresses
            wbits = img.width // (pe * simd)
            slices = []
            for p in range(pe):
                for g in range(n):
                    s0, s1 = g * simd // n, (g + 1) * simd // n
                    if s1 == s0:
                        continue
                    (a,) = self._kept_copies(addr, [f"{self.dot_name}_waddr_fanout_copy_{p}_{g}"])
                    lo, width = (p * simd + s0) * wbits, (s1 - s0) * wbits
                    part = Signal(width, name=f"{self.dot_name}_lane_weights_{p}_{g}")
                    self.m.d.comb += part.eq(_word_slice(words, lo, width, a))
                    slices.append(part)
            return Cat(*slices)
        if img.in_rom:
            rom = self.m.submodules.weights = ROM(img.width, img.depth, img.words(),
                                                  name=file_stem(self.name, "weights"),
                                                  ram_style=self.ram_style)
            if self.copy_delay and not self.weight_register:
                # the input copies' clock edge: read the word one edge later
                addr = delay_line(self.m, self.en, [addr], 1, "waddr")[0]
            self.m.d.comb += [rom.addr.eq(addr), rom.en.eq(self.en)]
            if self.weight_register:  # the read word registered: the input word waits a clock
                reg = Signal(img.width, name=f"{self.dot_name}_weight_reg")
                with self.m.If(self.en):
                    self.m.d.sync += reg.eq(rom.data)
                return reg
            return rom.data
        return Const(img.words()[0], img.width)

    def step(self, fire, first, last, tag, also=()):
        """Register the stage-0 step: ``fire`` (a step runs on this edge), ``first`` / ``last``
        (it opens / closes an output fold) and ``tag`` (the output fold, addresses the threshold
        ROM). ``also``: the wrapper's own stage-1 registers, ``(register, value)`` pairs loaded on
        the same enable.

        The step registers carry no Verilog names (``$signal$<n>``), as the units always emitted
        them: the Verilog text stays the one the resource calibration was synthesised from."""
        m, en = self.m, self.en
        self._issued_output = fire & last  # a step that will show an output beat
        self.v1, self.first1, self.last1 = v1, first1, last1 = Signal(), Signal(), Signal()
        self.tag1 = tag1 = Signal(range(self.folds)) if self.folds > 1 else None
        with m.If(en):
            m.d.sync += [v1.eq(fire), first1.eq(first), last1.eq(last)]
            m.d.sync += [r.eq(v) for r, v in also]
            if tag1 is not None:
                m.d.sync += tag1.eq(tag)

    # ------------------------------------------------------------------------- stages 1 .. out
    def products(self, x1, w1) -> list:
        """Per PE lane, the adder tree of its ``simd`` products (stage 1)."""
        pe, simd = self.pe, self.simd
        xs = lanes(x1, simd if self.shared_inputs else pe * simd, self.in_dtype.bits)
        copies = self.input_copies if self.shared_inputs else 0
        if copies > 1:
            # the input word's fan-out to every PE split over registered copies (kept apart in
            # synthesis, see streamfold.compiler.synth), each feeding pe/copies PEs
            regs = [Signal(len(x1), name=f"{self.dot_name}_fanout_copy_{k}", attrs={"keep": 1})
                    for k in range(copies)]
            with self.m.If(self.en):
                self.m.d.sync += [r.eq(x1) for r in regs]
            x_of_pe = [lanes(regs[p * copies // pe], simd, self.in_dtype.bits) for p in range(pe)]
            # (the weight ROM is read a clock later instead, :meth:`weight_word`: no register
            # between a central weight word and the lanes; or, with the weight register, the
            # word read on time and registered)
        elif self.weight_register and self.shared_inputs:
            xr = Signal(len(x1), name=f"{self.dot_name}_x_reg")  # waits with the weight word
            with self.m.If(self.en):
                self.m.d.sync += xr.eq(x1)
            x_of_pe = [lanes(xr, simd, self.in_dtype.bits)] * pe
        else:
            x_of_pe = [xs] * pe
        ws = lanes(w1, pe * simd, self.weight_dtype.bits)
        # one weight per lane (a one-word image) and a multi-bit input: shifts and adds of the input
        const_w = (None if self.binary or self.weights.in_rom or self.in_dtype.bipolar
                   else self.weight_dtype.decode(self.weights.codes[0]))
        per_lane = []
        for p in range(pe):
            terms = []
            for s in range(simd):
                w, x = ws[p * simd + s], x_of_pe[p][s if self.shared_inputs else p * simd + s]
                if self.binary:
                    terms.append(~(w[0] ^ x[0]))
                elif const_w is not None:
                    terms += constant_products(int(const_w[p * simd + s]), x, self.in_dtype)
                elif self.res_type == "lut" and not (self.weight_dtype.bipolar or self.in_dtype.bipolar):
                    terms += partial_products(w, self.weight_dtype, x, self.in_dtype)
                else:
                    terms.append(product(w, self.weight_dtype, x, self.in_dtype))
            per_lane.append(terms)
        if not self.tree_stages:
            return [tree_sum(t) for t in per_lane]
        # layer 0 the products, then the adder levels; the registers split them evenly
        return staged_tree_sum(self.m, self.en, per_lane, self.tree_stages, f"{self.dot_name}_tree")

    def finish(self, x1, w1):
        """Everything from the stage-1 input word ``x1`` (``simd`` or ``pe*simd`` lanes) and
        weight word ``w1`` (from :meth:`weight_word`) to the output stream."""
        m, en, o = self.m, self.en, self.o
        pe = self.pe
        acc_shape = shape_of(self.acc_dtype)
        dots = self.products(x1, w1)
        # the step flags follow the dot products through the adder tree's registers
        v1, first1, last1, tag1 = delay_line(m, en, [self.v1, self.first1, self.last1, self.tag1],
                                             self.tree_stages + self.copy_delay, "step")

        # ---- stage 2: registered dot products
        v2, first2, last2 = Signal(), Signal(), Signal()
        tag2 = Signal(range(self.folds)) if self.folds > 1 else None
        dot2 = [Signal(acc_shape, name=f"{self.dot_name}_{p}") for p in range(pe)]
        with m.If(en):
            m.d.sync += [v2.eq(v1), first2.eq(first1), last2.eq(last1)]
            if tag2 is not None:
                m.d.sync += tag2.eq(tag1)
            m.d.sync += [d.eq(v) for d, v in zip(dot2, dots)]

        # ---- stage 3: accumulators (hold the finished sums while v3)
        v3 = Signal()
        acc = [Signal(acc_shape, name=f"acc_{p}") for p in range(pe)]
        with m.If(en):
            m.d.sync += v3.eq(v2 & last2)
            with m.If(v2):
                m.d.sync += [a.eq(Mux(first2, 0, a) + d) for a, d in zip(acc, dot2)]

        # thresholds: word of the fold finishing in stage 3
        thr = self.thresholds
        n_thr = thr.lanes // pe if thr is not None else 0
        if n_thr:
            if thr.in_rom:
                trom = m.submodules.thresholds = ROM(thr.width, thr.depth, thr.words(),
                                                     name=file_stem(self.name, "thresholds"),
                                                     ram_style=self.ram_style)
                m.d.comb += [trom.addr.eq(tag2), trom.en.eq(en)]
                t3 = trom.data
            else:
                t3 = Const(thr.words()[0], thr.width)
            ts = lanes(t3, pe * n_thr, self.acc_dtype.bits)

        # ---- output register (after ``out_stages`` registers splitting the compares and count tree)
        k_out = self.out_stages
        if thr is not None and n_thr:
            cmps = []
            for p in range(pe):
                lane_t = ts[p * n_thr:(p + 1) * n_thr]
                cmps.append([acc[p] >= (t.as_signed() if self.acc_dtype.signed else t) for t in lane_t])
            if k_out:
                counts = staged_tree_sum(m, en, cmps, k_out, "count")
            else:
                counts = [tree_sum(c) for c in cmps]
        elif thr is not None:
            counts = [Const(0, 1)] * pe
        else:
            counts = None
        if counts is not None and k_out and not n_thr:
            counts = delay_line(m, en, counts, k_out, "count")
        sums = delay_line(m, en, acc, k_out, "acc") if counts is None else acc
        v_out = delay_line(m, en, [v3], k_out, "v3")[0]
        outs = []
        for p in range(pe):
            out = Signal(self.out_dtype.bits, name=f"out_{p}")
            if thr is not None:
                count = counts[p]
                if self.out_dtype.bipolar:
                    m.d.comb += out.eq(count != 0)
                else:
                    m.d.comb += out.eq(count + self.out_bias)  # truncated to out_bits: two's complement
            else:
                m.d.comb += out.eq(sums[p])  # sign-extended or truncated to out_bits
            outs.append(out)
        if not self.decoupled:
            with m.If(en):
                m.d.sync += [self.out_valid.eq(v_out), o.payload.eq(Cat(*outs))]
            m.d.comb += o.valid.eq(self.out_valid)
            return
        # decoupled: the output register writes an output buffer; ``reserved`` counts the beats
        # in it and in flight, and a step issues only while every one of them has a slot (one
        # spare, for ``issue_ok`` being a register)
        word = Signal(len(o.payload), name="out_word")
        m.d.sync += [self.out_valid.eq(v_out), word.eq(Cat(*outs))]
        depth = self.buffer_depth
        buf = m.submodules.out_buffer = SyncFIFOBuffered(width=len(o.payload), depth=depth)
        m.d.comb += [buf.w_en.eq(self.out_valid), buf.w_data.eq(word),
                     o.valid.eq(buf.r_rdy), o.payload.eq(buf.r_data), buf.r_en.eq(o.ready)]
        reserved = Signal(range(depth + 2), name="reserved")
        up, down = self._issued_output, o.valid & o.ready
        m.d.sync += reserved.eq(reserved + up - down)
        # issue_ok = (next reserved + 2 <= depth); the next count is reserved-1, reserved or
        # reserved+1, so the three compares read the register alone and the handshake only
        # chooses between them (no carry chain after the input's valid)
        m.d.sync += self.issue_ok.eq(Mux(up & ~down, reserved + 3 <= depth,
                                         Mux(down & ~up, reserved + 1 <= depth, reserved + 2 <= depth)))

    @property
    def buffer_depth(self) -> int:
        """Output-buffer beats of the decoupled mode: every register from the step to the output
        buffer, and two to spare (a full-rate stream never waits on a credit)."""
        return decoupled_buffer_depth(self.tree_stages + self.copy_delay + self.out_stages)


def check_thresholds(unit, channels: int, what: str) -> None:
    """The checks both dot-product units make of their IR unit: a legal fold, thresholds
    ``(channels, n)``, one threshold for a bipolar output."""
    unit.check_folding()
    if unit.thresholds is not None:
        t = np.asarray(unit.thresholds)
        if t.ndim != 2 or t.shape[0] != channels:
            raise ValueError(f"layer {unit.name}: thresholds must be ({what}, n), got {t.shape}")
        if unit.out_dtype.bipolar and t.shape[1] != 1:
            raise ValueError(f"layer {unit.name}: a bipolar output needs exactly 1 threshold")

"""Timing figures read back from the tools: which units a critical path runs through.

Two sources, one shape of answer:

* nextpnr (ECP5, iCE40): ``--report`` writes a JSON file whose ``critical_paths`` list, per clock
  domain, the path's segments (clock-to-q, logic, routing, setup), each ``from``/``to`` a cell and
  port and carrying a delay in ns. :func:`nextpnr_critical_path` reduces the worst path to its
  total delay, its logic and routing shares, and the top-level pieces (:func:`.topology.pieces`)
  its cells and nets belong to.
* Yosys ``ltp -noff`` (Xilinx, which has no open place-and-route): the longest topological path
  through the flattened netlist between registers, in cells. :func:`parse_ltp` reads its log.

A flattened netlist names a cell or net of piece ``u0_fc0`` ``u0_fc0.<name>`` (Yosys keeps the
hierarchy in the name, with a ``$flatten\\`` prefix for private names); LUTs that ABC rebuilt lose
the prefix, so a path is attributed through the names that kept it (its registers and most nets).
"""
from __future__ import annotations

import math
import re

#: a piece instance name at the start of a hierarchical name (``u0_fc0.``, ``$flatten\fifo3.``)
_PIECE = re.compile(r"(?:^|[\\$.])((?:u\d+_[A-Za-z0-9_]+?|fifo\d+(?:_\d+)?|dwc\d+(?:_\d+)?))[.]")


def piece_of(name: str, names: set[str]) -> str | None:
    """The top-level piece a flattened cell or net name belongs to (None: not attributable)."""
    for m in _PIECE.finditer(str(name)):
        if m.group(1) in names:
            return m.group(1)
    return None


def _units_along(names: list[str], pieces: dict[str, str]) -> list[str]:
    """Distinct pieces along a path's names, in path order (``pieces``: instance -> label)."""
    seen: list[str] = []
    for n in names:
        p = piece_of(n, set(pieces))
        if p is not None and (not seen or seen[-1] != pieces[p]) and pieces[p] not in seen:
            seen.append(pieces[p])
    return seen


def nextpnr_critical_path(report: dict, pieces: dict[str, str]) -> dict | None:
    """The worst critical path of a nextpnr ``--report`` document.

    ``pieces`` maps top-level instance names to the label to report (a unit's name, ``fifo3``).
    Returns ``{"delay_ns", "logic_ns", "routing_ns", "segments", "units", "from", "to"}`` or None
    when the report lists no path.
    """
    paths = report.get("critical_paths") or []
    best, best_delay = None, -1.0
    for p in paths:
        segs = p.get("path") or []
        d = sum(float(s.get("delay", 0.0)) for s in segs)
        if d > best_delay:
            best, best_delay = p, d
    if best is None:
        return None
    segs = best.get("path") or []
    names: list[str] = []
    logic = routing = 0.0
    for s in segs:
        d = float(s.get("delay", 0.0))
        if s.get("type") == "routing":
            routing += d
        else:
            logic += d
        for end in ("from", "to"):
            c = (s.get(end) or {}).get("cell")
            if c:
                names.append(c)
        if s.get("net"):
            names.append(s["net"])
    first = (segs[0].get("from") or {}).get("cell") if segs else None
    last = (segs[-1].get("to") or {}).get("cell") if segs else None
    return {"delay_ns": round(best_delay, 3), "logic_ns": round(logic, 3), "routing_ns": round(routing, 3),
            "segments": len(segs), "units": _units_along(names, pieces),
            "from": first, "to": last, "clock": best.get("from")}


_LTP_HEAD = re.compile(r"Longest topological path in (\S+) \(length=(\d+)\)")
_LTP_STEP = re.compile(r"^\s*\d+:\s+(\S+)")


def parse_ltp(log: str, pieces: dict[str, str]) -> dict | None:
    """Yosys ``ltp -noff`` output: ``{"levels", "units"}`` (levels: cells on the longest path
    between registers and ports)."""
    m = None
    for m in _LTP_HEAD.finditer(log):
        pass
    if m is None:
        return None
    names = [s.group(1) for line in log[m.end():].splitlines()
             if (s := _LTP_STEP.match(line))]
    return {"levels": int(m.group(2)), "units": _units_along(names, pieces)}


def piece_labels(pipeline) -> dict[str, str]:
    """Top-level instance name -> the label a timing report shows (the unit's own name for a
    unit, the instance name for a FIFO or width converter)."""
    from . import topology

    return {p.name: (p.unit.name if p.kind == "unit" else p.name) for p in topology.pieces(pipeline)}


# ----------------------------------------------------------------------------- register stages
#: A first-order delay model of a dot-product unit's register-to-register paths, per family:
#: ``reg`` (clock-to-out and setup), ``level`` (one logic level with its local routing: a LUT or
#: an adder bit-slice), ``fanout`` (ns per doubling of the PEs one register feeds: the routing of a
#: broadcast spreads with the lanes it reaches), ``dsp`` (a multiplier block). ECP5 is fitted on
#: nextpnr runs of TFC-W1A1 on the ULX3S-85F (19.6 ns unstaged: 8 levels after a 64-PE broadcast;
#: 11.3 ns with the adder tree cut after its second level); the others have no open
#: place-and-route here and take the ECP5 figures scaled by the families' relative LUT speed
#: (guesses, marked ``calibrated: False``). ``enable`` is ns per doubling of the flip-flops (in
#: slices of 8) the unit's stall enable reaches: with stages and copies in (95.4 MHz), TFC's first
#: layer is limited by that net, from the output FIFO's level through two LUTs to about 20,000
#: flip-flops (10.5 ns); register stages cannot cut it, they add to it.
DELAY_MODELS = {
    "ecp5": {"reg": 0.52, "level": 1.66, "fanout": 0.97, "enable": 0.56, "dsp": 4.0, "bram": 5.31,
             "calibrated": True},
    "ice40": {"reg": 0.8, "level": 2.2, "fanout": 1.3, "enable": 0.75, "dsp": 6.0, "bram": 4.0,
              "calibrated": False},
    "xc7": {"reg": 0.5, "level": 0.9, "fanout": 0.55, "enable": 0.3, "dsp": 3.0, "bram": 1.7,
            "calibrated": False},
    "xcup": {"reg": 0.4, "level": 0.6, "fanout": 0.4, "enable": 0.25, "dsp": 2.0, "bram": 1.2,
             "calibrated": False},
}
#: ``bram``: a block RAM read's clock-to-output beyond a register's (ECP5: the digits demo's
#: conv2 at 100 MHz, nextpnr: 5.83 ns from the DP16KD holding its weights, the start of its
#: critical path; the others are guesses)
#: the share of the clock period the model may fill (its error, and the paths it does not see)
MARGIN = 0.85

#: products one copy of a few-word weight ROM's address may drive (``lane_addresses``): the
#: demo's conv1 at 100 MHz on ECP5 had its critical path from the ROM's merged read register
#: (87.8 MHz), then from one address copy per lane feeding 144 partial products (97.7 MHz)
LANE_ADDRESS_FANOUT = 16


def _dot_unit(u) -> bool:
    return hasattr(u, "tree_stages") and hasattr(u, "weight_dtype")


def _product_levels(u, family: str, d: dict) -> tuple[float, int]:
    """(ns, adder-tree terms per lane) of the unit's products."""
    from .units.dot_product import has_multipliers, products_in_dsp

    simd = getattr(u, "simd", 1)
    wb = u.weight_dtype.bits
    if u.binary or u.weight_dtype.bipolar or u.in_dtype.bipolar or not has_multipliers(u):
        return d["level"], simd  # an XNOR, a sign flip or constant shifts: one level
    if products_in_dsp(u, family):
        return d["dsp"], simd
    return d["level"], simd * wb  # shifted partial products into the tree


def _segments(layers_ns: list[float], stages: int) -> list[float]:
    """Delays of the segments ``stages`` registers cut a chain of layers into (as the hardware
    places them: :func:`.units.dot_product.stage_cuts`, leftovers at the end)."""
    from .units.dot_product import stage_cuts

    cuts = stage_cuts(len(layers_ns), stages)
    bounds = [-1] + cuts + [len(layers_ns) - 1]
    return [sum(layers_ns[a + 1:b + 1]) for a, b in zip(bounds, bounds[1:])]


def enable_path_ns(flipflops: int, family: str) -> float:
    """Modelled delay (ns) of a stall enable: from the consumer's ready through two logic levels
    to ``flipflops`` clock-enable pins (a high-fan-out net, spread in slices of 8)."""
    d = DELAY_MODELS[family]
    return d["reg"] + 2 * d["level"] + d["enable"] * max(0.0, math.log2(max(1.0, flipflops / 8)))


def _weights_where(u, family: str) -> str | None:
    """Where Yosys puts a matrix-vector unit's weight memory on ``family`` (``logic``,
    ``lutram``, ``bram``...); None for other units and for weights without a memory."""
    if u.kind != "mvau":
        return None
    from .resource_model import mem_features
    from .units.mvau import memories

    return mem_features([m for m in memories(u) if m.name == "weights"], family)["where"].get("weights")


def _lane_address_candidate(u, family: str) -> bool:
    """A staged multi-bit matrix-vector unit whose few-word weight ROM is soft logic folded into
    its products: the ROM's read register, merged by synthesis into a few flip-flops, drives every
    product; copies of the word address per lane (``lane_addresses``) keep the products local."""
    if u.kind != "mvau" or u.binary or not u.tree_stages or u.local_weights or u.weight_register:
        return False
    from .rom_images import mvau_weight_image

    return _weights_where(u, family) == "logic" and mvau_weight_image(u).in_rom


def _weights_in_block_ram(u, family: str) -> bool:
    return _weights_where(u, family) == "bram"


def _weight_fanout(u, family: str) -> float:
    """Lanes one weight register feeds on average: varying weight bits over the registers of
    distinct columns, for a binary layer's weight ROM that Yosys puts in soft logic without
    ``local_weights``; else 1."""
    if u.kind != "mvau" or u.local_weights or not u.binary or _weights_where(u, family) != "logic":
        # multi-bit few-word products fold the ROM into their logic (resources: ``wfun``), with
        # no weight register to copy; registers per weight bit there cost more LUTs than they
        # save (the demo's conv1: +4,500 LUTs, no faster); measured on binary layers only
        return 1.0
    from .resource_model import rom_columns
    from .rom_images import mvau_weight_image
    from .units.mvau import local_weight_bits

    regs, _ = rom_columns(mvau_weight_image(u).bit_matrix())
    return local_weight_bits(u) / max(1, regs)


def unit_paths(u, family: str) -> dict:
    """Modelled delays (ns) of a dot-product unit's paths with its present stages: ``input``
    (input copies, when there are), ``tree`` (broadcast, products and adder tree: its worst
    segment), ``acc`` (accumulator), ``out`` (compares and count, to the next register) and
    ``enable`` (the stall enable, from the consumer's ready to every register of the unit); with
    ``weight_register``, ``weights`` (the block RAM read into its register)."""
    from .units.dot_product import tree_levels

    d = DELAY_MODELS[family]
    pe = u.pe
    shared = u.kind == "mvau"
    copies = getattr(u, "input_copies", 0)
    fan_pe = -(-pe // copies) if (shared and copies > 1) else (pe if shared else 1)
    prod_ns, terms = _product_levels(u, family, d)
    broadcast = d["fanout"] * max(0.0, math.log2(fan_pe))
    # a weight ROM in soft logic keeps one register per distinct column: each drives every lane
    # with that column (TFC fc0 on the ULX3S: 7 words, 7,168 weight bits, at most 127 registers)
    shared_w = _weight_fanout(u, family)
    if shared_w > 1:
        broadcast = max(broadcast, d["fanout"] * math.log2(shared_w))
    bram = _weights_in_block_ram(u, family)
    wreg = bool(getattr(u, "weight_register", 0))
    if bram and not wreg:  # the weight word leaves the block RAM late
        broadcast = max(broadcast, d["bram"])
    layers = [broadcast + prod_ns] + [d["level"]] * tree_levels(terms)
    out = {"tree": d["reg"] + max(_segments(layers, u.tree_stages))}
    if bram and wreg:  # the block RAM's read into its register
        out["weights"] = d["reg"] + d["bram"] + 0.5 * d["level"]
    if shared and copies > 1:
        out["input"] = d["reg"] + d["fanout"] * math.log2(copies) + 0.5 * d["level"]
    carry = d["level"] * (1 + u.acc_dtype.bits / 16)  # an adder: a level and its carry chain
    out["acc"] = d["reg"] + carry
    n_thr = u.n_thresholds if u.thresholds is not None else 0
    cmp_layers = [carry] + [d["level"]] * tree_levels(n_thr) if n_thr else [0.0]
    out["out"] = d["reg"] + max(_segments(cmp_layers, u.out_stages))
    from .resources import estimate_unit

    # decoupled: the registered issue flag reaches only the step counters and flags
    ffs = 64 if getattr(u, "decoupled", 0) else (estimate_unit(u, family) or {}).get("FF", 0)
    out["enable"] = enable_path_ns(ffs, family)
    return {k: round(v, 2) for k, v in out.items()}


def window_paths(u, family: str) -> dict:
    """Modelled delay (ns) of a whole-window unit's stall, ``handshake``. Without ``skid`` the
    consumer's ready runs through the unit's step enable to its window registers (output and
    column history) and on, through its input ready, into its producer's FIFO read: the enable
    path of :func:`enable_path_ns` and two levels more, one at either end (the demo on ECP5 at 86.1
    MHz: from the consumer FIFO's level through the 144-element window of conv1 into the producer
    FIFO's level, 11.6 ns). With it the chain is cut in two at the skid register: the consumer's
    ready reaches only the output and skid registers, the skid register's flag the rest (each an
    enable path of its own; with skid in conv1's window the demo's critical path left the
    handshake for conv1's adder tree)."""
    from .resources import estimate_unit

    d = DELAY_MODELS[family]
    ffs = (estimate_unit(u, family) or {}).get("FF", 0)
    if not u.skid:
        return {"handshake": round(enable_path_ns(ffs, family) + 2 * d["level"], 2)}
    bits = u.out_stream.beat_bits
    return {"handshake": round(max(enable_path_ns(2 * bits, family), enable_path_ns(ffs - bits, family)), 2)}


def close_timing(pipeline, mhz: float, family: str):
    """The pipeline with register stages and input copies where :func:`unit_paths` says a
    dot-product unit would miss ``mhz`` (within :data:`MARGIN`), the fewest that do, and a skid
    register in every whole-window unit whose stall (:func:`window_paths`) would; units that
    already carry stages (a fold file's) are left as they are. Returns ``(pipeline, plan)``, the
    plan one row per dot-product and whole-window unit: its stages and its worst modelled path
    before and after."""
    if family not in DELAY_MODELS:
        raise ValueError(f"no delay model for family {family!r}")
    budget = 1000.0 / float(mhz) * MARGIN
    units, plan = [], []
    for u in pipeline.units:
        if u.kind == "swg_whole":
            before, given = window_paths(u, family)["handshake"], bool(u.skid)
            if not u.skid and before > budget:
                u = u.replace(skid=1)
            after = window_paths(u, family)["handshake"]
            plan.append({"layer": u.name, "tree_stages": 0, "out_stages": 0, "input_copies": 0, "decoupled": 0,
                         "local_weights": 0, "weight_register": 0, "lane_addresses": 0, "skid": int(u.skid),
                         "model_ns_before": before, "model_ns": after, "limit": "handshake",
                         "meets": after <= budget, "from_fold_file": given})
            units.append(u)
            continue
        if not _dot_unit(u):
            units.append(u)
            continue
        before = max(unit_paths(u, family).values())
        given = (u.tree_stages or u.out_stages or getattr(u, "input_copies", 0) or u.decoupled
                 or getattr(u, "local_weights", 0) or getattr(u, "weight_register", 0)
                 or getattr(u, "lane_addresses", 0))
        if not given:
            u = _stage(u, family, budget)
        after = unit_paths(u, family)
        limit = max(after, key=after.get)
        plan.append({"layer": u.name, "tree_stages": u.tree_stages, "out_stages": u.out_stages,
                     "input_copies": getattr(u, "input_copies", 0), "decoupled": u.decoupled,
                     "local_weights": getattr(u, "local_weights", 0),
                     "weight_register": getattr(u, "weight_register", 0),
                     "lane_addresses": getattr(u, "lane_addresses", 0),
                     "model_ns_before": before,
                     "model_ns": after[limit], "limit": limit, "meets": after[limit] <= budget,
                     "from_fold_file": bool(given)})
        units.append(u)
    return pipeline.with_units(units), plan


def _stage(u, family: str, budget: float):
    """The stages and input copies that bring every modelled path under ``budget`` ns at the
    fewest added flip-flops (the resource model's count), when none does the fastest; and the
    decoupled mode where the stall enable's fan-out would miss it."""
    from .folding import MAX_STAGES
    from .resources import estimate_unit

    copies = [0]
    if u.kind == "mvau":
        c = 2
        while c < u.pe:
            copies.append(c)
            c *= 2
        if u.pe > 1:
            copies.append(u.pe)
    # lane-local registers for a shared soft-logic weight ROM, a register after a block RAM's
    weight_knobs = [{}]
    if _weight_fanout(u, family) > 1:
        weight_knobs.append({"local_weights": 1})
    if _weights_in_block_ram(u, family):
        weight_knobs.append({"weight_register": 1})
    best = None
    for c, wk in [(c, wk) for wk in weight_knobs for c in copies]:
        for t in range(MAX_STAGES + 1):
            cand = (u.replace(input_copies=c, tree_stages=t, **wk) if u.kind == "mvau"
                    else u.replace(tree_stages=t))
            paths = unit_paths(cand, family)
            worst = max(paths.get("tree", 0), paths.get("input", 0), paths.get("weights", 0))
            ff = (estimate_unit(cand, family) or {}).get("FF", 0)
            key = (worst > budget, ff if worst <= budget else worst)
            if best is None or key < best[0]:
                best = (key, cand)
            if worst <= budget:
                break  # more tree stages only add flip-flops
    u = best[1]
    if _lane_address_candidate(u, family):
        _, terms = _product_levels(u, family, DELAY_MODELS[family])
        u = u.replace(lane_addresses=min(u.simd, -(-terms // LANE_ADDRESS_FANOUT)))
    while unit_paths(u, family)["out"] > budget and u.out_stages < MAX_STAGES:
        u = u.replace(out_stages=u.out_stages + 1)
    if unit_paths(u, family)["enable"] > budget:
        u = u.replace(decoupled=1)  # no stall enable to fan out: free-running, with credits
    return u

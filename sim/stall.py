"""Explain a stalled simulation: which streams are stuck, and how full the FIFOs are.

A stalled run (no beat moved on either side for the stall limit) is re-run with a harness built
with ``--public-flat-rw`` (:data:`streamfold.sim.run.PROBE_BUILD`): the same design, seed and
limits stop in the same state, and the harness dumps the valid/ready of every internal stream (the
``i``/``o`` members of each FIFO, unit and width converter of :class:`streamfold.hw.top.Accelerator`)
and the FIFOs' occupancy registers. :func:`diagnose` turns that into a report:

* every stream in stream order with its valid/ready ("waiting" when a beat is offered and not
  taken);
* every FIFO's occupancy out of its depth;
* where the jam starts: the most downstream waiting stream. At ``m_axis`` the sink is not taking
  beats (back-pressure from outside the design); at a unit's input, with the unit's output idle,
  the unit is stuck; with nothing in flight and input left, the design stopped accepting input;
  with every input beat accepted and output beats missing, beats were lost on the way.

Without probes (a harness that was not built for them) the report still gives the top-level
handshake, frames in and out, and expected versus received beats.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from streamfold.compiler import topology


@dataclass
class Component:
    scope: str  # instance name under the top module ("fifo0", "u0_fc0", "dwc0")
    label: str  # what the report calls it
    kind: str  # "fifo", "unit", "dwc"
    depth: int | None = None  # FIFOs


@dataclass
class StallReport:
    text: str  # several lines: the summary line first
    summary: str  # the first line
    streams: list = field(default_factory=list)  # {"from", "to", "valid", "ready", "waiting"}
    fifos: list = field(default_factory=list)  # {"name", "depth", "occupancy"}
    stuck_at: str = ""  # the stream where the jam starts ("" when unknown)

    def to_json(self) -> dict:
        return {"summary": self.summary, "stuck_at": self.stuck_at, "streams": self.streams,
                "fifos": self.fifos}


def _label(p) -> str:
    return f"{p.unit.name} ({p.unit.kind})" if p.kind == "unit" else p.label


def components(pipeline) -> list:
    """The accelerator's stream components in stream order, named as the top level names them
    (:func:`streamfold.compiler.topology.pieces`)."""
    return [Component(p.name, _label(p), p.kind, p.depth if p.kind == "fifo" else None)
            for p in topology.pieces(pipeline)]


def _port(name: str, port: int, n: int) -> str:
    return f"{name} port {port}" if n > 1 else name


def stream_taps(pipeline) -> list:
    """Every stream of the top level as ``(from, to, scope, member)``: its valid/ready are the
    ``member`` (``i``/``o``) of the part at ``scope``, in stream order. In a chain each stream
    joins neighbouring parts; in a graph, a unit's output port feeds the first part of its edge
    and every FIFO feeds its edge's consumer port."""
    pieces = topology.pieces(pipeline)
    units = {p.unit.name: p for p in pieces if p.kind == "unit"}
    last_on_edge: dict = {}
    taps = []
    for p in pieces:
        if p.kind == "unit":
            continue
        e = p.edge
        if p.index in last_on_edge:
            src = last_on_edge[p.index]
        elif e.src is None:
            src = "s_axis"
        else:
            u = units[e.src]
            src = _port(_label(u), e.src_port, len(u.unit.output_streams()))
        taps.append((src, p.label, p.name, "i"))
        last_on_edge[p.index] = p.label
        if p.kind == "fifo":
            if e.dst is None:
                taps.append((p.label, "m_axis", p.name, "o"))
            else:
                u = units[e.dst]
                taps.append((p.label, _port(_label(u), e.dst_port, len(u.unit.input_streams())),
                             p.name, "o"))
    return taps


def _probe_table(probes: list, top: str) -> dict:
    """{instance path below the top: {signal: value}} from the harness's [scope, name, value]."""
    table: dict = {}
    marker = f"{top}."
    for scope, name, value in probes:
        if scope.endswith(top):
            rel = ""
        elif marker in scope:
            rel = scope.split(marker, 1)[1]
        else:
            continue
        table.setdefault(rel, {})[name] = int(value)
    return table


def _occupancy(c: Component, table: dict):
    sig = table.get(c.scope, {})
    if c.depth == 0:
        return 0
    if c.depth == 1:
        return sig.get("valid")
    if c.depth == 2:
        if "o__valid" in sig and "skid_valid" in sig:
            return sig["o__valid"] + sig["skid_valid"]
        return None
    levels = sorted((k, v["level"]) for k, v in table.items()
                    if k.startswith(c.scope + ".") and "level" in v)
    return min(levels, key=lambda kv: kv[0].count("."))[1] if levels else None


def diagnose(pipeline, result, top: str = "streamfold_top", frames: int | None = None) -> StallReport:
    """The report of a stalled :class:`streamfold.sim.run.StreamResult` (see the module docstring)."""
    in_bpf, out_bpf = result.in_beats_per_frame, result.out_beats_per_frame
    frames = frames if frames is not None else result.in_beats_total // in_bpf
    got = len(result.out_beats)
    why = result.stall or "the run did not complete"
    head = (f"the design stalled: {why.split(':')[0]}; {result.in_accepted}/{result.in_beats_total} "
            f"input beats accepted ({result.in_accepted // in_bpf}/{frames} frames in), "
            f"{got}/{result.expected_out_beats} output beats received ({got // out_bpf}/{frames} "
            f"frames out, {out_bpf} beats per frame)")
    hs = result.handshake
    table = _probe_table(result.probes, top)
    if not table:
        lines = [head, f"  top level in the last cycle: s_axis tvalid={hs.get('s_axis_tvalid')} "
                       f"tready={hs.get('s_axis_tready')}, m_axis tvalid={hs.get('m_axis_tvalid')} "
                       f"tready={hs.get('m_axis_tready')} (internal streams not probed)"]
        culprit = ""
        if hs.get("m_axis_tvalid") == 1 and hs.get("m_axis_tready") == 0:
            culprit = "m_axis"
            lines.append("  stuck at m_axis: the sink is not taking beats (m_axis_tready=0)")
        return StallReport("\n".join(lines), head, stuck_at=culprit)

    comps = components(pipeline)
    streams = []
    for src, dst, scope, member in stream_taps(pipeline):
        sig = table.get(scope, {})
        v, r = sig.get(f"{member}__valid"), sig.get(f"{member}__ready")
        streams.append({"from": src, "to": dst, "valid": v, "ready": r, "waiting": v == 1 and r == 0})
    fifos = [{"name": c.label, "depth": c.depth, "occupancy": _occupancy(c, table)}
             for c in comps if c.kind == "fifo"]
    full = [f for f in fifos if f["occupancy"] is not None and f["depth"] and f["occupancy"] >= f["depth"]]

    waiting = [i for i, s in enumerate(streams) if s["waiting"]]
    if waiting:
        i = waiting[-1]
        s = streams[i]
        stuck_at = f"{s['from']} -> {s['to']}"
        if s["to"] == "m_axis":
            why_line = ("the sink is not taking beats (m_axis_tready=0): back-pressure from outside "
                        "the design; the streams and FIFOs before it filled up")
        else:
            dst = s["to"].split(" port ")[0]
            outs = [t for t in streams if t["from"].split(" port ")[0] == dst]
            idle = all(t["valid"] == 0 for t in outs)
            why_line = (f"{s['to']} does not take the beat offered to it while its own output is "
                        f"{'idle' if idle else 'not moving'}: it is stuck")
            # a join waiting on one input while another input's FIFO is full: that branch's FIFO
            # is too shallow for what the other branch holds in flight (a skip FIFO, typically)
            joins = {p.label for p in topology.fifo_pieces(pipeline) if p.edge.dst is not None and
                     len(pipeline.unit(p.edge.dst).input_streams()) > 1}
            short = [f for f in full if f["name"] in joins]
            if short:
                why_line += (f"; {', '.join(f['name'] for f in short)} "
                             f"{'is' if len(short) == 1 else 'are'} full: a branch's FIFO too shallow "
                             "for what the other branch holds in flight (deepen it, or size the FIFOs "
                             "with the analysis)")
    elif result.in_accepted < result.in_beats_total:
        stuck_at = "s_axis -> " + streams[0]["to"]
        why_line = ("nothing is in flight, yet the design does not accept more input "
                    f"(s_axis_tready={streams[0]['ready']})")
    else:
        stuck_at = ""
        why_line = (f"every input beat was accepted and nothing is in flight, but "
                    f"{result.expected_out_beats - got} output beats never came: beats were lost "
                    "inside the design")
    lines = [head, f"  stuck at {stuck_at or '(no stream)'}: {why_line}",
             "  streams (valid/ready when it stopped; * = a beat offered and not taken):"]
    w = max(len(f"{s['from']} -> {s['to']}") for s in streams)
    for s in streams:
        lines.append(f"    {(s['from'] + ' -> ' + s['to']).ljust(w)}  valid={s['valid']} "
                     f"ready={s['ready']}{'  *' if s['waiting'] else ''}")
    lines.append("  FIFO occupancy: " + ", ".join(
        f"{f['name']} {'?' if f['occupancy'] is None else f['occupancy']}/{f['depth']}"
        + (" full" if f["occupancy"] is not None and f["depth"] and f["occupancy"] >= f["depth"]
           else "") for f in fifos))
    return StallReport("\n".join(lines), head, streams, fifos, stuck_at)

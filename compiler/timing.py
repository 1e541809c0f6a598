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

"""The one walk of a dataflow graph (:mod:`.graph`), shared by every consumer.

The top-level wiring (:mod:`streamfold.hw.top`), per-part synthesis, the stall report, the
resource estimates, the FIFO report and the reference all walk a graph the same way:
:func:`pieces` lists the top level's parts in stream order,

* for every unit, in topological order: for each of its input edges, the width converter on it
  (where the producer's fold differs from the unit's) and its FIFO; then the unit;
* then the FIFO (and converter) of the edge to the graph's output;

each with the instance name the top level gives it (``fifo{e}`` for edge ``e``, ``u{k}_{name}``
for unit ``k``, ``dwc{k}`` after unit ``k``) and the unit it is accounted with in per-unit
figures (a FIFO with its consumer, a converter with its producer). :func:`chain` gives the units
of a linear graph in order, for the analyses that are defined on chains.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .errors import StreamfoldError
from .units import kind_of


class GraphError(StreamfoldError, ValueError):
    """A graph whose edges do not form a valid dataflow design."""


@dataclass(frozen=True)
class Piece:
    """One part of the top level (see the module docstring)."""

    name: str  # instance name in the top level
    kind: str  # "fifo", "dwc" or "unit"
    index: int  # edge index (fifo, dwc) or unit index (unit)
    group: str | None  # the unit whose per-unit figures include this part (None: the output FIFO)
    unit: object = None  # the IR unit (kind "unit")
    edge: object = None  # the Edge (fifo, dwc)
    width: int = 0  # fifo: beat bits; dwc: element bits
    depth: int = 0  # fifo: depth in beats
    a: int = 0  # dwc: elements per input beat
    b: int = 0  # dwc: elements per output beat

    @property
    def label(self) -> str:
        if self.kind == "fifo" and self.edge.dst is None:
            return f"{self.name} (output)"
        return self.name


def ident(name: str) -> str:
    """A unit name as a Verilog identifier."""
    return re.sub(r"\W", "_", str(name)) or "unit"


def unit_instance(k: int, unit) -> str:
    return f"u{k}_{ident(unit.name)}"


def in_edges(graph, name: str) -> list:
    """The edges into unit ``name``, by input port."""
    return sorted((e for e in graph.edges if e.dst == name), key=lambda e: e.dst_port)


def out_edges(graph, name: str) -> list:
    """The edges out of unit ``name``, by output port."""
    return sorted((e for e in graph.edges if e.src == name), key=lambda e: e.src_port)


def check_graph(graph) -> None:
    """Every unit folds legally, every port has exactly one edge, the units are listed in a
    topological order, and every edge joins streams that agree on elements and datatype."""
    if not graph.units:
        raise GraphError("the graph has no units")
    for u in graph.units:
        u.check_folding()
    names = [u.name for u in graph.units]
    if len(set(names)) != len(names):
        raise GraphError(f"unit names repeat: {sorted(n for n in set(names) if names.count(n) > 1)}")
    pos = {n: i for i, n in enumerate(names)}
    for e in graph.edges:
        for end in (e.src, e.dst):
            if end is not None and end not in pos:
                raise GraphError(f"an edge names unit {end!r}, which the graph does not have")
        if e.src is not None and e.dst is not None and pos[e.src] >= pos[e.dst]:
            raise GraphError(f"edge {e.src} -> {e.dst} runs against the unit order (a cycle, or "
                             "units out of topological order)")
    if sum(e.src is None for e in graph.edges) != 1 or sum(e.dst is None for e in graph.edges) != 1:
        raise GraphError("a graph has one input stream and one output stream")
    for u in graph.units:
        for what, edges, n in (("input", in_edges(graph, u.name), len(u.input_streams())),
                               ("output", out_edges(graph, u.name), len(u.output_streams()))):
            ports = [e.dst_port if what == "input" else e.src_port for e in edges]
            if ports != list(range(n)):
                raise GraphError(f"layer {u.name}: its {n} {what} port(s) need one edge each, got "
                                 f"{len(edges)} (ports {ports})")
    for e in graph.edges:
        if e.src is None or e.dst is None:
            continue
        a, b = graph.unit(e.src), graph.unit(e.dst)
        oa = a.output_streams()[e.src_port]
        b.check_input(e.dst_port, oa, a.name)
        ib = b.input_streams()[e.dst_port]
        if oa.elems_per_frame != ib.elems_per_frame or oa.dtype != ib.dtype:
            raise GraphError(f"stream mismatch between {a.name} ({oa.shape} {oa.dtype}) and "
                             f"{b.name} ({ib.shape} {ib.dtype})")


def order(graph) -> list:
    """The units in topological order (as listed; :func:`check_graph` checks the listing)."""
    return list(graph.units)


def is_chain(graph) -> bool:
    return all(len(u.input_streams()) == 1 and len(u.output_streams()) == 1 for u in graph.units) and \
        len(graph.edges) == len(graph.units) + 1 and \
        all(e.src == (graph.units[k - 1].name if k else None) and
            e.dst == (graph.units[k].name if k < len(graph.units) else None)
            for k, e in enumerate(graph.edges))


def chain(graph, what: str = "this analysis") -> list:
    """The units of a linear graph, in stream order; a branching graph is refused naming ``what``."""
    if not is_chain(graph):
        raise GraphError(f"{what} needs a chain of units; the graph branches")
    return list(graph.units)


def pieces(graph) -> list[Piece]:
    """The parts of the top level, in stream order (see the module docstring)."""
    units = order(graph)
    index = {u.name: k for k, u in enumerate(units)}
    edge_no = {id(e): i for i, e in enumerate(graph.edges)}
    out = []

    def edge_parts(e):
        i = edge_no[id(e)]
        src, dst = graph.source_stream(e), graph.stream_of(e)
        if e.src is not None and src.fold != dst.fold:
            k = index[e.src]
            name = f"dwc{k}" if e.src_port == 0 else f"dwc{k}_{e.src_port}"
            out.append(Piece(name, "dwc", i, e.src, edge=e, width=src.dtype.bits, a=src.fold, b=dst.fold))
        out.append(Piece(f"fifo{i}", "fifo", i, e.dst, edge=e, width=dst.beat_bits, depth=int(e.depth)))

    for k, u in enumerate(units):
        for e in in_edges(graph, u.name):
            edge_parts(e)
        out.append(Piece(unit_instance(k, u), "unit", k, u.name, unit=u))
    edge_parts(graph.output_edge)
    return out


def fifo_pieces(graph) -> list[Piece]:
    """The FIFO of every edge, in edge order."""
    return sorted((p for p in pieces(graph) if p.kind == "fifo"), key=lambda p: p.index)


# ----------------------------------------------------------------------------- reference
def run_unit(unit, *inputs: np.ndarray) -> np.ndarray:
    """The integer reference of one unit on frames of values (``(frames, *stream.shape)``)."""
    k = kind_of(unit)
    frames = inputs[0].shape[0]
    xs = [np.asarray(x, dtype=np.int64).reshape((frames,) + tuple(s.shape))
          for x, s in zip(inputs, unit.input_streams())]
    y = k.reference(unit, *xs)
    ys = list(y) if len(unit.output_streams()) > 1 else [y]
    ys = [np.asarray(v, dtype=np.int64).reshape((frames,) + tuple(s.shape))
          for v, s in zip(ys, unit.output_streams())]
    return ys[0] if len(ys) == 1 else tuple(ys)


def run_reference(graph, x: np.ndarray, upto: int | None = None) -> np.ndarray:
    """Frames ``x`` (values, ``(frames, *in_stream.shape)``) through the graph's units; with
    ``upto``, what the first ``upto`` units of a chain produce."""
    if upto is not None:
        y = np.asarray(x, dtype=np.int64)
        for u in chain(graph, "a partial reference")[:upto]:
            y = run_unit(u, y)
        return y
    values = {(None, 0): np.asarray(x, dtype=np.int64)}
    for u in order(graph):
        ins = [values[(e.src, e.src_port)] for e in in_edges(graph, u.name)]
        y = run_unit(u, *ins)
        for p, v in enumerate(y if isinstance(y, tuple) else (y,)):
            values[(u.name, p)] = v
    e = graph.output_edge
    return values[(e.src, e.src_port)]

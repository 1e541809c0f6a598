"""The dataflow graph: units are nodes, streams are edges, each edge with its FIFO.

A compiled network is a :class:`DataflowGraph`. Every edge carries one stream from a producer's
output port to a consumer's input port, through a FIFO of ``depth`` beats (of the consumer's
input stream; 0 is a direct wire) and, where the two folds differ, a width converter. The
graph's own input (``s_axis``) is the producer ``None`` of the edges it feeds; its output
(``m_axis``) the consumer ``None``. A linear model is the special case of a chain: edge ``k``
feeds unit ``k`` and edge ``n`` the output, as :meth:`DataflowGraph.__init__` builds it from a
list of units.

How the graph is walked (topological order, the pieces of the top level, stream checks,
the reference) is :mod:`.topology`'s job, the same walk for every consumer.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from .datatypes import DataType, StreamSpec
from .topology import check_graph
from .units import unit_class

#: version of the build-folder format (ir.json); a build of another version is refused
IR_VERSION = 2


@dataclass(frozen=True)
class Edge:
    """One stream: ``src`` unit's output ``src_port`` -> FIFO of ``depth`` beats -> ``dst`` unit's
    input ``dst_port``. ``src is None``: the graph's input; ``dst is None``: its output."""

    src: str | None
    dst: str | None
    depth: int = 2
    src_port: int = 0
    dst_port: int = 0

    def to_json(self) -> dict:
        return {"from": self.src, "from_port": self.src_port, "to": self.dst, "to_port": self.dst_port,
                "depth": int(self.depth)}

    @staticmethod
    def from_json(d: dict) -> "Edge":
        return Edge(d["from"], d["to"], int(d["depth"]), int(d.get("from_port", 0)), int(d.get("to_port", 0)))


class DataflowGraph:
    """Units (in a topological order) and the edges between them.

    ``DataflowGraph(units)`` is the chain of ``units``; ``fifo_depths`` then gives the depth of
    every edge in chain order (the FIFO feeding unit ``k``, the output FIFO last). Pass ``edges``
    for any other topology.
    """

    def __init__(self, units: list, fifo_depths: list | None = None, edges: list | None = None):
        self.units = list(units)
        if edges is None:
            names = [None] + [u.name for u in self.units] + [None]
            depths = list(fifo_depths) if fifo_depths else [2] * (len(self.units) + 1)
            if len(depths) != len(self.units) + 1:
                raise ValueError(f"a chain of {len(self.units)} units has {len(self.units) + 1} FIFOs, "
                                 f"got {len(depths)} depths")
            edges = [Edge(a, b, int(d)) for a, b, d in zip(names, names[1:], depths)]
        elif fifo_depths:
            raise ValueError("give either fifo_depths (a chain) or edges")
        self.edges = list(edges)

    # ------------------------------------------------------------------ looking things up
    @property
    def fifo_depths(self) -> list[int]:
        """The FIFO depth of every edge, in edge order."""
        return [e.depth for e in self.edges]

    def with_depths(self, depths) -> "DataflowGraph":
        """The same graph with edge ``i``'s FIFO ``depths[i]`` beats deep."""
        depths = list(depths)
        if len(depths) != len(self.edges):
            raise ValueError(f"{len(self.edges)} edges, got {len(depths)} depths")
        return DataflowGraph(self.units, edges=[dataclasses.replace(e, depth=int(d))
                                                for e, d in zip(self.edges, depths)])

    def with_units(self, units) -> "DataflowGraph":
        """The same edges between other versions of the units (same names: refolded, re-shaped)."""
        return DataflowGraph(units, edges=list(self.edges))

    def unit(self, name: str):
        for u in self.units:
            if u.name == name:
                return u
        raise KeyError(name)

    @property
    def input_edge(self) -> Edge:
        return next(e for e in self.edges if e.src is None)

    @property
    def output_edge(self) -> Edge:
        return next(e for e in self.edges if e.dst is None)

    def stream_of(self, edge: Edge) -> StreamSpec:
        """What the consumer of ``edge`` reads (the graph's output: what its producer writes)."""
        if edge.dst is not None:
            return self.unit(edge.dst).input_streams()[edge.dst_port]
        return self.unit(edge.src).output_streams()[edge.src_port]

    def source_stream(self, edge: Edge) -> StreamSpec:
        """What the producer of ``edge`` writes (the graph's input: what its consumer reads)."""
        if edge.src is not None:
            return self.unit(edge.src).output_streams()[edge.src_port]
        return self.unit(edge.dst).input_streams()[edge.dst_port]

    @property
    def in_stream(self) -> StreamSpec:
        return self.stream_of(self.input_edge)

    @property
    def out_stream(self) -> StreamSpec:
        return self.stream_of(self.output_edge)

    def check(self) -> None:
        """Every unit folds legally and every edge joins streams that agree (:mod:`.topology`)."""
        check_graph(self)

    # ------------------------------------------------------------------ build files
    def to_files(self) -> tuple[dict, dict]:
        """The structure as JSON and the arrays (weights, thresholds) for an npz."""
        arrays: dict[str, np.ndarray] = {}
        units = []
        for u in self.units:
            d: dict[str, Any] = {"kind": u.kind}
            for f in dataclasses.fields(u):
                v = getattr(u, f.name)
                if isinstance(v, np.ndarray):
                    key = f"{u.name}.{f.name}"
                    arrays[key] = v
                    d[f.name] = {"array": key}
                elif isinstance(v, DataType):
                    d[f.name] = {"dtype": v.name}
                elif isinstance(v, tuple) and v and all(isinstance(x, DataType) for x in v):
                    d[f.name] = {"dtypes": [x.name for x in v]}
                elif isinstance(v, tuple):
                    d[f.name] = {"tuple": list(v)}
                else:
                    d[f.name] = v
            units.append(d)
        return {"ir_version": IR_VERSION, "units": units, "edges": [e.to_json() for e in self.edges]}, arrays

    @staticmethod
    def from_files(doc: dict, arrays) -> "DataflowGraph":
        units = []
        for d in doc["units"]:
            cls = unit_class(d["kind"])
            kw = {}
            for f in dataclasses.fields(cls):
                if f.name not in d:
                    continue
                v = d[f.name]
                if isinstance(v, dict) and "array" in v:
                    v = np.asarray(arrays[v["array"]])
                elif isinstance(v, dict) and "dtype" in v:
                    v = DataType.parse(v["dtype"])
                elif isinstance(v, dict) and "dtypes" in v:
                    v = tuple(DataType.parse(x) for x in v["dtypes"])
                elif isinstance(v, dict) and "tuple" in v:
                    v = tuple(v["tuple"])
                kw[f.name] = v
            units.append(cls(**kw))
        return DataflowGraph(units, edges=[Edge.from_json(e) for e in doc["edges"]])

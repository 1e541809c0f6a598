"""Folding search: choose PE/SIMD per unit against cycles AND resources.

Two goals:

* :func:`fold_for_board` -- the highest throughput whose estimated resources fit the board under
  a utilisation ceiling (default 80% of every resource). Starting from the cheapest fold of every
  unit, it repeatedly speeds up the current bottleneck unit by its cheapest faster fold, and stops
  when the next step would not fit (or nothing is faster). Only the bottleneck ever gets faster,
  so the pipeline stays balanced: no unit pays for speed the bottleneck cannot use. Cycles and
  resources are those of the folds as tied (:func:`~streamfold.compiler.folding.tie_folds`): a
  depthwise window has no knob of its own, so when it is the bottleneck its vector-vector unit
  takes the faster fold and the window follows.
* :func:`fold_for_fps` -- the least resources that reach a frame rate at a clock: every unit
  takes its cheapest fold within the cycle budget ``clock / fps``.

Resources come from :mod:`streamfold.compiler.resources` (calibrated against Yosys); FIFOs are
sized (:mod:`streamfold.compiler.fifo_sizing`) and counted for the final check. Every visited
state is kept for the throughput-versus-resources plot.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .cost import unit_cycles
from .errors import StreamfoldError
from .fifo_sizing import size_fifos
from .folding import tie_folds
from .ir import DataflowGraph

DEFAULT_CEILING = 0.8
#: widest weight-memory word the search will build (PE * SIMD * weight bits); wider words mean
#: thousands of memory columns and routing no real device closes timing on
MAX_WEIGHT_WORD_BITS = 8192
CLASSES = ("LUT", "FF", "BRAM", "URAM", "DSP")


class FoldSearchError(StreamfoldError):
    """No fold meets the goal: names the resource or layer that breaks it."""


@dataclass
class SearchState:
    cycles: int
    bottleneck: str
    resources: dict
    cost: float
    fold: dict


@dataclass
class SearchResult:
    pipeline: DataflowGraph
    chosen: SearchState
    visited: list = field(default_factory=list)
    goal: str = ""

    def to_json(self) -> dict:
        return {"goal": self.goal,
                "chosen": {"cycles": self.chosen.cycles, "bottleneck": self.chosen.bottleneck,
                           "resources": self.chosen.resources},
                "visited": [{"cycles": s.cycles, "cost": round(s.cost, 6), "resources": s.resources}
                            for s in self.visited]}


def ceiling_of(ceiling, res: str) -> float:
    """The utilisation ceiling of resource ``res``: ``ceiling`` is one fraction for every resource
    or a dict of them (``--verify-fit`` tightens single resources), missing ones at the default."""
    if isinstance(ceiling, dict):
        return float(ceiling.get(res, DEFAULT_CEILING))
    return float(ceiling)


def board_ceiling(ceiling, board) -> float | dict:
    """``ceiling`` with ``board``'s routing limit on LUTs (``routable_lut`` in boards.json, where
    measured): above it nextpnr's router does not converge however deep the logic, so a board fold
    keeps its LUTs under it whatever the ceiling of the other resources."""
    lim = getattr(board, "routable_lut", None)
    if not lim or ceiling_of(ceiling, "LUT") <= lim:
        return ceiling
    out = {k: ceiling_of(ceiling, k) for k in CLASSES}
    out["LUT"] = float(lim)
    return out


def _routing_note(board, ceiling, res: str) -> str:
    """Says so where the LUT ceiling in force is the board's routing limit (:func:`board_ceiling`)."""
    lim = getattr(board, "routable_lut", None)
    if res != "LUT" or not lim or ceiling_of(ceiling, "LUT") != float(lim):
        return ""
    return f", the most {board.name} routes, whatever --ceiling says"


def _describe(ceiling) -> str:
    if not isinstance(ceiling, dict):
        return f"{ceiling:.0%}"
    lims = {k: ceiling_of(ceiling, k) for k in CLASSES}
    same = set(lims.values())
    if len(same) == 1:
        return f"{same.pop():.0%}"
    return ", ".join(f"{k} {v:.1%}" for k, v in lims.items())


def _used(est: dict) -> dict:
    return {"LUT": int(est.get("LUT_TOTAL", est.get("LUT", 0))), "FF": int(est.get("FF", 0)),
            "BRAM": int(est.get("BRAM", 0)), "URAM": int(est.get("URAM", 0)), "DSP": int(est.get("DSP", 0))}


class _Space:
    """Candidate folds of every unit with their cycles and estimated resources (cached)."""

    def __init__(self, pipeline: DataflowGraph, board):
        from .resources import estimate_unit

        self.board = board
        self.family = board.family
        self.cap = board.resources
        self.units = list(pipeline.units)
        self.graph = pipeline
        self._tied = {}
        self.options = []  # per unit: list of (cycles, cost, used, unit) sorted by cycles desc
        for u in self.units:
            opts = []
            for combo in _combos(u.fold_choices()):
                cand = u.with_folding(**combo)
                if hasattr(cand, "pe") and hasattr(cand, "simd") and hasattr(cand, "weight_dtype"):
                    if cand.pe * cand.simd * cand.weight_dtype.bits > MAX_WEIGHT_WORD_BITS:
                        continue
                for var in products_variants(cand, self.family):
                    used = _used(estimate_unit(var, self.family) or {})
                    opts.append((unit_cycles(var), self.cost(used), used, var))
            if not opts:
                opts.append((unit_cycles(u), 0.0, _used({}), u))
            # per cycle count keep the cheapest
            best: dict = {}
            for o in opts:
                if o[0] not in best or o[1] < best[o[0]][1]:
                    best[o[0]] = o
            # Pareto: drop options that are both slower and dearer than another
            pareto, cheapest = [], float("inf")
            for o in sorted(best.values(), key=lambda o: o[0]):
                if o[1] < cheapest:
                    pareto.append(o)
                    cheapest = o[1]
            self.options.append(sorted(pareto, key=lambda o: -o[0]))

    def cost(self, used: dict) -> float:
        return sum(used[k] / self.cap[k] for k in CLASSES if self.cap.get(k))

    def tied(self, i: int, unit) -> tuple[int, dict]:
        """Cycles and resources of unit ``i`` as :func:`tie_folds` left it (a depthwise window takes
        its vector-vector unit's PE: it has no knob of its own, but its speed and size follow)."""
        key = (i, tuple(sorted(unit.folding().items())))
        if key not in self._tied:
            from .resources import estimate_unit

            self._tied[key] = (unit_cycles(unit), _used(estimate_unit(unit, self.family) or {}))
        return self._tied[key]

    def unit_figures(self, choice: list[int]) -> tuple[DataflowGraph, list[int], dict]:
        """The tied pipeline of ``choice``, each unit's cycles per frame and the summed resources."""
        units = [self.options[i][c][3] for i, c in enumerate(choice)]
        pipe = tie_folds(self.graph.with_units(units))
        used = {k: 0 for k in CLASSES}
        cyc = []
        for i, (c, u) in enumerate(zip(choice, pipe.units)):
            opt = self.options[i][c]
            n, res = (opt[0], opt[2]) if u.folding() == opt[3].folding() else self.tied(i, u)
            cyc.append(n)
            for k in CLASSES:
                used[k] += res[k]
        return pipe, cyc, used

    def state(self, choice: list[int], with_fifos: bool = False) -> tuple[DataflowGraph, SearchState]:
        pipe, cyc, used = self.unit_figures(choice)
        if with_fifos:
            from .resources import estimate_pipeline

            pipe = size_fifos(pipe)
            used = _used(estimate_pipeline(pipe, self.family)["total"])
        worst = max(range(len(cyc)), key=lambda i: cyc[i])
        st = SearchState(cyc[worst], pipe.units[worst].name, used, self.cost(used),
                         {u.name: u.folding() for u in pipe.units if u.folding()})
        return pipe, st

    def fits(self, used: dict, ceiling: float) -> tuple[bool, str]:
        for k in CLASSES:
            cap = self.cap.get(k, 0)
            if used[k] > ceiling_of(ceiling, k) * cap:
                return False, k
        return True, ""


def products_variants(unit, family: str) -> list:
    """The unit, and, when its products would take DSP blocks on ``family``, the same fold with
    them in soft logic (``res_type`` "lut"): the search keeps whichever costs the board less, in
    fractions of its LUTs and DSPs, so the scarcer resource decides (FINN's resType, chosen)."""
    if not hasattr(unit, "res_type"):
        return [unit]
    from .units.dot_product import products_in_dsp

    auto = unit.replace(res_type="auto") if unit.res_type != "auto" else unit
    if not products_in_dsp(auto, family):
        return [auto]
    return [auto, auto.replace(res_type="lut")]


def _combos(allowed: dict):
    out = [{}]
    for k, vals in allowed.items():
        out = [dict(c, **{k: v}) for c in out for v in vals]
    return out


def _heaviest(space: _Space, choice: list[int], res: str) -> str:
    i = max(range(len(choice)), key=lambda i: space.options[i][choice[i]][2][res])
    return space.units[i].name


def fold_for_board(pipeline: DataflowGraph, board, ceiling: float | dict = DEFAULT_CEILING,
                   log=None) -> SearchResult:
    """Highest throughput that fits ``board`` with every resource under ``ceiling`` (a fraction,
    or a dict of fractions per resource; LUTs also under the board's routing limit,
    :func:`board_ceiling`)."""
    ceiling = board_ceiling(ceiling, board)
    space = _Space(pipeline, board)
    choice = [0] * len(space.units)  # slowest = cheapest option of each unit
    _, st = space.state(choice)
    ok, res = space.fits(st.resources, ceiling)
    if not ok:
        raise FoldSearchError(
            f"nothing fits {board.name}: even the most folded design needs {st.resources[res]:,} {res} "
            f"(ceiling {ceiling_of(ceiling, res):.0%} of {space.cap[res]:,}{_routing_note(board, ceiling, res)}); layer "
            f"{_heaviest(space, choice, res)} uses the most; pick a larger board or raise --ceiling")
    visited = [st]
    while True:
        _, cyc, _ = space.unit_figures(choice)
        top = max(cyc)
        # every unit at the bottleneck's pace takes its next faster fold; a unit without a knob of
        # its own (a depthwise window) speeds up with the unit its fold follows
        trial = list(choice)
        for i in range(len(cyc)):
            while space.options[i][trial[i]][0] >= top and trial[i] + 1 < len(space.options[i]):
                trial[i] += 1
        _, tcyc, _ = space.unit_figures(trial)
        if trial == choice or max(tcyc) >= top:
            break  # the bottleneck is as fast as it gets
        _, tst = space.state(trial)
        ok, _ = space.fits(tst.resources, ceiling)
        if not ok:
            break
        choice = trial
        visited.append(tst)
        if log and len(visited) % 20 == 0:
            log(f"fold search: {len(visited)} folds visited, {tst.cycles} cycles/frame")
    # FIFOs join for the final check; step back while they push it over the ceiling
    while True:
        pipe, st = space.state(choice, with_fifos=True)
        ok, res = space.fits(st.resources, ceiling)
        if ok or len(visited) < 2:
            break
        visited.pop()
        choice = _choice_of(space, visited[-1])
    return SearchResult(pipe, st, visited, f"max throughput on {board.name} under {_describe(ceiling)}")


def _choice_of(space: _Space, st: SearchState) -> list[int]:
    out = []
    for i, u in enumerate(space.units):
        want = st.fold.get(u.name, {})
        idx = next((j for j, o in enumerate(space.options[i]) if o[3].folding() == want), 0)
        out.append(idx)
    return out


def fold_for_fps(pipeline: DataflowGraph, fps: float, clock_mhz: float, board=None,
                 ceiling: float | dict = DEFAULT_CEILING) -> SearchResult:
    """Least resources reaching ``fps`` frames/s at ``clock_mhz``."""
    from streamfold.boards import load_board

    b = board or load_board("pynq-z1")  # resources need a family; pynq-z1 weighs them when no board
    ceiling = board_ceiling(ceiling, b)
    space = _Space(pipeline, b)
    budget = int(clock_mhz * 1e6 // fps)
    if budget < 1:
        raise FoldSearchError(f"{fps:,.0f} frames/s at {clock_mhz:g} MHz leaves less than one cycle per frame")
    choice, visited = [], []
    for i, opts in enumerate(space.options):
        ok = [j for j, o in enumerate(opts) if o[0] <= budget]
        if not ok and not space.units[i].fold_choices():
            ok = [0]  # no knob of its own: its fold follows another unit's (checked below)
        if not ok:
            fastest = min(o[0] for o in opts)
            raise FoldSearchError(
                f"layer {space.units[i].name} needs at least {fastest:,} cycles per frame fully unfolded; "
                f"{fps:,.0f} frames/s at {clock_mhz:g} MHz allows {budget:,}; lower the target or raise the clock")
        choice.append(min(ok, key=lambda j: (opts[j][1], opts[j][0])))
    pipe, st = space.state(choice, with_fifos=True)
    visited.append(st)
    # every unit meets the budget, but a unit whose output a width converter splits can still be
    # held back (fifo_sizing.expected_pace): speed up the unit that consumes the split stream
    from .fifo_sizing import analyse_fifos, expected_pace

    for _ in range(2 * len(choice)):
        a = analyse_fifos(pipe)
        if a.ii <= budget or a.slow_unit is None:
            break
        # the consumer of the slow unit's (split) output
        dst = next((e.dst for e in pipe.edges if e.src == a.slow_unit), None)
        k = next((i for i, u in enumerate(space.units) if u.name == dst), None)
        if k is None or choice[k] + 1 >= len(space.options[k]):
            break
        choice[k] += 1  # options run from slowest to fastest
        pipe, st = space.state(choice, with_fifos=True)
        visited.append(st)
    pace, what = expected_pace(pipe)
    if pace > budget:
        raise FoldSearchError(
            f"{fps:,.0f} frames/s at {clock_mhz:g} MHz allows {budget:,} cycles per frame; the fastest fold "
            f"found runs at {pace:,} ({what} sets the pace); lower the target or raise the clock")
    if board is not None:
        fits, res = space.fits(st.resources, ceiling)
        if not fits:
            raise FoldSearchError(
                f"{fps:,.0f} frames/s needs {st.resources[res]:,} {res} on {b.name}, over the {ceiling_of(ceiling, res):.0%} "
                f"ceiling of {space.cap[res]:,}{_routing_note(b, ceiling, res)}; layer {_heaviest(space, choice, res)} uses the most")
    return SearchResult(pipe, st, visited, f"{fps:,.0f} frames/s at {clock_mhz:g} MHz")

"""``streamfold compile --board B --verify-fit``: a board fold that synthesis confirms.

The board fold (:func:`streamfold.compiler.search.fold_for_board`) fits the *estimates* under the
utilisation ceiling. Here the chosen design is then synthesised whole with Yosys (the script
``streamfold synth`` uses) and every resource is checked against the same ceiling. Where Yosys
counts more of a resource than the ceiling allows, the estimate was short by the factor
``measured / estimated``; the search runs again with that resource's ceiling divided by the factor
(the estimates stay as they are, so the search again ranks folds by them, but must now leave the
room synthesis showed is missing). Rounds repeat until the design fits, or stop with an error
that names the resource, the figures of every round and what to do.

Every round is recorded in ``report.json`` under ``fit_check``: the ceilings the search used, the
estimated and synthesised resources, the utilisation Yosys gives and the resources over.
"""
from __future__ import annotations

import time

from .errors import StreamfoldError
from .search import CLASSES, DEFAULT_CEILING, _used, board_ceiling, ceiling_of

#: rounds of fold -> synthesise -> tighten before giving up
MAX_ROUNDS = 4
#: a tightened ceiling leaves this much more room than the measured factor alone (Yosys counts
#: move a little when the fold changes)
MARGIN = 0.98


class FitError(StreamfoldError):
    """The board fold could not be made to fit in synthesis."""


def tightened(ceiling: dict, over: dict, estimated: dict, measured: dict) -> dict:
    """The ceilings of the next round: each resource in ``over`` divided by how far the estimate
    fell short of synthesis (``measured / estimated``), with :data:`MARGIN`."""
    nxt = dict(ceiling)
    for k in over:
        factor = measured[k] / max(1, estimated[k])
        nxt[k] = ceiling[k] / max(factor, 1.0) * MARGIN
    return nxt


def compile_verified(model_path, out_dir, board, *, ceiling: float | None = None, log=None, jobs: int = 2,
                     synth_timeout: float = 1800, **compile_kw):
    """Fold for ``board``, synthesise, tighten and fold again until Yosys confirms every resource is
    under ``ceiling`` (default 0.8); ``synth_timeout``: seconds per Yosys run. Returns
    ``(cm, report)`` of the design that fits; its report has ``fit_check``."""
    from streamfold.boards import load_board

    from pathlib import Path

    from .build import compile_model
    from .ir import dumps
    from .synth import synth_build

    b = load_board(board) if isinstance(board, str) else board
    base = DEFAULT_CEILING if ceiling is None else float(ceiling)
    # the ceiling of each resource, LUTs also under the board's routing limit: synthesis must
    # confirm the same limits the fold was chosen under
    limit = {k: ceiling_of(board_ceiling(base, b), k) for k in CLASSES}
    lims = dict(limit)
    rounds = []
    for r in range(1, MAX_ROUNDS + 1):
        cm, report = compile_model(model_path, out_dir, board=b, ceiling=dict(lims), log=log, **compile_kw)
        if log:
            log(f"fit check, round {r}: synthesising the chosen design with Yosys ({b.family})")
        t0 = time.monotonic()
        syn = synth_build(out_dir, board=b.name, jobs=jobs, log=log, timeout=synth_timeout)
        est = _used(report["resources"]["total"])
        got = _used(syn["total"]["resources"])
        util = {k: round(got[k] / b.resources[k], 4) for k in CLASSES if b.resources.get(k)}
        over = {k: u for k, u in util.items() if u > limit[k]}
        rounds.append({"round": r, "ceiling": {k: round(v, 4) for k, v in lims.items()},
                       "cycles_per_frame": report["totals"]["expected_cycles_per_frame"],
                       "estimate": est, "yosys": got, "utilisation": util, "over": sorted(over),
                       "synth_seconds": round(time.monotonic() - t0, 1)})
        if log:
            log(f"fit check, round {r}: " + ", ".join(
                f"{k} {got[k]:,} (estimate {est[k]:,}, {util[k]:.1%})" for k in util if got[k] or est[k])
                + ("" if not over else "; over the ceiling: " + ", ".join(f"{k} (limit {limit[k]:.0%})"
                                                                    for k in sorted(over))))
        if not over:
            report["fit_check"] = {"ceiling": base, "limits": limit, "fits": True, "rounds": rounds,
                                   "tool": syn.get("tool", "yosys")}
            (Path(out_dir) / "report.json").write_text(dumps(report))
            return cm, report
        lims = tightened(lims, over, est, got)
    last = rounds[-1]
    worst = max(last["over"], key=lambda k: last["utilisation"][k])
    raise FitError(
        f"{b.name}: after {MAX_ROUNDS} rounds of folding and synthesis the design still needs "
        f"{last['yosys'][worst]:,} {worst} in Yosys ({last['utilisation'][worst]:.1%}, over the {limit[worst]:.0%} "
        f"ceiling; estimate {last['estimate'][worst]:,}); fold with a lower --ceiling, pick a larger "
        f"board, or pass --fold with a more folded design")

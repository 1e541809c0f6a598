"""PNG plots of a compile report: per-layer cycles, per-layer resources, the fold search's curve,
and the dataflow graph (units, FIFOs, the bottleneck)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

RES_COLORS = {"LUT": "#4c72b0", "FF": "#55a868", "BRAM": "#c44e52", "DSP": "#8172b2", "URAM": "#ccb974"}


def _save(fig, path: Path, tight: bool = True) -> str:
    if tight:
        fig.tight_layout()
    # no timestamps in the file: the same report gives the same bytes
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)
    return path.name


def plot_cycles(report: dict, path: Path) -> str:
    layers = report["layers"]
    names = [l["name"] for l in layers]
    cyc = [l["expected_cycles"] for l in layers]
    t = report["totals"]
    per = "strip" if "expected_cycles_per_strip" in t else "frame"  # a tiled build's layers count strips
    bott = t.get("expected_cycles_per_strip", t["expected_cycles_per_frame"])
    what = t["bottleneck"]
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(names) + 2), 4))
    colors = ["#c44e52" if n == what.split(" + ")[0] else "#4c72b0" for n in names]
    ax.bar(range(len(names)), cyc, color=colors)
    ax.axhline(bott, color="#c44e52", ls="--", lw=1, label=f"pipeline pace {bott:,} cycles/{per} ({what})")
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel(f"cycles per {per}")
    ax.set_title(f"cycles per layer: {t['expected_fps']:,.0f} frames/s at {t['clock_mhz']:g} MHz")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_resources(report: dict, path: Path) -> str | None:
    res = report.get("resources")
    if not res:
        return None
    layers = [l["name"] for l in report["layers"]]
    kinds = ["LUT", "FF", "BRAM", "DSP"]
    fig, axes = plt.subplots(1, len(kinds), figsize=(max(8, 0.5 * len(layers) + 6), 4), sharey=True)
    for ax, k in zip(axes, kinds):
        key = "LUT_TOTAL" if k == "LUT" else k
        vals = [(res["units"].get(n) or {}).get(key, 0) for n in layers]
        ax.barh(range(len(layers)), vals, color=RES_COLORS[k])
        ax.set_title(f"{k} (total {res['total'].get(key, 0):,})", fontsize=9)
        ax.set_yticks(range(len(layers)), layers, fontsize=7)
        ax.invert_yaxis()
        ax.tick_params(axis="x", labelsize=7)
    fig.suptitle(f"estimated resources per layer ({res['family']}"
                 + (f", {res['board']}" if res.get("board") else "") + ")", fontsize=10)
    return _save(fig, path)


def plot_search(report: dict, path: Path) -> str | None:
    s = report.get("search")
    if not s or not s.get("visited"):
        return None
    clock = report["totals"]["clock_mhz"]
    fps = [clock * 1e6 / v["cycles"] for v in s["visited"]]
    luts = [v["resources"]["LUT"] for v in s["visited"]]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(luts, fps, "o-", ms=3, color="#4c72b0", label="folds visited (units only)")
    c = s["chosen"]
    ax.plot([c["resources"]["LUT"]], [clock * 1e6 / c["cycles"]], "*", ms=14, color="#c44e52",
            label=f"chosen, with FIFOs and converters: {clock * 1e6 / c['cycles']:,.0f} frames/s")
    ax.set_xlabel("estimated LUTs")
    ax.set_ylabel(f"frames/s at {clock:g} MHz")
    ax.set_yscale("log")
    ax.set_title(s["goal"], fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def write_plots(report: dict, folder) -> list[str]:
    folder = Path(folder)
    out = [plot_cycles(report, folder / "cycles.png"),
           plot_resources(report, folder / "resources.png"),
           plot_search(report, folder / "search.png"),
           plot_graph(report, folder / "graph.png")]
    return [p for p in out if p]


# ----------------------------------------------------------------------------- the graph picture
# A layered (Sugiyama-style) drawing in pure matplotlib, top to bottom: ranks by longest path from
# the input, long edges through dummy points (so a skip edge runs beside its branch), barycentre
# ordering within ranks, positions by least squares over the links (an exact isotonic regression
# per rank, so boxes never overlap), then every branch stood straight where there is room. Lengths
# are inches; everything is ordered lists and dicts (the same report draws the same bytes).
KIND_COLORS = {  # fill by kind family
    "mvau": "#dbe6f4", "vvau": "#dbe6f4",
    "swg": "#dcefdc", "swg_whole": "#dcefdc",
    "maxpool": "#f6edd0", "gsumpool": "#f6edd0",
    "fork": "#e8e0f2", "add": "#e8e0f2", "concat": "#e8e0f2",
}
KIND_FAMILIES = [("dot product (mvau, vvau)", ("mvau", "vvau")),
                 ("sliding window (swg, swg_whole)", ("swg", "swg_whole")),
                 ("pooling (maxpool, gsumpool)", ("maxpool", "gsumpool")),
                 ("fork / join (fork, add, concat)", ("fork", "add", "concat"))]
OTHER_KIND_COLOR = "#eeeeee"
BOTTLENECK_COLOR = "#c44e52"
DEEP_EDGE_COLOR = "#dd8452"
EDGE_COLOR = "#555555"
DEEP_FIFO_DEPTH = 32  # a FIFO deeper than this (beats) ...
DEEP_FIFO_BITS = 1024  # ... or larger than this (bits) is labelled with its storage
JOIN_KINDS = ("add", "concat")  # a deep FIFO into one of these is a reconvergent skip edge: drawn bold
FOLD_KNOBS = ("pe", "simd")
MAX_GRAPH_INCHES = (24.0, 36.0)  # the figure's largest width and height; beyond them it shrinks
RANK_H, BOX_H, COL_GAP, DUMMY_W, TERM_W, TERM_H = 0.8, 0.5, 0.3, 0.2, 1.1, 0.24


def _graph_edges(report: dict) -> list[tuple[str, str, dict]]:
    """(producer, consumer, FIFO row) per edge; a report without FIFO rows is a chain."""
    fifos = report.get("fifos") or []
    if fifos:
        return [(f.get("from") or "input", f.get("feeds") or "output", f) for f in fifos]
    names = ["input"] + [l["name"] for l in report["layers"]] + ["output"]
    return [(a, b, {}) for a, b in zip(names, names[1:])]


def _is_deep(f: dict) -> bool:
    """Whether a FIFO row is deep or large enough to show its storage."""
    return f.get("depth", 0) > DEEP_FIFO_DEPTH or f.get("bits", 0) > DEEP_FIFO_BITS


def _edge_label(f: dict) -> str:
    if not f:
        return ""
    s = f"d={f.get('depth', '?')}"
    if _is_deep(f):
        s += f" · {f.get('bits', 0):,} b" + (f" · {f['bram']:g} BRAM" if f.get("bram") else "")
    return s


def _text_w(s: str, pt: float) -> float:
    """A generous estimate of a text's width in inches."""
    return len(s) * pt * 0.62 / 72


def _isotonic(desired: list[float], weights: list[float], widths: list[float], gap: float) -> list[float]:
    """Positions nearest (weighted least squares) to ``desired`` keeping their order with ``gap``
    between boxes of ``widths``: pool adjacent violators on ``x_i - offset_i``."""
    off = [0.0]
    for a, b in zip(widths, widths[1:]):
        off.append(off[-1] + (a + b) / 2 + gap)
    blocks: list[list[float]] = []  # [mean, weight, count]
    for d, w, o in zip(desired, weights, off):
        blocks.append([d - o, w, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, w2, n2 = blocks.pop()
            m1, w1, n1 = blocks.pop()
            blocks.append([(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2, n1 + n2])
    ys = [m for m, _, n in blocks for _ in range(n)]
    return [y + o for y, o in zip(ys, off)]


def _layout(report: dict):
    """Ranks (node -> rank, dummies ``~edge~rank`` included), each rank's node order (barycentre
    sweeps, the fewest crossings kept), widths (dummies only; boxes are set by the caller), each
    edge's chain of nodes, the dummy its label sits on, and the links up and down."""
    units = [l["name"] for l in report["layers"]]
    edges = _graph_edges(report)
    preds: dict[str, list[str]] = {n: [] for n in ["input"] + units + ["output"]}
    for a, b, _ in edges:
        preds.setdefault(b, []).append(a)
        preds.setdefault(a, [])
    rank = {"input": 0}
    for n in units:  # the layers are in topological order
        rank[n] = 1 + max((rank.get(p, 0) for p in preds[n]), default=0)
    rank["output"] = 1 + max((rank.get(p, 0) for p in preds["output"]), default=max(rank.values()))
    for n in preds:  # names only the FIFO rows know (should not happen): after their producers
        if n not in rank:
            rank[n] = 1 + max((rank.get(p, 0) for p in preds[n]), default=0)
    # long edges through one dummy per rank crossed
    chains, width, label_at = [], {}, {}
    real = list(rank)
    for n in real:
        width[n] = TERM_W if n in ("input", "output") else 0.0  # boxes get theirs later
    for k, (a, b, f) in enumerate(edges):
        ra, rb = rank[a], rank[b]
        mids = [f"~{k}~{r}" for r in range(ra + 1, rb)]
        for r, d in zip(range(ra + 1, rb), mids):
            rank[d] = r
            width[d] = DUMMY_W
        if mids:  # the label sits on the middle dummy; all of them make room for it (straight)
            label_at[k] = mids[len(mids) // 2]
            for d in mids:
                width[d] = max(DUMMY_W, _text_w(_edge_label(f), 6.5) + 0.1)
        chains.append([a] + mids + [b])
    up: dict[str, list[str]] = {n: [] for n in rank}
    down: dict[str, list[str]] = {n: [] for n in rank}
    for ch in chains:
        for p, q in zip(ch, ch[1:]):
            down[p].append(q)
            up[q].append(p)
    n_ranks = max(rank.values()) + 1
    order: list[list[str]] = [[] for _ in range(n_ranks)]
    for n in real:  # real nodes in topological order, then the dummies in edge order
        order[rank[n]].append(n)
    for ch in chains:
        for d in ch[1:-1]:
            order[rank[d]].append(d)

    def crossings(o) -> int:
        total = 0
        for r in range(n_ranks - 1):
            pos = {n: i for i, n in enumerate(o[r + 1])}
            segs = [(i, pos[q]) for i, p in enumerate(o[r]) for q in down[p]]
            total += sum(1 for s in range(len(segs)) for t in range(s + 1, len(segs))
                         if (segs[s][0] - segs[t][0]) * (segs[s][1] - segs[t][1]) < 0)
        return total

    best, best_c = [list(o) for o in order], crossings(order)
    for sweep in range(8):  # barycentre sweeps, down then up; keep the fewest crossings
        rs = range(1, n_ranks) if sweep % 2 == 0 else range(n_ranks - 2, -1, -1)
        for r in rs:
            nb = up if sweep % 2 == 0 else down
            pos = {n: i for i, n in enumerate(order[r - 1 if sweep % 2 == 0 else r + 1])}
            cur = {n: i for i, n in enumerate(order[r])}

            def key(n):
                ps = [pos[p] for p in nb[n] if p in pos]
                return (sum(ps) / len(ps) if ps else cur[n], cur[n])
            order[r] = sorted(order[r], key=key)
        c = crossings(order)
        if c < best_c:
            best, best_c = [list(o) for o in order], c
    order = best
    return rank, order, width, chains, label_at, up, down


def _place(order, width, up, down, gap: float) -> dict[str, float]:
    """x of every node: the least ``sum w (x_a - x_b)^2`` over the drawn links (links between
    dummies weigh most, so long edges run straight) with the boxes of a rank apart; solved rank
    by rank (a weighted isotonic regression each, exact) in alternating sweeps until still."""
    x = {}
    for o in order:
        pos = _isotonic([0.0] * len(o), [1.0] * len(o), [width[n] for n in o], gap)
        for n, v in zip(o, pos):
            x[n] = v - (pos[0] + pos[-1]) / 2

    def weight(a, b):
        d = a.startswith("~") + b.startswith("~")
        return (1.0, 2.0, 8.0)[d]

    def settle(r) -> float:
        o = order[r]
        want, ws = [], []
        for n in o:
            ps = [(x[p], weight(n, p)) for p in up[n] + down[n]]
            tot = sum(w for _, w in ps)
            want.append(sum(v * w for v, w in ps) / tot if ps else x[n])
            ws.append(tot if ps else 1e-6)
        moved = 0.0
        for n, v in zip(o, _isotonic(want, ws, [width[n] for n in o], gap)):
            moved = max(moved, abs(v - x[n]))
            x[n] = v
        return moved

    n_ranks = len(order)
    for _ in range(400):
        moved = max([settle(r) for r in range(n_ranks)] + [settle(r) for r in range(n_ranks - 1, -1, -1)])
        if moved < 1e-4:
            break
    _straighten(order, width, up, down, gap, x)
    left = min(x[n] - width[n] / 2 for n in x)
    return {n: v - left for n, v in x.items()}


def _straighten(order, width, up, down, gap: float, x: dict) -> None:
    """Stand every run of one-in one-out links (a branch, a long edge) straight, where its rank
    neighbours leave room: the least-squares optimum leans a branch between its fork and join."""
    where = {n: (r, i) for r, o in enumerate(order) for i, n in enumerate(o)}
    runs, seen = [], set()
    for o in order:
        for n in o:
            if n in seen:
                continue
            run = [n]
            seen.add(n)
            while len(down[run[-1]]) == 1 and len(up[down[run[-1]][0]]) == 1:
                run.append(down[run[-1]][0])
                seen.add(run[-1])
            runs.append(run)
    runs.sort(key=lambda run: (-len(run), where[run[0]]))
    for run in runs:
        if len(run) < 2:
            continue
        lo, hi = float("-inf"), float("inf")
        for n in run:
            r, i = where[n]
            o = order[r]
            if i > 0:
                lo = max(lo, x[o[i - 1]] + (width[o[i - 1]] + width[n]) / 2 + gap)
            if i + 1 < len(o):
                hi = min(hi, x[o[i + 1]] - (width[o[i + 1]] + width[n]) / 2 - gap)
        if lo > hi + 1e-9:
            continue
        target = min(max(sum(x[n] for n in run) / len(run), lo), hi)
        for n in run:
            x[n] = target


def _unit_text(row: dict) -> tuple:
    """(name, "kind · pe P simd S", cycles) of a layer row."""
    fold = " ".join(f"{k} {row[k]}" for k in FOLD_KNOBS if k in row)
    return row["name"], row.get("kind", "?") + (f" · {fold}" if fold else ""), row.get("expected_cycles")


def plot_graph(report: dict, path) -> str:
    """Draw the accelerator's dataflow graph top to bottom into the PNG ``path``; return its name.

    One box per unit (name, kind, fold, cycles per frame or strip), filled by kind, the
    bottleneck outlined in red; input and output terminals; an arrow per FIFO labelled with its
    depth, a deep or large FIFO (``DEEP_FIFO_DEPTH`` / ``DEEP_FIFO_BITS``) also with its bits (its
    BRAMs where the row has ``"bram"``), and drawn bold when it feeds a join (a skip edge)."""
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Patch
    from matplotlib.lines import Line2D
    from matplotlib.path import Path as MPath

    path = Path(path)
    t = report.get("totals", {})
    per = "strip" if "expected_cycles_per_strip" in t else "frame"
    rows = {l["name"]: l for l in report["layers"]}
    bottleneck = str(t.get("bottleneck", ""))
    slow = bottleneck.split(" + ")[0]
    texts = {n: _unit_text(r) for n, r in rows.items()}
    cyc_line = {n: (f"{c:,} cycle{'' if c == 1 else 's'}/{per}" if isinstance(c, (int, float)) else "")
                for n, (_, _, c) in texts.items()}
    box_w = max([1.5] + [max(_text_w(a, 7.5) * 1.08, _text_w(b, 6.5), _text_w(cyc_line[n], 6.5)) + 0.16
                         for n, (a, b, _) in texts.items()])
    box_w = min(box_w, 3.2)

    rank, order, width, chains, label_at, up, down = _layout(report)
    for n in rows:
        width[n] = box_w
    x = _place(order, width, up, down, COL_GAP)
    n_ranks = len(order)
    edges = _graph_edges(report)

    kinds = [r.get("kind") for r in rows.values()]
    families = [(lab, ks) for lab, ks in KIND_FAMILIES if any(k in ks for k in kinds)]
    others = [k for k in dict.fromkeys(kinds) if k not in KIND_COLORS]
    if others:
        families.append((f"other ({', '.join(str(k) for k in others)})", ()))
    any_skip = any(f and _is_deep(f) and (rows.get(b) or {}).get("kind") in JOIN_KINDS
                   for _, b, f in edges)
    n_legend = len(families) + 1 + bool(bottleneck) + any_skip

    margin, head = 0.3, 0.55 + 0.15 * ((n_legend + 1) // 2)
    graph_w = max(x[n] + width[n] / 2 for n in x)
    w = max(6.5, graph_w + 2 * margin)
    h = head + (n_ranks - 1) * RANK_H + BOX_H + margin
    s = min(1.0, MAX_GRAPH_INCHES[0] / w, MAX_GRAPH_INCHES[1] / h)  # shrink a huge graph
    fig = plt.figure(figsize=(w * s, h * s))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)  # y grows downwards, in (unscaled) inches
    ax.axis("off")
    dx = (w - graph_w) / 2

    def X(n):
        return x[n] + dx

    def Y(n):  # the centre of a node's rank
        return head + rank[n] * RANK_H + BOX_H / 2

    def half_h(n):
        if n in rows:
            return BOX_H / 2
        if n in ("input", "output"):
            return TERM_H / 2
        return 0.0

    # ports: a node's in- (out-) edges spread over its top (bottom), ordered by the other end's x
    out_of: dict[str, list[int]] = {}
    into: dict[str, list[int]] = {}
    for k, ch in enumerate(chains):
        out_of.setdefault(ch[0], []).append(k)
        into.setdefault(ch[-1], []).append(k)
    port: dict[tuple[int, int], float] = {}
    for table, end, nxt in ((out_of, 0, 1), (into, -1, -2)):
        for n, ks in table.items():
            ks = sorted(ks, key=lambda k: (X(chains[k][nxt]), k))
            span = min(0.6 * width[n], 0.3 * (len(ks) - 1))
            for j, k in enumerate(ks):
                port[(k, end)] = X(n) + (span * (j / (len(ks) - 1) - 0.5) if len(ks) > 1 else 0.0)

    fs = s  # font sizes follow the figure's shrink
    for k, (ch, (a, b, f)) in enumerate(zip(chains, edges)):
        pts = [(port[(k, 0)], Y(a) + half_h(a))]
        for d in ch[1:-1]:  # through a dummy: vertical beside the rank's boxes
            pts += [(X(d), Y(d) - BOX_H / 2), (X(d), Y(d) + BOX_H / 2)]
        pts.append((port[(k, -1)], Y(b) - half_h(b)))
        deep = bool(f) and _is_deep(f)
        skip = deep and (rows.get(b) or {}).get("kind") in JOIN_KINDS
        color = DEEP_EDGE_COLOR if skip else EDGE_COLOR
        ax.add_patch(FancyArrowPatch(path=MPath(pts), arrowstyle="-|>", mutation_scale=9 * fs,
                                     lw=(1.8 if skip else 0.9) * fs, color=color, zorder=1,
                                     shrinkA=0, shrinkB=0, joinstyle="round", capstyle="round"))
        label = _edge_label(f)
        if not label:
            continue
        style = dict(fontsize=6.5 * fs, zorder=3, va="center", color="#8a3b00" if deep else "#333333",
                     fontweight="bold" if deep else "normal")
        if k in label_at:  # on the long edge's straight run, in the room its dummies keep
            ax.text(X(label_at[k]), Y(label_at[k]), label, ha="center", **style,
                    bbox=dict(boxstyle="round,pad=0.12", fc="white", ec=color, lw=0.6 * fs))
        else:  # beside the middle of the segment crossing the gap above the consumer
            (x0, y0), (x1, y1) = pts[-2], pts[-1]
            left = x1 < x0 - 1e-6
            ax.text((x0 + x1) / 2 + (-0.06 if left else 0.06), (y0 + y1) / 2, label,
                    ha="right" if left else "left", **style)

    for n in rows:
        name, kind_fold, _ = texts[n]
        is_slow = n == slow
        x0, y0 = X(n) - box_w / 2, Y(n) - BOX_H / 2
        ax.add_patch(FancyBboxPatch((x0, y0), box_w, BOX_H, boxstyle="round,pad=0,rounding_size=0.06",
                                    fc=KIND_COLORS.get(rows[n].get("kind"), OTHER_KIND_COLOR),
                                    ec=BOTTLENECK_COLOR if is_slow else "#444444",
                                    lw=(2.6 if is_slow else 0.8) * fs, zorder=2))
        ax.text(X(n), Y(n) - 0.13, name, ha="center", va="center", fontsize=7.5 * fs,
                fontweight="bold", zorder=3)
        ax.text(X(n), Y(n) + 0.015, kind_fold, ha="center", va="center", fontsize=6.5 * fs, zorder=3)
        ax.text(X(n), Y(n) + 0.15, cyc_line[n], ha="center", va="center", fontsize=6.5 * fs, zorder=3,
                color=BOTTLENECK_COLOR if is_slow else "#222222",
                fontweight="bold" if is_slow else "normal")
    for n in ("input", "output"):
        if n not in rank:
            continue
        io = report.get(n) or {}
        shape = "×".join(str(v) for v in (io.get("shape") or [])[1:])
        dtype = (io.get("stream") or {}).get("dtype", "")
        label = n + (f"  {shape}" if shape else "") + (f" {dtype}" if dtype else "")
        tw = max(TERM_W, _text_w(label, 6.5) + 0.1)
        ax.add_patch(FancyBboxPatch((X(n) - tw / 2, Y(n) - TERM_H / 2), tw, TERM_H,
                                    boxstyle=f"round,pad=0,rounding_size={TERM_H / 2}",
                                    fc="#f2f2f2", ec="#777777", lw=0.8 * fs, zorder=2))
        ax.text(X(n), Y(n), label, ha="center", va="center", fontsize=6.5 * fs, zorder=3,
                color="#333333")

    title = f"dataflow graph: {len(rows)} units" + (f", {len(edges)} FIFOs" if report.get("fifos") else "")
    if "expected_cycles_per_frame" in t:
        title += f"; {t['expected_cycles_per_frame']:,} cycles/frame"
        if "strips_per_frame" in t:
            title += f" in {t['strips_per_frame']} strips"
        if "expected_fps" in t and "clock_mhz" in t:
            title += f" ({t['expected_fps']:,.0f} frames/s at {t['clock_mhz']:g} MHz)"
    ax.text(w / 2, 0.28, title, ha="center", va="center", fontsize=9.5 * fs)
    handles = [Patch(fc=KIND_COLORS.get(ks[0], OTHER_KIND_COLOR) if ks else OTHER_KIND_COLOR,
                     ec="#444444", label=lab) for lab, ks in families]
    if bottleneck:
        handles.append(Patch(fc="white", ec=BOTTLENECK_COLOR, lw=2.2 * fs, label=f"bottleneck: {bottleneck}"))
    handles.append(Line2D([], [], color=EDGE_COLOR, lw=0.9 * fs,
                          label=f"FIFO: d = depth (beats); storage shown beyond {DEEP_FIFO_DEPTH} beats "
                                f"or {DEEP_FIFO_BITS:,} bits"))
    if any_skip:
        handles.append(Line2D([], [], color=DEEP_EDGE_COLOR, lw=1.8 * fs,
                              label="skip edge: a deep FIFO into a join (add, concat)"))
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 1 - 0.45 / h), ncol=2,
              fontsize=6.5 * fs, frameon=False, handlelength=1.8, columnspacing=1.5)
    return _save(fig, path, tight=False)

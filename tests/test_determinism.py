"""A build folder is deterministic: the same model and options give the same bytes.

Every file ``streamfold compile`` writes (Verilog, memory files, fold.json, report.json, ir.json,
ir_arrays.npz, plots) is compared byte for byte between two compiles into different folders: in
one process (two seconds apart, beyond the two-second resolution of zip timestamps), and in two
processes with different ``PYTHONHASHSEED`` values (set and dict iteration orders). Passing a
build's own fold.json back with ``--fold`` must reproduce the hardware exactly.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streamfold.compiler.build import compile_model

from handmade import conv_model, dense_model, save

REPO = Path(__file__).resolve().parent.parent
EXE = Path(sys.executable).with_name("streamfold")
DIGITS = REPO / "examples" / "models" / "digits_w2a2.onnx"


def files_of(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file() and "sim_build" not in p.parts}


def assert_same_folders(a: Path, b: Path) -> None:
    fa, fb = files_of(a), files_of(b)
    assert sorted(fa) == sorted(fb), f"different files: {sorted(set(fa) ^ set(fb))}"
    for name in ("streamfold_top.v", "fold.json", "report.json", "ir.json", "ir_arrays.npz"):
        assert name in fa, f"{name} missing from the build"
    differ = [n for n in fa if fa[n] != fb[n]]
    assert not differ, f"files differ between two compiles: {differ}"


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("det_models")
    return {"dense": save(dense_model(), d / "dense.onnx"),
            "conv": save(conv_model(), d / "conv.onnx"),
            "digits_w2a2": DIGITS}


@pytest.mark.parametrize("name,options", [
    ("dense", {}),
    ("conv", {"board": "pynq-z1"}),
    ("digits_w2a2", {}),
])
def test_two_compiles_same_bytes(tmp_path, models, name, options):
    a, b = tmp_path / "a", tmp_path / "b"
    compile_model(models[name], a, **options)
    time.sleep(2.1)  # zip archives (ir_arrays.npz) store times at two-second resolution
    compile_model(models[name], b, **options)
    assert_same_folders(a, b)


def test_fold_file_round_trip(tmp_path, models):
    """The fold.json a build writes, passed back with --fold, gives the same hardware."""
    a, b = tmp_path / "a", tmp_path / "b"
    compile_model(models["conv"], a)
    compile_model(models["conv"], b, fold_path=a / "fold.json")
    fa, fb = files_of(a), files_of(b)
    for name in fa:
        if name.endswith((".v", ".hex", ".npz")) or name in ("fold.json", "ir.json"):
            assert fa[name] == fb[name], name


def _cli_compile(model: Path, out: Path, seed: str) -> None:
    exe = [str(EXE)] if EXE.exists() else [sys.executable, "-m", "streamfold.compiler.cli"]
    env = dict(os.environ, PYTHONHASHSEED=seed)
    r = subprocess.run(exe + ["compile", str(model), "-o", str(out)], capture_output=True, text=True,
                       env=env, timeout=600)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("name", ["conv", "digits_w2a2"])
def test_same_bytes_across_hash_seeds(tmp_path, models, name):
    _cli_compile(models[name], tmp_path / "a", "1")
    _cli_compile(models[name], tmp_path / "b", "12345")
    assert_same_folders(tmp_path / "a", tmp_path / "b")

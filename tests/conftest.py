"""Shared fixtures. The model fixtures need the ``models`` extra (torch, brevitas) and skip without it."""
from __future__ import annotations

import pytest


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

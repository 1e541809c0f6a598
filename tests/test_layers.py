"""The layers of streamfold, enforced.

* the compiler's core (everything in ``compiler/`` but the flow modules, which run whole jobs)
  never imports Amaranth, ``streamfold.hw`` or ``streamfold.sim``;
* ``hw/`` never imports ONNX or qonnx, ``streamfold.sim`` or the compiler's front end and flow;
* ``sim/`` never imports Amaranth, ``streamfold.hw`` or the compiler's flow;
* nothing below the flow modules imports them.

Checked twice: statically (every import statement, function-local ones included, so no cycle
can hide in a function body) and by importing every module with the forbidden packages made
unimportable.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: compiler modules that run whole jobs (compile, simulate, synthesise, a fit checked by synthesis,
#: the demo, the CLI)
FLOW = {"build", "cli", "demo", "synth", "verify_fit"}
#: the compiler's ONNX front end (hw must not depend on it)
FRONT_END = {"load", "lower", "rewrites", "ops", "thresholds"}


def _modules(layer: str) -> list[tuple[str, Path]]:
    base = ROOT / layer
    out = []
    for p in sorted(base.rglob("*.py")):
        rel = p.relative_to(base).with_suffix("")
        parts = [x for x in rel.parts if x != "__init__"]
        out.append((".".join(["streamfold", layer] + parts), p))
    return out


def _imports(path: Path, module: str) -> set[str]:
    """Every module an import statement in ``path`` names (absolute names)."""
    tree = ast.parse(path.read_text())
    pkg = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")
                base = base[:len(base) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module
            out.add(name)
            out.update(f"{name}.{a.name}" for a in node.names)
    return out


def _hits(names: set[str], banned: list[str]) -> list[str]:
    return sorted(n for n in names if any(n == b or n.startswith(b + ".") for b in banned))


def _rule(layer: str, module: str) -> list[str]:
    flow = [f"streamfold.compiler.{m}" for m in FLOW]
    front = [f"streamfold.compiler.{m}" for m in FRONT_END]
    if layer == "compiler":
        if module.rsplit(".", 1)[-1] in FLOW:
            return []
        return ["amaranth", "streamfold.hw", "streamfold.sim"] + flow
    if layer == "hw":
        return ["onnx", "qonnx", "onnxruntime", "streamfold.sim"] + flow + front
    if layer == "sim":
        return ["amaranth", "streamfold.hw"] + flow
    return []


@pytest.mark.parametrize("layer", ["compiler", "hw", "sim"])
def test_import_rules(layer):
    bad = {}
    for module, path in _modules(layer):
        hits = _hits(_imports(path, module), _rule(layer, module))
        if hits:
            bad[module] = hits
    assert not bad, f"layer rules broken: {bad}"


_BLOCKED_IMPORT = """
import importlib, sys
for name in {blocked!r}:
    sys.modules[name] = None  # importing it raises ImportError
failed = []
for module in {modules!r}:
    try:
        importlib.import_module(module)
    except Exception as e:
        failed.append(f"{{module}}: {{type(e).__name__}}: {{e}}")
print("\\n".join(failed))
sys.exit(1 if failed else 0)
"""


@pytest.mark.parametrize("layer,blocked", [
    ("compiler", ["amaranth"]),
    ("hw", ["onnx", "qonnx", "onnxruntime"]),
])
def test_modules_import_without_the_other_layers_tools(layer, blocked):
    modules = [m for m, _ in _modules(layer)
               if not (layer == "compiler" and m.rsplit(".", 1)[-1] in FLOW | {"__main__"})]
    assert len(modules) > 5
    code = _BLOCKED_IMPORT.format(blocked=blocked, modules=modules)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, f"with {blocked} unavailable:\n{r.stdout}{r.stderr}"


def test_flow_modules_import_without_amaranth():
    """The CLI and the build steps load Amaranth only when they elaborate hardware."""
    code = _BLOCKED_IMPORT.format(blocked=["amaranth"],
                                  modules=[f"streamfold.compiler.{m}" for m in sorted(FLOW)])
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr

"""Test and example networks: Brevitas models exported to QONNX, plus an independent reference.

Everything here needs the ``models`` extra (torch, brevitas, onnxoptimizer); the compiler itself
never imports this module.

* :func:`bnn_pynq` -- the BNN-PYNQ zoo (TFC/SFC/LFC/CNV at 1w1a/1w2a/2w2a) with deterministic random
  weights and randomised, *calibrated* batch-norm statistics, so thresholds fall inside the
  accumulator range and no hidden quantizer is stuck on one level.
* :func:`mlp_4bit` -- a small 4-bit MLP (64-32-16-10) with float-scaled (calibrated) activation
  quantizers, per-channel weight scales on two layers and float biases.
* :func:`random_inputs` -- float32 inputs in the range a model expects.
* :func:`qonnx_reference` -- run an exported file with ``qonnx.core.onnx_exec.execute_onnx``.

Both export styles are supported: ``dynamo=True`` (torch's dynamo exporter: every QuantLinear is a
``Gemm``, with or without a bias input) and ``dynamo=False`` (legacy TorchScript exporter:
``Transpose`` + ``MatMul`` for a bias-free QuantLinear, ``Gemm`` with a bias). The dynamo export also
leaves a side file ``<path>.data``; the saved .onnx does not reference it (no external-data
initializers: the files run the same with it deleted). Exports are byte-for-byte deterministic.

Traps seen in the raw exports (before ``qonnx.util.cleanup.cleanup_model``):
* every initializer is also listed in ``graph.input``: the data input is the one graph input that
  is not an initializer (:func:`graph_input_name`); its name varies ("x", "input", "onnx::Reshape_0",
  "x.159", ...);
* the dynamo export merges equal constants across roles, e.g. the ``1.0`` of bnn_pynq's ``2x - 1``
  is the same initializer as every BipolarQuant scale, and zero-point/bit-width initializers are
  shared by all Quant nodes (the legacy export shares those too); never key anything on
  initializer names or assume one consumer per initializer;
* the legacy TensorNorm is ``Sub Pow Div Mul Add`` (``Pow`` on constants), dynamo's ``Sub Div Mul Add``;
  BatchNormalization carries ``training_mode=0`` (legacy) or no such attribute (dynamo);
* ``cleanup_model`` renames the input to ``global_in``, folds the legacy ``Transpose`` into the
  weight initializer and the ``Pow``, and reorders nodes (all weight quantizers first): walk the
  graph by tensor names, not by node order.
"""
from __future__ import annotations

import contextlib
import io
import os
import time
import warnings
from pathlib import Path

import numpy as np

# Frame shape (without batch) each model kind takes; values in [0, 1] for all of them.
_BNN_PYNQ_FRAME = {"tfc": (1, 28, 28), "sfc": (1, 28, 28), "lfc": (1, 28, 28), "cnv": (3, 32, 32)}
MLP_4BIT_FRAME = (64,)

#: Filled by :func:`bnn_pynq` / :func:`mlp_4bit`: {str(path): info dict} (export seconds, levels).
EXPORT_LOG: dict[str, dict] = {}


# ----------------------------------------------------------------------------- inputs
def frame_shape(model_name_or_shape) -> tuple[int, ...]:
    """Per-frame input shape (no batch dimension) of a model name, or the shape itself."""
    if isinstance(model_name_or_shape, str):
        name = model_name_or_shape.lower()
        if name.startswith("mlp"):
            return MLP_4BIT_FRAME
        if name.startswith("ad_"):
            return (AD_WIDTHS[name][0],)
        if name.startswith("digits"):
            return (1, 8, 8)
        try:
            return _BNN_PYNQ_FRAME[name[:3]]
        except KeyError:
            raise ValueError(f"unknown model name {model_name_or_shape!r}") from None
    return tuple(int(d) for d in model_name_or_shape)


def random_inputs(model_name_or_shape, n: int, seed: int = 0, levels="auto") -> np.ndarray:
    """``n`` float32 frames, shape ``(n, *frame)``, uniform in [0, 1].

    With ``levels`` the values are ``k / levels``: "auto" means 16 for "digits*" names (the digits
    examples take pixel/16) and 255 otherwise, like 8-bit image pixels, which keeps every input
    quantizer here away from rounding ties (2x-1 never lands on a .5 boundary of the bnn_pynq input
    quantizers, nor x*15 on one of mlp_4bit's); ``levels=None`` gives continuous values.
    """
    if levels == "auto":
        digits = isinstance(model_name_or_shape, str) and model_name_or_shape.lower().startswith("digits")
        levels = 16 if digits else 255
    rng = np.random.default_rng(seed)
    shape = (n, *frame_shape(model_name_or_shape))
    if levels is None:
        return rng.random(shape, dtype=np.float32)
    return (rng.integers(0, levels + 1, size=shape) / levels).astype(np.float32)


# ----------------------------------------------------------------------------- model helpers
def _quiet():
    """Silence the exporters' progress prints and warnings."""
    stack = contextlib.ExitStack()
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter("ignore")
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    return stack


@contextlib.contextmanager
def _one_thread():
    """Build and export on one torch thread: the result then does not depend on the caller's thread
    setting (float reductions feed the BN statistics), and on a busy 2-core machine two intra-op
    threads ran these builds about 2x slower (training steps up to 40x)."""
    import torch

    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(prev)


def _act_quant_modules(model):
    """The activation quantizers (QuantIdentity / QuantReLU / QuantHardTanh ...) in module order."""
    from brevitas.nn.quant_layer import QuantNonLinearActLayer

    return [(n, m) for n, m in model.named_modules() if isinstance(m, QuantNonLinearActLayer)]


def _norm_modules(model):
    import torch

    out = []
    for n, m in model.named_modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) or type(m).__name__ == "TensorNorm":
            out.append((n, m))
    return out


class _StopForward(Exception):
    pass


def _calibrate_norms(model, x, gen, neg_gamma_frac=0.2):
    """Give every BatchNorm / TensorNorm random statistics *relative to its actual input*.

    Layer by layer (each after the earlier ones are set) the input statistics on ``x`` are measured
    and the BN is set to mean = mu + N(0, 0.5) sigma, var = sigma^2 U(0.5, 4), gamma = +-U(0.5, 1.5)
    (a fraction ``neg_gamma_frac`` of BN channels negative, which flips the threshold direction;
    TensorNorm's gamma stays positive), beta = N(0, 0.3).
    The BN output is then roughly unit-spread, so the +-1 / {-1,0,1} / 4-bit quantizers that follow
    use all their levels and the equivalent thresholds lie inside the accumulator range.
    """
    import torch

    for name, bn in _norm_modules(model):
        captured = {}

        def grab(mod, inp):
            captured["x"] = inp[0].detach()
            raise _StopForward  # the rest of the network is not needed

        h = bn.register_forward_pre_hook(grab)
        try:
            with torch.no_grad():
                model(x)
        except _StopForward:
            pass
        finally:
            h.remove()
        a = captured["x"]
        if type(bn).__name__ == "TensorNorm":  # one scalar statistic for the whole tensor
            mu, sd = a.mean().reshape(1), a.std().reshape(1)
        else:
            dims = [0] + list(range(2, a.dim()))
            mu, sd = a.mean(dims), a.std(dims)
        sd = torch.where(sd > 0, sd, torch.ones_like(sd))  # a constant input: any spread will do
        c = mu.numel()
        rand = lambda *s: torch.rand(*s, generator=gen)  # noqa: E731
        randn = lambda *s: torch.randn(*s, generator=gen)  # noqa: E731
        with torch.no_grad():
            bn.running_mean.copy_(mu + 0.5 * sd * randn(c))
            bn.running_var.copy_(sd**2 * (0.5 + 3.5 * rand(c)))
            sign = torch.where(rand(c) < neg_gamma_frac, -1.0, 1.0)
            if type(bn).__name__ == "TensorNorm":  # keep the logits' order (argmax) meaningful
                sign = torch.ones_like(sign)
            bn.weight.copy_(sign * (0.5 + rand(c)))
            bn.bias.copy_(0.3 * randn(c))


def quant_levels(model, x) -> list[dict]:
    """For each activation quantizer: how many distinct values it outputs on ``x``, and how many of
    its channels are stuck on a single value (dim 1 is the channel dim)."""
    import torch

    out = []
    hooks = []
    for name, m in _act_quant_modules(model):
        def hook(mod, inp, res, name=name):
            t = res.value if hasattr(res, "value") else res
            t = t.detach()
            flat = t.transpose(0, 1).reshape(t.shape[1], -1)
            stuck = int(sum(int(torch.unique(row).numel() == 1) for row in flat))
            out.append({"name": name, "levels": int(torch.unique(t).numel()),
                        "channels": int(t.shape[1]), "stuck_channels": stuck})
        hooks.append(m.register_forward_hook(hook))
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return out


def _check_levels(summary, what):
    bad = [s["name"] for s in summary if s["levels"] < 2]
    if bad:
        raise RuntimeError(f"{what}: degenerate activation quantizers (one level): {bad}")


def export(model, x, path, dynamo: bool) -> float:
    """``brevitas.export.export_qonnx`` with the exporters' chatter silenced; returns seconds."""
    import torch
    from brevitas.export import export_qonnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with _quiet(), torch.no_grad(), _one_thread():
        export_qonnx(model, input_t=torch.as_tensor(x[:1]), export_path=str(path), dynamo=dynamo)
    return time.perf_counter() - t0


# ----------------------------------------------------------------------------- shared steps
def _export_checked(model, name: str, path, dynamo: bool, seed: int) -> Path:
    """Check ``model``'s activations are not degenerate on random inputs of ``name``'s shape,
    export it to QONNX at ``path``, log the export in ``EXPORT_LOG``; returns ``path``."""
    import torch

    path = Path(path)
    x = random_inputs(name, 32, seed=seed + 2)
    summary = quant_levels(model, torch.from_numpy(x))
    _check_levels(summary, name)
    secs = export(model, x, path, dynamo)
    EXPORT_LOG[str(path)] = {"model": name, "dynamo": dynamo, "seconds": secs, "levels": summary}
    return path


def calibrate_float_flow(model, x, gen):
    """Batch-norm statistics drawn on the float flow (quantization off), then the activation
    quantizers calibrated (brevitas ``calibration_mode``, also on the float flow) with those
    statistics in place: activation scales are not known before, and brevitas calibrates once."""
    import torch
    from brevitas.graph.calibrate import calibration_mode, quantization_status_manager

    model.eval()
    with quantization_status_manager(model, disable_act_quant=True, disable_weight_quant=True,
                                     disable_bias_quant=True, is_training=False):
        _calibrate_norms(model, x, gen)
    with torch.no_grad(), calibration_mode(model):
        model(x)
    model.eval()
    return model


# ----------------------------------------------------------------------------- bnn_pynq zoo
@_one_thread()
def build_bnn_pynq(name: str, seed: int = 0, calib_frames: int = 64):
    """The torch model (eval mode) with seeded random weights and calibrated random norms."""
    import torch
    from brevitas_examples.bnn_pynq.models import model_with_cfg

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model, _ = model_with_cfg(name, pretrained=False)
    model.eval()
    gen = torch.Generator().manual_seed(seed + 1_000_003)
    x = torch.from_numpy(random_inputs(name, calib_frames, seed=seed + 1))
    _calibrate_norms(model, x, gen)
    return model


def bnn_pynq(name: str, path, dynamo: bool = False, seed: int = 0) -> Path:
    """Build the BNN-PYNQ model ``name`` (e.g. "tfc_1w1a", "cnv_2w2a") with random weights and
    statistics, check its activations are not degenerate, export it to QONNX at ``path``.

    Returns ``path``; the export time and the per-quantizer level summary are in ``EXPORT_LOG``.
    """
    return _export_checked(build_bnn_pynq(name, seed), name, path, dynamo, seed)


# ----------------------------------------------------------------------------- 4-bit MLP
@_one_thread()
def build_mlp_4bit(seed: int = 0, calib_frames: int = 256):
    """64-32-16-10 MLP: 4-bit unsigned input quantizer; QuantLinear(w4, per-channel scale, bias)
    -> BatchNorm1d -> QuantReLU(4); QuantLinear(w4, per-tensor, no bias) -> QuantReLU(4);
    QuantLinear(w4, per-channel, bias) with a float output. Activation scales are float and
    calibrated on random inputs (brevitas ``calibration_mode``)."""
    import torch
    from brevitas.nn import QuantIdentity, QuantLinear, QuantReLU
    from brevitas.quant import Int8WeightPerChannelFloat, Int8WeightPerTensorFloat, Uint8ActPerTensorFloat

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = torch.nn.Sequential(
            QuantIdentity(act_quant=Uint8ActPerTensorFloat, bit_width=4),
            QuantLinear(64, 32, bias=True, weight_quant=Int8WeightPerChannelFloat, weight_bit_width=4),
            torch.nn.BatchNorm1d(32),
            QuantReLU(bit_width=4),
            QuantLinear(32, 16, bias=False, weight_quant=Int8WeightPerTensorFloat, weight_bit_width=4),
            QuantReLU(bit_width=4),
            QuantLinear(16, 10, bias=True, weight_quant=Int8WeightPerChannelFloat, weight_bit_width=4),
        )
        with torch.no_grad():  # rows summing to ~0: fewer always-negative (dead) ReLU channels
            w = model[4].weight
            w -= w.mean(dim=1, keepdim=True)
    model.eval()
    gen = torch.Generator().manual_seed(seed + 1_000_003)
    x = torch.from_numpy(random_inputs("mlp_4bit", calib_frames, seed=seed + 1))
    return calibrate_float_flow(model, x, gen)


def mlp_4bit(path, dynamo: bool = False, seed: int = 0) -> Path:
    """Build :func:`build_mlp_4bit`, check its activations, export to QONNX at ``path``."""
    return _export_checked(build_mlp_4bit(seed), "mlp_4bit", path, dynamo, seed)


# ----------------------------------------------------------------------------- 8-bit autoencoders
#: Dense autoencoders of the MLPerf Tiny anomaly-detection shape (640-128x4-8-128x4-640 in the
#: benchmark); ``ad_w8a8`` is a scaled-down one that synthesises whole in minutes, ``ad_w8a8_full``
#: the benchmark's own widths.
AD_WIDTHS = {
    "ad_w8a8": (64, 32, 8, 32, 64),
    "ad_w8a8_full": (640, 128, 128, 128, 128, 8, 128, 128, 128, 128, 640),
}


@_one_thread()
def build_dense_autoencoder(name: str = "ad_w8a8", seed: int = 0, bits: int = 8, calib_frames: int = 256):
    """A dense autoencoder of the widths ``AD_WIDTHS[name]``: an unsigned ``bits``-bit input
    quantizer; per hidden layer QuantLinear(``bits``-bit per-channel weights, bias) -> BatchNorm1d
    -> QuantReLU(``bits``); a last QuantLinear with a float output. Activation scales calibrated."""
    import torch
    from brevitas.nn import QuantIdentity, QuantLinear, QuantReLU
    from brevitas.quant import Int8WeightPerChannelFloat, Uint8ActPerTensorFloat

    widths = AD_WIDTHS[name]
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        layers = [QuantIdentity(act_quant=Uint8ActPerTensorFloat, bit_width=bits)]
        for i, (a, b) in enumerate(zip(widths, widths[1:])):
            layers.append(QuantLinear(a, b, bias=True, weight_quant=Int8WeightPerChannelFloat, weight_bit_width=bits))
            if i < len(widths) - 2:
                layers += [torch.nn.BatchNorm1d(b), QuantReLU(bit_width=bits)]
        model = torch.nn.Sequential(*layers)
    gen = torch.Generator().manual_seed(seed + 1_000_003)
    x = torch.from_numpy(random_inputs(name, calib_frames, seed=seed + 1))
    return calibrate_float_flow(model, x, gen)


def dense_autoencoder(name: str, path, dynamo: bool = False, seed: int = 0) -> Path:
    """Build :func:`build_dense_autoencoder`, check its activations, export to QONNX at ``path``."""
    return _export_checked(build_dense_autoencoder(name, seed), name, path, dynamo, seed)


def build(name: str, seed: int = 0):
    """Torch model for a name accepted by :func:`export_model`."""
    if name == "mlp_4bit":
        return build_mlp_4bit(seed)
    if name in AD_WIDTHS:
        return build_dense_autoencoder(name, seed)
    return build_bnn_pynq(name, seed)


def export_model(name: str, path, dynamo: bool = False, seed: int = 0) -> Path:
    """``mlp_4bit``, an ``AD_WIDTHS`` autoencoder or any bnn_pynq name."""
    if name == "mlp_4bit":
        return mlp_4bit(path, dynamo=dynamo, seed=seed)
    if name in AD_WIDTHS:
        return dense_autoencoder(name, path, dynamo=dynamo, seed=seed)
    return bnn_pynq(name, path, dynamo=dynamo, seed=seed)


def torch_outputs(model, x) -> np.ndarray:
    import torch

    with torch.no_grad():
        return model(torch.as_tensor(x)).numpy()


# ----------------------------------------------------------------------------- reference
def load_qonnx(path, cleanup: bool = True):
    """A ``qonnx`` ModelWrapper of ``path``; with ``cleanup`` after ``cleanup_model`` (shape
    inference, constant folding with Quant/BipolarQuant kept, readable names)."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.infer_shapes import InferShapes

    model = ModelWrapper(str(path))
    if cleanup:
        from qonnx.util.cleanup import cleanup_model

        return cleanup_model(model)
    return model.transform(InferShapes())  # execute_onnx needs every tensor shape


def graph_input_name(model) -> str:
    """The data input: the first graph input that is not an initializer (raw exports also list
    every weight as a graph input)."""
    inits = {i.name for i in model.graph.initializer}
    return next(i.name for i in model.graph.input if i.name not in inits)


def qonnx_reference(path, x, cleanup: bool = True) -> np.ndarray:
    """Run ``execute_onnx`` frame by frame (the exports have batch size 1) on ``x`` (N, *frame) and
    return the float32 outputs stacked, shape (N, *out)."""
    from qonnx.core.onnx_exec import execute_onnx

    model = path if hasattr(path, "graph") else load_qonnx(path, cleanup)
    iname = graph_input_name(model)
    oname = model.graph.output[0].name
    x = np.asarray(x, dtype=np.float32)
    outs = [execute_onnx(model, {iname: x[i:i + 1]})[oname][0] for i in range(len(x))]
    return np.stack(outs).astype(np.float32)


def op_types(path) -> list[str]:
    import onnx

    return [n.op_type for n in onnx.load(str(path), load_external_data=False).graph.node]


# ----------------------------------------------------------------------------- self-check
ALL_MODELS = ("tfc_1w1a", "tfc_2w2a", "sfc_1w2a", "cnv_1w1a", "cnv_1w2a", "cnv_2w2a", "mlp_4bit")


def selfcheck(names=ALL_MODELS, out_dir=None, frames: int = 8) -> list[dict]:
    """Export every model in both styles, compare qonnx's execution with PyTorch's (raw export and
    after cleanup_model), print timings and op sequences. ``python tests/models.py [names...]``."""
    import tempfile

    out_dir = Path(out_dir or tempfile.mkdtemp(prefix="streamfold_models_"))
    rows = []
    for name in names:
        model = build(name)
        x = random_inputs(name, frames, seed=7)
        ref = torch_outputs(model, x)
        for dynamo in (False, True):
            p = out_dir / f"{name}_{'dynamo' if dynamo else 'legacy'}.onnx"
            t0 = time.perf_counter()
            export_model(name, p, dynamo=dynamo)
            total = time.perf_counter() - t0
            log = EXPORT_LOG[str(p)]
            row = {"model": name, "dynamo": dynamo, "export_s": log["seconds"], "build_and_export_s": total,
                   "side_data_file": os.path.exists(str(p) + ".data"), "ops": op_types(p),
                   "levels": [s["levels"] for s in log["levels"]]}
            for cleanup in (False, True):
                y = qonnx_reference(p, x, cleanup=cleanup)
                row[f"maxdiff_cleanup={cleanup}"] = float(np.abs(y - ref).max())
            rows.append(row)
            print(f"{name:9s} {'dynamo' if dynamo else 'legacy'}: export {row['export_s']:.2f} s "
                  f"(build+export {total:.2f} s), levels {row['levels']}, |qonnx-torch| max "
                  f"{row['maxdiff_cleanup=False']:.2g} raw / {row['maxdiff_cleanup=True']:.2g} cleaned, "
                  f"side .data: {row['side_data_file']}")
            print("    " + " ".join(row["ops"]))
    return rows


if __name__ == "__main__":
    import sys

    selfcheck(sys.argv[1:] or ALL_MODELS)

"""Train small quantized CNNs on scikit-learn's bundled 8x8 digits and export them to QONNX.

    python examples/train_digits.py            # trains W2A2 and W1A1, exports, verifies with qonnx
    python examples/train_digits.py --which w1a1 --no-check

Data: ``sklearn.datasets.load_digits`` (1,797 real handwritten 8x8 digits, pixel values 0..16; ships
inside scikit-learn, nothing is downloaded), split with ``train_test_split(test_size=0.25,
random_state=0, stratify=y)``. The network input is ``pixels / 16`` as float32, shape (N, 1, 8, 8),
values in [0, 1]; the input quantizer (unsigned 8-bit, constant scale 1/16) turns it back into the
exact pixel integers, so the hardware streams the original 0..16 values.

Architecture (streaming friendly, no bias before a BatchNorm):

    QuantIdentity(u8, scale 1/16)
    QuantConv2d(1 -> C1, 3x3, pad 1)  -> BatchNorm2d -> act        8x8
    QuantConv2d(C1 -> C2, 3x3, pad 0) -> BatchNorm2d -> act        6x6
    MaxPool2d(2)                                                   3x3
    QuantConv2d(C2 -> C3, 3x3, pad 0) -> BatchNorm2d -> act        1x1
    flatten -> QuantLinear(C3 -> 10)  (+ TensorNorm for W1A1)

* W2A2: ternary weights (bnn_pynq's CommonWeightQuant, 2-bit narrow, scale 1), unsigned 2-bit
  QuantReLU activations with learned float scales, final QuantLinear with a float bias.
* W1A1: bipolar weights and activations (CommonWeightQuant / CommonActQuant at 1 bit, exported as
  BipolarQuant), final QuantLinear without bias followed by TensorNorm, as in bnn_pynq. Padding is
  only used on the first conv, whose input (unsigned 8-bit) can represent the zero padding;
  a bipolar tensor cannot.

Outputs (``--out``, default examples/models): digits_w2a2.onnx, digits_w1a1.onnx (exported with
``dynamo=False``: one file, no side .data), digits_test.npz with ``x`` (N,1,8,8) float32 exactly as
the ONNX models take it, ``y`` (N,) int64 labels, ``logits_w2a2`` / ``logits_w1a1`` (N,10) float32 from
PyTorch. Deterministic: fixed seeds and ``torch.set_num_threads(1)`` (one thread on purpose: with two
intra-op threads on a busy 2-core machine a training step ran ~40x slower, 1.9 s instead of 0.045 s).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

SEED = 0
HERE = Path(__file__).resolve().parent

CONFIGS = {
    # name: channels, epochs, lr
    # (random one-pixel shifts as augmentation cost 2-14 points of accuracy here: none is used)
    "w2a2": dict(channels=(16, 32, 64), epochs=40, lr=0.005),
    "w1a1": dict(channels=(32, 64, 128), epochs=60, lr=0.01),
}


# ----------------------------------------------------------------------------- data
def load_data():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None, :, :]  # (N, 1, 8, 8), k/16 exactly
    y = d.target.astype(np.int64)
    return train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)


# ----------------------------------------------------------------------------- model
def make_model(kind: str, channels=(16, 32, 64)) -> nn.Module:
    from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear, QuantReLU
    from brevitas_examples.bnn_pynq.models.common import CommonActQuant, CommonWeightQuant
    from brevitas_examples.bnn_pynq.models.tensor_norm import TensorNorm

    class InputQuant(CommonActQuant):
        """Unsigned 8-bit, constant scale 1/16: x = pixel/16 maps back to the integer pixel."""
        signed = False
        narrow_range = False
        min_val = 0.0
        max_val = 255.0 / 16.0  # threshold; scale = threshold / 255 = 1/16 exactly

    wbits, binary = {"w2a2": (2, False), "w1a1": (1, True)}[kind]

    def act():
        if binary:
            return QuantIdentity(act_quant=CommonActQuant, bit_width=1)
        return QuantReLU(bit_width=2)

    def conv(cin, cout, pad):
        return QuantConv2d(cin, cout, kernel_size=3, padding=pad, bias=False,
                           weight_quant=CommonWeightQuant, weight_bit_width=wbits)

    c1, c2, c3 = channels
    layers = [
        QuantIdentity(act_quant=InputQuant, bit_width=8),
        conv(1, c1, 1), nn.BatchNorm2d(c1), act(),
        conv(c1, c2, 0), nn.BatchNorm2d(c2), act(),
        nn.MaxPool2d(2),
        conv(c2, c3, 0), nn.BatchNorm2d(c3), act(),
        nn.Flatten(),
        QuantLinear(c3, 10, bias=not binary, weight_quant=CommonWeightQuant, weight_bit_width=wbits),
    ]
    if binary:
        layers.append(TensorNorm())
    model = nn.Sequential(*layers)
    for m in model.modules():  # bnn_pynq init: latent weights uniform in the clip range
        if isinstance(m, (QuantConv2d, QuantLinear)):
            nn.init.uniform_(m.weight.data, -1, 1)
    return model


def clip_weights(model):
    from brevitas.nn import QuantConv2d, QuantLinear

    for m in model.modules():
        if isinstance(m, (QuantConv2d, QuantLinear)):
            m.weight.data.clamp_(-1, 1)


# ----------------------------------------------------------------------------- training
def train(kind: str, data, log=print):
    cfg = CONFIGS[kind]
    xtr, xte, ytr, yte = data
    torch.manual_seed(SEED)
    model = make_model(kind, cfg["channels"])
    gen = torch.Generator().manual_seed(SEED)
    xtr_t, ytr_t = torch.from_numpy(xtr), torch.from_numpy(ytr)
    opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    steps_per_epoch = (len(xtr) + 63) // 64
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg["lr"], epochs=cfg["epochs"],
                                                steps_per_epoch=steps_per_epoch)
    lossf = nn.CrossEntropyLoss()
    t0 = time.perf_counter()
    for epoch in range(cfg["epochs"]):
        model.train()
        perm = torch.randperm(len(xtr), generator=gen)
        total = 0.0
        for i in range(0, len(xtr), 64):
            idx = perm[i:i + 64]
            loss = lossf(model(xtr_t[idx]), ytr_t[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            clip_weights(model)
            total += loss.item() * len(idx)
        if (epoch + 1) % 10 == 0 or epoch + 1 == cfg["epochs"]:
            acc = (predict(model, xte).argmax(1) == yte).mean()
            log(f"  {kind} epoch {epoch + 1:3d}  loss {total / len(xtr):.4f}  test acc {acc:.4f}  "
                f"({time.perf_counter() - t0:.0f} s)")
    model.eval()
    return model, time.perf_counter() - t0


def predict(model, x) -> np.ndarray:
    was = model.training
    model.eval()
    with torch.no_grad():
        y = model(torch.as_tensor(x)).numpy()
    model.train(was)
    return y


# ----------------------------------------------------------------------------- export / check
def export(model, x, path: Path):
    from brevitas.export import export_qonnx

    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
        warnings.simplefilter("ignore")
        export_qonnx(model, input_t=torch.as_tensor(x[:1]), export_path=str(path), dynamo=False)


def qonnx_logits(path: Path, x) -> np.ndarray:
    """Frame-by-frame ``qonnx.core.onnx_exec.execute_onnx`` on the raw export (shapes inferred)."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.infer_shapes import InferShapes

    m = ModelWrapper(str(path)).transform(InferShapes())
    inits = {i.name for i in m.graph.initializer}
    iname = next(i.name for i in m.graph.input if i.name not in inits)
    oname = m.graph.output[0].name
    return np.stack([execute_onnx(m, {iname: x[i:i + 1]})[oname][0] for i in range(len(x))])


def check(path: Path, x, y, logits_torch, log=print) -> dict:
    lq = qonnx_logits(path, x)
    pt, pq = logits_torch.argmax(1), lq.argmax(1)
    srt = np.sort(logits_torch, axis=1)
    ties = int((srt[:, -1] == srt[:, -2]).sum())
    res = {
        "max_abs_diff": float(np.abs(lq - logits_torch).max()),
        "pred_mismatches": int((pt != pq).sum()),
        "torch_acc": float((pt == y).mean()),
        "qonnx_acc": float((pq == y).mean()),
        "top2_ties": ties,
    }
    log(f"  qonnx check {path.name}: predictions differ on {res['pred_mismatches']}/{len(x)} images, "
        f"max |logit diff| {res['max_abs_diff']:.3g}, accuracy torch {res['torch_acc']:.4f} / qonnx "
        f"{res['qonnx_acc']:.4f}, images with a tie for the top logit: {ties}")
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=HERE / "models")
    ap.add_argument("--which", default="w2a2,w1a1")
    ap.add_argument("--no-check", action="store_true", help="skip the qonnx execute_onnx check")
    args = ap.parse_args(argv)

    torch.set_num_threads(1)  # see module docstring: 2 threads on a loaded 2-core box ran 40x slower
    data = load_data()
    xte, yte = data[1], data[3]
    npz = {"x": xte, "y": yte}
    results = {}
    for kind in args.which.split(","):
        model, secs = train(kind, data)
        logits = predict(model, xte).astype(np.float32)
        acc = float((logits.argmax(1) == yte).mean())
        path = args.out / f"digits_{kind}.onnx"
        export(model, xte, path)
        print(f"{kind}: test accuracy {acc:.4f} ({len(yte)} images), trained in {secs:.0f} s -> {path}")
        npz[f"logits_{kind}"] = logits
        results[kind] = {"acc": acc, "train_s": secs}
        if not args.no_check:
            results[kind].update(check(path, xte, yte, logits))
    npz_path = args.out / "digits_test.npz"
    if npz_path.exists():  # a partial run (--which) keeps the other model's logits
        old = dict(np.load(npz_path))
        if np.array_equal(old["x"], xte) and np.array_equal(old["y"], yte):
            npz = {**old, **npz}
    np.savez_compressed(npz_path, **npz)
    return results


if __name__ == "__main__":
    main()

"""Read a QONNX model from disk and clean it with qonnx's transformations."""
from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path

import numpy as np
import onnx
from google.protobuf.message import DecodeError

from .errors import ModelError


def load_model(path: str | os.PathLike):
    """Load ``path`` (weights inline or in a side ``.data`` file) and return a cleaned ModelWrapper.

    Cleaning (qonnx ``cleanup_model``) infers shapes, folds constant subgraphs other than the
    quantizers, and gives every node a unique name, so errors can name nodes.
    """
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.cleanup import cleanup_model

    p = Path(path)
    if not p.exists():
        raise ModelError(f"{p}: no such file")
    if p.is_dir():
        raise ModelError(f"{p}: is a folder, expected an .onnx model file")
    try:
        proto = onnx.load(str(p), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError, OSError) as e:
        raise ModelError(f"{p}: not an ONNX model (cannot parse: {_first_line(e)}); "
                         "export one with brevitas.export.export_qonnx") from None
    if not proto.graph.node:
        raise ModelError(f"{p}: not an ONNX model, or an empty graph (no nodes); "
                         "export one with brevitas.export.export_qonnx")
    try:
        onnx.load_external_data_for_model(proto, str(p.parent))
    except (OSError, ValueError, RuntimeError) as e:
        raise ModelError(f"{p}: its weights live in a side file that cannot be read "
                         f"({_first_line(e)}); keep the .onnx.data file next to the model") from None
    _check_interface(proto, p)
    try:
        with _quiet_onnxruntime(), np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # qonnx's notes would be extra lines on the CLI
            model = ModelWrapper(proto)
            model = cleanup_model(model)
    except Exception as e:  # qonnx raises many kinds; the user needs one line
        raise ModelError(f"{p}: qonnx could not clean the model ({type(e).__name__}: "
                         f"{_first_line(e)}); check it loads with qonnx.util.cleanup") from None
    return model


@contextlib.contextmanager
def _quiet_onnxruntime():
    """qonnx folds constants with onnxruntime, whose C++ logger writes to stderr on its own: the
    error raised (one line) says it all."""
    try:
        import onnxruntime as ort
    except ImportError:  # pragma: no cover - a qonnx dependency
        yield
        return
    ort.set_default_logger_severity(4)  # fatal only
    try:
        yield
    finally:
        ort.set_default_logger_severity(2)  # onnxruntime's default: warnings


def _check_interface(proto, p: Path) -> None:
    inits = {i.name for i in proto.graph.initializer}
    inputs = [i for i in proto.graph.input if i.name not in inits]
    if len(inputs) != 1 or len(proto.graph.output) != 1:
        raise ModelError(f"{p}: expected one input and one output, found {len(inputs)} inputs "
                         f"and {len(proto.graph.output)} outputs")
    for vi in (inputs[0], proto.graph.output[0]):
        dims = vi.type.tensor_type.shape.dim
        if not dims:
            raise ModelError(f"{p}: tensor {vi.name!r} has no static shape; export with a fixed "
                             "input shape")
        for i, d in enumerate(dims):
            if not d.HasField("dim_value") and vi is inputs[0] and i > 0:
                raise ModelError(f"{p}: input {vi.name!r} has a dynamic dimension {i} "
                                 f"({d.dim_param or '?'}); export with a fixed input shape")


def _first_line(e: BaseException) -> str:
    s = str(e).strip().splitlines()
    return s[0][:200] if s else type(e).__name__

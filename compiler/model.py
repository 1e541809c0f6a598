"""A compiled model: the unit pipeline plus the float steps the host applies at both ends."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import BuildError, StreamfoldError
from .ir import IR_VERSION, DataflowGraph, dumps
from .topology import run_reference
from .ops import OpCall, bipolar_int, quant_int, run_chain


@dataclass
class HostInput:
    """Float input -> integer stream values: the model's ops up to its first quantizer.

    ``ops`` are evaluated in float32, as qonnx's executor does; ``quantizer`` is that first
    Quant/BipolarQuant, whose integer levels enter the hardware; ``layout`` says how the quantized
    tensor is laid out on the stream ("flat": (N, F) as is; "nchw": transposed to (N, H, W, C)).
    """

    ops: list
    quantizer: OpCall
    layout: str = "flat"

    def to_stream(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        x = run_chain(self.ops, x)
        q = self.quantizer
        if q.op_type == "BipolarQuant":
            levels = bipolar_int(x)
        else:
            scale, zp, bits = q.inputs[1:4]
            levels = quant_int(x, scale, zp, bits, q.attrs.get("signed", 1), q.attrs.get("narrow", 0),
                               q.attrs.get("rounding_mode", "ROUND"))
        if self.layout == "nchw":
            levels = levels.transpose(0, 2, 3, 1)
        return levels.reshape(levels.shape[0], -1) if self.layout == "flat" else levels


@dataclass
class HostOutput:
    """Integer stream values -> the model's float output.

    ``x = values * mul + add`` per channel (the last unit's accumulator or activation levels, back
    in the model's float space), then the model's remaining per-channel ops ``ops``, evaluated in
    float64 and rounded once to float32.
    """

    mul: np.ndarray
    add: np.ndarray
    ops: list = field(default_factory=list)
    layout: str = "flat"
    exact: bool = False  # True when the model ends in a quantizer: outputs equal qonnx's exactly
    labels: bool = False  # True when the stream carries class indices (compiler/label_select.py)

    def from_stream(self, y: np.ndarray) -> np.ndarray:
        if self.labels:
            return np.asarray(y, dtype=np.int64).reshape(len(y), -1)
        y = np.asarray(y, dtype=np.float64)
        if self.layout == "nchw":
            y = y.transpose(0, 3, 1, 2)
            shape = (1, -1, 1, 1)
        else:
            shape = (1, -1)
        if self.exact:
            x = (y.astype(np.float32) * np.asarray(self.mul, dtype=np.float32).reshape(shape))
            return run_chain(self.ops, x).astype(np.float32)
        x = y * np.asarray(self.mul, dtype=np.float64).reshape(shape) + \
            np.asarray(self.add, dtype=np.float64).reshape(shape)
        return run_chain(self.ops, x).astype(np.float32)


@dataclass
class CompiledModel:
    pipeline: DataflowGraph
    host_in: HostInput
    host_out: HostOutput
    input_name: str
    input_shape: tuple
    output_name: str
    output_shape: tuple
    source: str = ""
    search: object = field(default=None, repr=False, compare=False)  # a fold search's result, if any
    tiling: object = None  # a TilePlan when frames stream as column strips (compiler/tiling.py)

    # -- frames and strips ---------------------------------------------------------------------
    @property
    def strips_per_frame(self) -> int:
        return 1 if self.tiling is None else self.tiling.strips

    @property
    def frame_in_shape(self) -> tuple:
        """Stream-layout shape of one whole input frame (a tiled build's pipeline sees strips)."""
        s = tuple(self.pipeline.in_stream.shape)
        return s if self.tiling is None else (s[0], self.tiling.width) + s[2:]

    def to_strips(self, xq: np.ndarray) -> np.ndarray:
        """Whole quantized frames -> what the pipeline streams (strips, when tiled)."""
        return xq if self.tiling is None else self.tiling.cut(xq)

    def from_strips(self, y: np.ndarray) -> np.ndarray:
        """The pipeline's output frames -> whole output frames (strips reassembled, when tiled)."""
        return y if self.tiling is None else self.tiling.assemble(y)

    # -- running the reference ---------------------------------------------------------------
    def quantize_input(self, x: np.ndarray) -> np.ndarray:
        x = self.check_input(x)
        v = self.host_in.to_stream(x)
        return v.reshape((v.shape[0],) + self.frame_in_shape)

    def dequantize_output(self, y: np.ndarray) -> np.ndarray:
        out = self.host_out.from_stream(y)
        return out.reshape((out.shape[0],) + tuple(self.output_shape[1:]))

    def reference(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Float inputs -> (integer stream outputs, float model outputs) by the NumPy reference."""

        y = self.from_strips(run_reference(self.pipeline, self.to_strips(self.quantize_input(x))))
        return y, self.dequantize_output(y)

    def check_input(self, x: np.ndarray) -> np.ndarray:
        from .errors import StreamfoldError

        x = np.asarray(x)
        want = tuple(self.input_shape[1:])
        if x.dtype.kind not in "fiu":
            raise StreamfoldError(f"input array has dtype {x.dtype}; expected float32 values")
        if tuple(x.shape[1:]) != want:
            if tuple(x.shape) == want:
                x = x[None]
            else:
                raise StreamfoldError(f"input array has shape {tuple(x.shape)}; expected "
                                      f"(frames, {', '.join(map(str, want))}) for model input "
                                      f"{self.input_name!r}")
        if x.shape[0] == 0:
            raise StreamfoldError(f"input array has shape {tuple(x.shape)}: no frames; expected "
                                  f"(frames, {', '.join(map(str, want))}) with at least one frame")
        x = x.astype(np.float32)
        bad = ~np.isfinite(x)
        if bad.any():
            at = tuple(int(i) for i in np.argwhere(bad)[0])
            raise StreamfoldError(f"input array holds {x[at]} at index {list(at)} (frame {at[0]}); "
                                  "inputs must be finite numbers")
        return x

    # -- files --------------------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        folder = Path(folder)
        doc, arrays = self.pipeline.to_files()
        doc["host_in"] = {
            "ops": [op.to_json(f"host_in.op{i}", arrays) for i, op in enumerate(self.host_in.ops)],
            "quantizer": self.host_in.quantizer.to_json("host_in.quantizer", arrays),
            "layout": self.host_in.layout,
        }
        arrays["host_out.mul"] = np.asarray(self.host_out.mul)
        arrays["host_out.add"] = np.asarray(self.host_out.add)
        doc["host_out"] = {
            "mul": "host_out.mul", "add": "host_out.add",
            "ops": [op.to_json(f"host_out.op{i}", arrays) for i, op in enumerate(self.host_out.ops)],
            "layout": self.host_out.layout, "exact": self.host_out.exact, "labels": self.host_out.labels,
        }
        doc["io"] = {"input_name": self.input_name, "input_shape": list(self.input_shape),
                     "output_name": self.output_name, "output_shape": list(self.output_shape),
                     "source": self.source}
        if self.tiling is not None:
            doc["tiling"] = self.tiling.to_json()
        (folder / "ir.json").write_text(dumps(doc))
        with open(folder / "ir_arrays.npz", "wb") as f:
            np.savez_compressed(f, **{k: arrays[k] for k in sorted(arrays)})

    @staticmethod
    def load(folder: Path) -> "CompiledModel":
        folder = Path(folder)
        again = "compile the model again with `streamfold compile MODEL -o BUILD`"
        if not folder.is_dir():
            raise BuildError(f"{folder}: no such build folder; create one with "
                             "`streamfold compile MODEL -o BUILD`")
        missing = [f for f in ("ir.json", "ir_arrays.npz") if not (folder / f).is_file()]
        if missing:
            raise BuildError(f"{folder}: not a complete streamfold build folder (no "
                             f"{' and no '.join(missing)}); {again}")
        try:
            doc = json.loads((folder / "ir.json").read_text())
        except (ValueError, UnicodeDecodeError, OSError) as e:
            raise BuildError(f"{folder}/ir.json: not readable JSON ({_first_line(e)}); {again}") from None
        version = doc.get("ir_version") if isinstance(doc, dict) else None
        if version != IR_VERSION:
            raise BuildError(f"{folder}: built by a streamfold with IR version {version}, "
                             f"this one reads version {IR_VERSION}; {again}")
        try:
            with np.load(folder / "ir_arrays.npz", allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except Exception as e:  # zipfile, pickle and format errors: the file is damaged
            why = f"{type(e).__name__}: {_first_line(e)}"
            if (folder / "ir_arrays.npz").read_bytes()[:2] != b"PK":
                why = "not a zip archive"
            raise BuildError(f"{folder}/ir_arrays.npz: not a readable NumPy archive ({why}); "
                             f"{again}") from None
        try:
            pipeline = DataflowGraph.from_files(doc, arrays)
            hi, ho, io = doc["host_in"], doc["host_out"], doc["io"]
            host_in = HostInput([OpCall.from_json(d, arrays) for d in hi["ops"]],
                                OpCall.from_json(hi["quantizer"], arrays), hi["layout"])
            host_out = HostOutput(arrays[ho["mul"]], arrays[ho["add"]],
                                  [OpCall.from_json(d, arrays) for d in ho["ops"]], ho["layout"],
                                  ho.get("exact", False), ho.get("labels", False))
            cm = CompiledModel(pipeline, host_in, host_out, io["input_name"],
                               tuple(io["input_shape"]), io["output_name"], tuple(io["output_shape"]),
                               io.get("source", ""))
            if doc.get("tiling"):
                from .tiling import TilePlan
                cm.tiling = TilePlan.from_json(doc["tiling"])
            cm.pipeline.check()
        except StreamfoldError:
            raise
        except Exception as e:  # a key, array or unit the IR needs is missing or malformed
            what = f"missing entry {e}" if isinstance(e, KeyError) else f"{type(e).__name__}: {_first_line(e)}"
            raise BuildError(f"{folder}: ir.json and ir_arrays.npz do not describe a valid pipeline "
                             f"({what}); {again}") from None
        return cm


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0][:160] if lines else type(e).__name__

"""Operators beyond dense/conv/max-pool, end to end in Verilator (random gaps and back-pressure,
every integer against the reference, outputs against qonnx's executor, cycles within 5%)."""
from __future__ import annotations

import pytest

from flow import check_model
from handmade import avgpool_model, save


@pytest.mark.parametrize("kw", [dict(), pytest.param(dict(rounding="ROUND"), marks=pytest.mark.slow),
                                pytest.param(dict(drop_bits=0), marks=pytest.mark.slow),
                                pytest.param(dict(kernel=3, size=9, drop_bits=1, rounding="ROUND"),
                                             marks=pytest.mark.slow)],
                         ids=["floor", "round", "exact", "k3_round"])
def test_windowed_average_pool_and_trunc(kw, tmp_path):
    """AveragePool k x k (stride k) + qonnx Trunc as TruncAvgPool2d exports it: a sum-pool unit,
    then the Trunc's rounding as thresholds on the window sum (none when it drops no bits)."""
    path = save(avgpool_model(**kw), tmp_path / "avg.onnx")
    out = check_model(path, tmp_path / "build", frames=4)
    kinds = [u.kind for u in out["model"].pipeline.units]
    assert "sumpool" in kinds
    assert ("thresholds" in kinds) == (kw.get("drop_bits", 2) > 0)


def test_per_channel_activation_scales(tmp_path):
    """A quantizer with one scale per channel feeding a depthwise convolution: the scales go into
    the depthwise unit's per-channel thresholds, exactly."""
    from handmade import channel_scale_model

    path = save(channel_scale_model(), tmp_path / "pc.onnx")
    out = check_model(path, tmp_path / "build", frames=4)
    assert "vvau" in [u.kind for u in out["model"].pipeline.units]


def test_conv1d(tmp_path):
    """A 1-D network (Conv1d, per-channel Mul over the length, MaxPool1d): rewritten to height 1."""
    from handmade import conv1d_model

    path = save(conv1d_model(), tmp_path / "c1.onnx")
    out = check_model(path, tmp_path / "build", frames=4)
    win = out["model"].pipeline.units[0]
    assert win.in_shape == (1, 16, 2) and win.kernel == (1, 3)


@pytest.mark.parametrize("kw", [pytest.param(dict(mode="CRD"), marks=pytest.mark.slow),
                                pytest.param(dict(mode="DCR"), marks=pytest.mark.slow), dict(op="Resize")],
                         ids=["depth_to_space_crd", "depth_to_space_dcr", "resize_nearest"])
def test_reorder_at_the_end_runs_on_the_host(kw, tmp_path):
    """A DepthToSpace (PixelShuffle) or nearest Resize ending the model: the stream carries the
    quantized feature map, the host reorders it (exactly: levels times scale, then the reorder)."""
    from handmade import subpixel_model

    path = save(subpixel_model(**kw), tmp_path / "sp.onnx")
    out = check_model(path, tmp_path / "build", frames=3)
    assert [u.kind for u in out["model"].pipeline.units] == ["swg_whole", "mvau"]


@pytest.mark.parametrize("kw", [dict(mode="CRD"), pytest.param(dict(mode="DCR", channels=4), marks=pytest.mark.slow),
                                pytest.param(dict(op="Resize"), marks=pytest.mark.slow)],
                         ids=["depth_to_space_crd", "depth_to_space_dcr", "upsample"])
def test_reorder_inside_the_network_is_a_stream_unit(kw, tmp_path):
    """A DepthToSpace or nearest Resize followed by a convolution: a row-buffer stream unit."""
    from handmade import subpixel_model

    path = save(subpixel_model(inside=True, **kw), tmp_path / "sp.onnx")
    out = check_model(path, tmp_path / "build", frames=3)
    kinds = [u.kind for u in out["model"].pipeline.units]
    assert ("upsample" if kw.get("op") == "Resize" else "depth_to_space") in kinds

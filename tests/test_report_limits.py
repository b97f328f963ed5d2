"""The CPU-paths report's limits and targets (issue 21): every path's share of its dtype's limit, how far below it
runs, and the end-to-end and int8 targets met or missed by how much. Rendering only: no timing."""

from __future__ import annotations

from benchmarks.limits import machine_limits, path_dtype
from benchmarks.report import _share, _target, _targets, limits_text


def _info(**more):
    info = {
        "arch": "efficientnet_lite0",
        "pretrained": True,
        "default_precision": "bf16",
        "peak_tops": {"fp32": 0.333, "bf16": 5.32, "int8": 10.65},
        "peak_basis": "2 cores x 2.60 GHz, 2 vector units per core assumed: ...",
        "kernel_tops": {"fp32": 0.36, "bf16": 2.0, "int8": 4.3},
        "limit_tops": {"fp32": 0.36, "bf16": 5.32, "int8": 10.65},
        "paths": {
            "torch fp32 eager": {"forward_ms_per_image": 12.0, "share_of_limit": 0.19, "limit_dtype": "fp32"},
            "torch compile": {"forward_ms_per_image": 2.7, "share_of_limit": 0.053, "limit_dtype": "bf16"},
            "torch int8": {
                "forward_ms_per_image": 1.95,
                "share_of_limit": 0.037,
                "limit_dtype": "int8",
                "top1_agreement": 1.0,
            },
        },
        "end_to_end_ms_per_image": {"lab loop": 55.0, "predict int8": 6.3, "predict openvino int8": 5.2},
        "end_to_end_speedup": {"lab loop": 1.0, "predict int8": 8.7, "predict openvino int8": 10.6},
        "end_to_end_top1_agreement": {"predict default": 1.0},
    }
    info.update(more)
    return info


def test_a_share_says_how_far_below_the_limit_a_path_runs():
    assert _share({"share_of_limit": 0.037, "limit_dtype": "int8"}) == "3.7% of int8 (27x below)"
    assert _share({"share_of_limit": 0.861, "limit_dtype": "fp32"}) == "86.1% of fp32 (1.2x below)"
    assert _share({}) == "n/a"


def test_the_limits_name_the_peak_the_kernels_and_a_kernel_above_the_peak():
    text = "\n".join(limits_text(_info()))
    assert "2 vector units per core assumed" in text
    assert "int8 4.30 TOP/s (40% of its peak)" in text
    assert "for fp32: the measured kernel" in text  # 0.36 measured > 0.333 computed at the reported clock
    assert limits_text({"paths": {}}) == []  # a run from before the limits: nothing to say


def test_targets_say_met_or_by_how_much_they_are_missed():
    lines = _targets(_info())
    assert "- end to end, fastest pure torch (predict int8) >= 0.9x OpenVINO int8: 0.83x, not met (short by " in (
        "\n".join(lines)
    )
    assert "- torch int8 forward >= torch compile (bf16): 1.38x, met" in lines
    assert "- every path's share of its limit <= 100%: highest 19.0% (torch fp32 eager), met" in lines
    assert "- torch int8 top-1 agreement >= 98%: 100.0%, met" in lines
    assert _target("x", 0.84, 0.85) == "- x: 0.84x, not met (short by 0.01x, 1%)"
    assert _target("y", 97.0, 98, "%") == "- y: 97.0%, not met (short by 1.0 points)"


def test_each_path_is_measured_against_what_it_computes_and_the_limit_is_never_below_a_kernel():
    assert path_dtype("torch int8", "bf16") == "int8"
    assert path_dtype("openvino bf16 direct", "bf16") == "bf16"
    assert path_dtype("torch compile", "bf16") == "bf16"
    assert path_dtype("torch compile", "fp32") == "fp32"
    assert path_dtype("onnxruntime fp32", "bf16") == "fp32"
    peak, limits = machine_limits({"fp32": 1e15, "bf16": None, "int8": 1.0}, threads=1)
    assert limits["fp32"] == 1e15  # a kernel faster than the computed peak raises the limit
    assert limits["bf16"] == peak.rates["bf16"] and limits["int8"] == peak.rates["int8"]

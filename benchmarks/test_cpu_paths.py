"""Every way to run a model on this CPU, side by side, per model, interleaved in one process; and large photos.

Forward only (one batch of labelled images): torch fp32 eager, the default, torch.compile, torch int8 (PT2E),
OpenVINO fp32/bf16/int8 through ``backend="openvino"`` and on the same compiled network used directly, and
ONNX Runtime fp32 and int8 (QDQ, U8S8). End to end (image files -> top-5): the lab's loop and ``predict`` on
each path. For each: ms per image, its top-1 agreement with fp32 on the labelled images, its accuracy, and
its share of this machine's limit in what it computes (fp32, bf16 or int8): the peak rate of the CPU's
instructions (``peak_rates``), or the best kernel measured here when that is faster. Only ratios taken here mean
anything: the machine changes between runs (the record names its CPU and features). Studies: run with
``--studies`` (or ``-m study``, or this file named).
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.io import ImageReadMode, decode_image

from benchmarks.limits import machine_limits, path_dtype
from benchmarks.records import RANDOM_WEIGHTS_NOTE, reference
from benchmarks.timing import CpuTimer, in_turn, interleaved
from top5hub.models import Top5Classifier, cpu_flags, cpu_name
from top5hub.settings import DRAFT_MARGIN
from top5hub.transforms import collect_inputs, prepare, read_labelled_folder

pytestmark = pytest.mark.study

Logits = Callable[[torch.Tensor], torch.Tensor]


def _lab_loop(model: Top5Classifier, files: list[str]) -> None:
    """The lab's loop: decode, the weights' transforms, one image per forward with autograd on, softmax, top-5."""
    for file in files:
        batch = model.preprocess(decode_image(file, mode=ImageReadMode.RGB)).unsqueeze(0)  # RGB: gray crashed it
        model.net(batch).squeeze(0).softmax(0).topk(5)


def _forward_contenders(
    model: Top5Classifier, calibration: list[str], tmp_path: Path, calibration_batch: torch.Tensor
) -> tuple[dict[str, Logits], dict[str, str]]:
    """Name -> batch-to-logits callable, and name -> why a contender is unavailable (an optional package)."""
    contenders: dict[str, Logits] = {"torch fp32 eager": model.runner("fp32")}
    default = model.runner("auto")
    if default.options.precision != "fp32":  # else the default is the fp32 eager runner itself
        contenders[f"torch default ({default.options.precision})"] = default
    contenders["torch compile"] = model.runner("auto", compile=True)
    unavailable: dict[str, str] = {}
    makers: dict[str, Callable[[], dict[str, Logits]]] = {
        "torch int8": lambda: {"torch int8": model.runner("int8", calibration=calibration)},
        "openvino": lambda: _openvino(model, calibration),
        "onnxruntime": lambda: _onnxruntime(model, tmp_path, calibration_batch),
    }
    for name, make in makers.items():
        try:
            contenders.update(make())
        except ImportError as error:  # an optional package is missing: say which, measure the rest
            unavailable[name] = str(error)
    return contenders, unavailable


def _openvino(model: Top5Classifier, calibration: list[str]) -> dict[str, Logits]:
    """Each precision through our backend, and the same compiled network called directly with OpenVINO's own API."""
    contenders: dict[str, Logits] = {}
    for precision in ("fp32", "bf16", "int8"):
        runner = model.runner(precision, backend="openvino", calibration=calibration)
        contenders[f"openvino {precision}"] = runner
        contenders[f"openvino {precision} direct"] = _direct(runner.compiled)
    return contenders


def _direct(compiled: Any) -> Logits:
    """OpenVINO as its documentation shows it: one infer request, the input array shared, the output read back."""
    request = compiled.create_infer_request()

    def run(batch: torch.Tensor) -> torch.Tensor:
        request.infer({0: batch.numpy()}, share_inputs=True)
        return torch.from_numpy(request.get_output_tensor(0).data.copy())

    return run


def _onnxruntime(model: Top5Classifier, tmp_path: Path, calibration: torch.Tensor) -> dict[str, Logits]:
    """ONNX Runtime fp32, and int8 quantized statically (QDQ, uint8 activations, int8 weights: the signed-signed
    default ran slower than fp32) on the same calibration images."""
    import onnxruntime
    from onnxruntime import quantization

    fp32_path, int8_path = tmp_path / "model.onnx", tmp_path / "model_int8.onnx"
    torch.onnx.export(
        model.net.eval(),
        (calibration[:1],),
        str(fp32_path),
        dynamo=False,
        input_names=["x"],
        output_names=["logits"],
        dynamic_axes={"x": {0: "batch"}},
    )

    class Reader(quantization.CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"x": chunk.numpy()} for chunk in calibration.split(8)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    quantization.quantize_static(
        str(fp32_path),
        str(int8_path),
        Reader(),
        quant_format=quantization.QuantFormat.QDQ,
        activation_type=quantization.QuantType.QUInt8,
        weight_type=quantization.QuantType.QInt8,
        per_channel=True,
    )
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    contenders: dict[str, Logits] = {}
    for name, path in (("onnxruntime fp32", fp32_path), ("onnxruntime int8", int8_path)):
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        contenders[name] = lambda batch, session=session: torch.from_numpy(session.run(None, {"x": batch.numpy()})[0])
    return contenders


def _kernel_rates(quick: bool) -> dict[str, float | None]:
    """The best kernel this machine runs per dtype, in operations per second (a multiply-add counts two): a large
    matmul in fp32 and bf16 (torch's CPU GEMM: oneDNN, on AMX where the CPU has it) and in int8 (oneDNN's uint8 x
    int8 linear, prepacked: AMX or VNNI, what the int8 convolutions run on). None where a dtype does not run."""
    side = 1024 if quick else 2048
    multiplies: dict[str, Callable[[], Any]] = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        left, right = torch.randn(side, side, dtype=dtype), torch.randn(side, side, dtype=dtype)
        multiplies[name] = lambda left=left, right=right: left @ right
    try:
        activations = torch.randint(0, 255, (side, side), dtype=torch.uint8)
        packed = torch.ops.onednn.qlinear_prepack(
            torch.randint(-127, 127, (side, side), dtype=torch.int8), [side, side]
        )
        scales, zeros = torch.ones(side), torch.zeros(side, dtype=torch.int64)
        multiplies["int8"] = lambda: torch.ops.onednn.qlinear_pointwise(
            activations, 0.05, 0, packed, scales, zeros, None, 1.0, 0, torch.float32, "none", [], ""
        )
    except (AttributeError, RuntimeError):  # no oneDNN int8 here
        pass
    rates: dict[str, float | None] = {"fp32": None, "bf16": None, "int8": None}
    for name, multiply in multiplies.items():
        try:
            multiply()
        except RuntimeError:
            continue
        rates[name] = 2 * side**3 / min(CpuTimer()(multiply) for _ in range(3))
    return rates


def _top1(run: Logits, images: torch.Tensor, batch_size: int) -> list[int]:
    with torch.inference_mode():
        return torch.cat([run(chunk).float() for chunk in images.split(batch_size)]).argmax(1).tolist()


def test_cpu_paths_side_by_side(benchmark, load_model, images_dir, bench_settings, tmp_path, paths_arch):
    quick = bench_settings["quick"]
    model, note = load_model(paths_arch, "cpu")
    labelled = read_labelled_folder(images_dir, model.categories)
    files = [image.path for image in labelled][: 10 if quick else None]
    labels = [image.index for image in labelled][: len(files)]
    calibration = files  # the labelled images, as predict calibrates by default (fewer in --quick)
    images = torch.stack([prepare(item, model.tensor_preprocess).tensor for item in collect_inputs(files)])
    batch_size = 4 if quick else 32
    batch = images[:batch_size].contiguous()
    forward, unavailable = _forward_contenders(model, calibration, tmp_path, images)
    rounds = 1 if quick else 5

    answers = {name: _top1(run, images, batch_size) for name, run in forward.items()}
    benchmark.group = f"cpu paths {paths_arch}"
    forward_seconds = interleaved(
        benchmark, {name: lambda run=run: run(batch) for name, run in forward.items()}, rounds
    )

    end_to_end: dict[str, Callable[[], Any]] = {"lab loop": lambda: _lab_loop(model, files)}
    predict_paths = {
        "predict fp32": {"precision": "fp32", "compile": False},
        "predict default": {},
        "predict compile": {"compile": True},
        "predict int8": {"precision": "int8", "calibration": calibration},
        "predict openvino int8": {"precision": "int8", "backend": "openvino", "calibration": calibration},
    }
    predict_answers: dict[str, list[int]] = {}

    def predict(name: str, options: dict[str, Any]) -> None:
        predictions = model.predict(files, batch_size=32, **options)
        predict_answers[name] = [prediction.indices[0] for prediction in predictions]

    for name, options in predict_paths.items():
        if ("int8" in name and "torch int8" in unavailable) or ("openvino" in name and "openvino" in unavailable):
            continue
        end_to_end[name] = lambda name=name, options=options: predict(name, options)
    e2e_seconds = in_turn(end_to_end, 1 if quick else 5)

    kernels = _kernel_rates(quick)
    peak, limits = machine_limits(kernels, torch.get_num_threads())
    default_precision = model.runner("auto").options.precision
    flops = 2 * model.meta["gflops"] * 1e9  # GFLOPS counts multiply-adds
    reference_answers = answers["torch fp32 eager"]
    paths: dict[str, dict[str, Any]] = {}
    for name in forward:
        seconds = statistics.median(forward_seconds[name])
        rate = flops * batch_size / seconds
        dtype = path_dtype(name, default_precision)
        paths[name] = {
            "forward_ms_per_image": 1000 * seconds / batch_size,
            "top1_agreement": _agreement(answers[name], reference_answers),
            "top1_accuracy": _agreement(answers[name], labels),
            "rate_tops": rate / 1e12,
            "limit_dtype": dtype,
            "share_of_limit": rate / limits[dtype],
        }
    e2e = {name: 1000 * statistics.median(values) / len(files) for name, values in e2e_seconds.items()}
    benchmark.extra_info.update(
        reference(model),
        kind="cpu_paths",
        device="cpu",
        cpu=cpu_name(),
        cpu_flags=cpu_flags(),
        threads=torch.get_num_threads(),
        batch_size=batch_size,
        images=len(files),
        default_precision=default_precision,
        omp_wait_policy=os.environ.get("OMP_WAIT_POLICY"),
        peak_tops={dtype: rate / 1e12 for dtype, rate in peak.rates.items()},
        peak_basis=peak.describe(),
        kernel_tops={dtype: rate / 1e12 if rate else None for dtype, rate in kernels.items()},
        limit_tops={dtype: rate / 1e12 for dtype, rate in limits.items()},
        paths=paths,
        end_to_end_ms_per_image=e2e,
        end_to_end_speedup={name: e2e["lab loop"] / value for name, value in e2e.items()},
        end_to_end_top1_agreement={
            name: _agreement(answer, predict_answers["predict fp32"]) for name, answer in predict_answers.items()
        },
        unavailable=unavailable,
    )
    if note:
        benchmark.extra_info["weights_note"] = RANDOM_WEIGHTS_NOTE
    if not note:  # real weights: OpenVINO fp32 runs the same network (random logits are near ties)
        assert paths.get("openvino fp32", paths["torch fp32 eager"])["top1_agreement"] == 1.0


def _agreement(answers: list[int], reference_answers: list[int]) -> float:
    return sum(a == b for a, b in zip(answers, reference_answers, strict=True)) / len(reference_answers)


def test_large_photos_decode_at_reduced_scale(
    benchmark, load_model, images_dir, bench_settings, tmp_path, monkeypatch
):
    """Phone-sized JPEGs (12 MP, made from the labelled images) classified end to end with full decoding and with
    the reduced-scale (DCT-domain) decoding ``predict`` uses; top-1 agreement on them and on the labelled images."""
    model, _ = load_model("efficientnet_lite0", "cpu")
    files = [str(path) for path in sorted(Path(images_dir).glob("*.JPEG"))][: 5 if bench_settings["quick"] else None]
    photos = []
    for number, file in enumerate(files):
        with Image.open(file) as image:
            scale = 3000 / min(image.size)  # a 4:3 photo's short side at 12 MP
            large = image.convert("RGB").resize((round(image.width * scale), round(image.height * scale)))
        photos.append(str(tmp_path / f"{number:02d}.jpg"))
        large.save(photos[-1], quality=90)

    def top1(inputs: list[str], margin: int) -> list[int]:
        monkeypatch.setenv("TOP5HUB_DRAFT_MARGIN", str(margin))
        return [p.indices[0] for p in model.predict(inputs, batch_size=32, precision="fp32", compile=False)]

    margin = DRAFT_MARGIN.get()
    answers: dict[str, list[int]] = {}  # the timed runs' own answers on the large photos

    def timed(name: str, margin: int) -> None:
        answers[name] = top1(photos, margin)

    contenders = {
        "full decode": lambda: timed("full decode", 0),
        "reduced-scale decode": lambda: timed("reduced-scale decode", margin),
    }
    benchmark.group = "large photos"
    seconds = interleaved(benchmark, contenders, 1 if bench_settings["quick"] else 3)
    benchmark.extra_info.update(
        kind="large_photos",
        arch="efficientnet_lite0",
        device="cpu",
        images=len(photos),
        photo_megapixels=round(large.width * large.height / 1e6, 1),  # the last one; all are 3000 on the short side
        draft_margin=margin,
        ms_per_image={name: 1000 * statistics.median(values) / len(photos) for name, values in seconds.items()},
        top1_agreement_large=_agreement(answers["reduced-scale decode"], answers["full decode"]),
        top1_agreement_labelled=_agreement(top1(files, margin), top1(files, 0)),
    )
    assert benchmark.extra_info["top1_agreement_large"] >= 0.96

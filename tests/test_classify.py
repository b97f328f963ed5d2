"""classify.py: the main job, streamed records, exit codes, kill-and-resume, and torchrun."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torchvision

pytestmark = [pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]


def _run(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "classify.py"), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
        **kwargs,
    )


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_main_job_prints_lab_lines_and_writes_results_and_figures(images_dir, labels, tmp_path):
    result = _run(
        str(images_dir),
        "--csv",
        str(tmp_path / "top5.csv"),
        "--save-figures",
        str(tmp_path / "figures"),
        "--workers",
        "1",
    )
    assert result.returncode == 0, result.stderr
    assert "  402 acoustic guitar: " in result.stdout
    rows = (tmp_path / "top5.csv").read_text().splitlines()
    assert len(rows) == len(labels) + 1
    assert len(list((tmp_path / "figures").glob("0*.png"))) == len(labels)  # one figure per image
    assert (tmp_path / "figures" / "contact_sheet.png").is_file()


def test_exit_status_tells_partial_failures_and_usage_errors(images_dir, tmp_path):
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    partial = _run(
        str(images_dir / "n03785016_moped.JPEG"), str(tmp_path / "broken.jpg"), "--jsonl", str(tmp_path / "out.jsonl")
    )
    assert partial.returncode == 1
    records = _records(tmp_path / "out.jsonl")
    assert [[t["label"] for t in r["topk"]][:1] for r in records] == [["moped"], []] and "not an image" in records[1][
        "error"
    ]
    assert _run("x.jpg", "--resume").returncode == 2
    unknown = _run("x.jpg", "--model", "resnet5O")
    assert unknown.returncode == 2 and "did you mean resnet50" in unknown.stderr


@pytest.fixture()
def many_images(images_dir, tmp_path) -> Path:
    """200 images: four copies of each labelled image under different names."""
    folder = tmp_path / "many"
    folder.mkdir()
    for file in sorted(images_dir.glob("*.JPEG")):
        for copy in range(4):
            shutil.copy(file, folder / f"{copy}_{file.name}")
    return folder


def test_killed_run_resumes_with_every_image_exactly_once(many_images, tmp_path):
    out = tmp_path / "top5.jsonl"
    command = [
        sys.executable,
        str(REPO / "classify.py"),
        str(many_images),
        "--jsonl",
        str(out),
        "--quiet",
        "--batch-size",
        "4",
        "--workers",
        "0",
    ]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and (not out.exists() or len(out.read_bytes().splitlines()) < 40):
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    written = len(out.read_bytes().splitlines())
    assert 40 <= written < 200, "the run was not stopped mid-way"
    with open(out, "a") as handle:
        handle.write('{"source": "half a rec')  # a record cut off by the kill
    resumed = subprocess.run([*command, "--resume"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    sources = [record["source"] for record in _records(out)]
    expected = sorted(str(path) for path in many_images.iterdir())
    assert len(sources) == len(set(sources)) == 200
    assert sorted(sources) == expected


def _torchrun(port_base: int) -> list[str]:
    """torchrun with two processes on a rendezvous port of this test process's own (parallel runs do not meet)."""
    port = str(port_base + os.getpid() % 1000)
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port", port]


@pytest.mark.torchrun
def test_torchrun_with_two_processes_matches_one_process(images_dir, labels, tmp_path):
    one = _run(
        str(images_dir), "--jsonl", str(tmp_path / "one.jsonl"), "--quiet", "--workers", "0", "--batch-size", "8"
    )
    assert one.returncode == 0, one.stderr
    torchrun = _torchrun(29500)
    two = subprocess.run(
        [
            *torchrun,
            str(REPO / "classify.py"),
            str(images_dir),
            "--jsonl",
            str(tmp_path / "two.jsonl"),
            "--quiet",
            "--workers",
            "0",
            "--batch-size",
            "8",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert two.returncode == 0, two.stderr[-3000:]
    single, double = _records(tmp_path / "one.jsonl"), _records(tmp_path / "two.jsonl")
    assert [r["source"] for r in double] == [r["source"] for r in single]  # each image once, in the same order
    assert len(double) == len(labels)
    for a, b in zip(single, double, strict=True):
        assert [t["label"] for t in a["topk"]] == [t["label"] for t in b["topk"]]
        assert [t["probability"] for t in a["topk"]] == pytest.approx([t["probability"] for t in b["topk"]], abs=1e-4)


@pytest.mark.torchrun
def test_torchrun_validate_matches_one_process(images_dir, tmp_path):
    from top5hub.cli import validate

    assert validate.main(["--images", str(images_dir), "--json", str(tmp_path / "one.json"), "--workers", "0"]) == 0
    torchrun = _torchrun(28500)
    two = subprocess.run(
        [
            *torchrun,
            str(REPO / "validate.py"),
            "--images",
            str(images_dir),
            "--json",
            str(tmp_path / "two.json"),
            "--workers",
            "0",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert two.returncode == 0, two.stderr[-3000:]
    single, double = (json.loads((tmp_path / name).read_text()) for name in ("one.json", "two.json"))
    assert (double["top1"], double["top5"], double["n"]) == (single["top1"], single["top5"], single["n"])
    assert [(r["file"], [t["label"] for t in r["topk"]]) for r in double["rows"]] == [
        (r["file"], [t["label"] for t in r["topk"]]) for r in single["rows"]
    ]


def test_explain_overlays_figures_and_embeddings_follow_record_order(images_dir, lite0, tmp_path):
    import numpy as np
    from PIL import Image

    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    inputs = [
        str(images_dir / "n03785016_moped.JPEG"),
        str(tmp_path / "broken.jpg"),
        str(images_dir / "n02676566_acoustic_guitar.JPEG"),
    ]
    common = [*inputs, "--jsonl", str(tmp_path / "out.jsonl"), "--precision", "fp32"]
    explained = _run(
        *common, "--explain", "--save-figures", str(tmp_path / "hot"), "--embeddings", str(tmp_path / "e.npy")
    )
    assert explained.returncode == 1, explained.stderr  # the broken file is recorded with its error
    assert _run(*common, "--save-figures", str(tmp_path / "plain")).returncode == 1
    hot, cold = sorted((tmp_path / "hot").glob("0*.png")), sorted((tmp_path / "plain").glob("0*.png"))
    assert [p.name for p in hot] == [p.name for p in cold] and len(hot) == 3
    assert not np.array_equal(np.asarray(Image.open(hot[0])), np.asarray(Image.open(cold[0])))  # heat drawn over
    rows = np.load(tmp_path / "e.npy")
    assert rows.shape == (3, 1280) and rows.dtype == np.float32
    assert np.isnan(rows[1]).all()
    expected = lite0.embed([inputs[0], inputs[2]]).numpy()
    assert np.allclose(rows[[0, 2]], expected, atol=1e-4)
    usage = _run(*inputs, "--explain")
    assert usage.returncode == 2 and "--explain draws heatmaps on the figures: add --save-figures DIR" in usage.stderr


def test_output_flags_name_their_format_both_at_once_and_figures_get_a_contact_sheet(images_dir, tmp_path):
    two = [str(images_dir / "n03785016_moped.JPEG"), str(images_dir / "n02676566_acoustic_guitar.JPEG")]
    outputs = ["--csv", str(tmp_path / "top5.txt"), "--jsonl", str(tmp_path / "top5.log")]
    result = _run(*two, *outputs, "--save-figures", str(tmp_path / "figures"), "--quiet")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "top5.txt").read_text().startswith("source,error,index_1,label_1")  # CSV, whatever suffix
    assert [r["topk"][0]["label"] for r in _records(tmp_path / "top5.log")] == ["moped", "acoustic guitar"]
    assert (tmp_path / "figures" / "contact_sheet.png").is_file()
    same = _run(*two, "--csv", str(tmp_path / "a"), "--jsonl", str(tmp_path / "a"))
    assert same.returncode == 2 and "name the same file" in same.stderr


def test_no_inputs_classifies_the_labelled_images(images_dir, tmp_path):
    folder = tmp_path / "labelled"
    folder.mkdir()
    shutil.copy(images_dir / "n03785016_moped.JPEG", folder)
    (folder / "labels.csv").write_text("file,label\nn03785016_moped.JPEG,moped\n")
    result = _run("--jsonl", str(tmp_path / "out.jsonl"), env={**os.environ, "TOP5HUB_IMAGES": str(folder)})
    assert result.returncode == 0, result.stderr
    assert f"classifying the labelled images in {folder}" in result.stderr
    assert [r["topk"][0]["label"] for r in _records(tmp_path / "out.jsonl")] == ["moped"]


def test_error_hints_use_the_command_lines_syntax(tmp_path):
    result = _run(str(tmp_path), "--model", "resnet50")
    assert result.returncode == 2 and "--weights-path" in result.stderr and "weights_path=" not in result.stderr


def test_options_only_the_model_can_refuse_are_usage_errors_before_outputs_open(images_dir, tmp_path):
    kept = tmp_path / "kept.jsonl"
    kept.write_text('{"source": "x", "error": null, "topk": []}\n')
    torch.save(torchvision.models.resnet18(num_classes=3).state_dict(), tmp_path / "three.pth")
    (tmp_path / "names.txt").write_text("a\nb\nc\n")
    image = str(images_dir / "n03785016_moped.JPEG")
    fine_tuned = ["--model", "resnet18", "--weights-path", str(tmp_path / "three.pth"), "--categories"]
    (tmp_path / "four.txt").write_text("a\nb\nc\nd\n")
    misfit = _run(image, *fine_tuned, str(tmp_path / "four.txt"), "--jsonl", str(kept))
    assert misfit.returncode == 2 and "has 3 classes but 4 categories were given" in misfit.stderr
    assert kept.read_text().startswith('{"source": "x"')  # the output was never opened
    # -k beyond the class count is clipped with a note (issue 19), as Hugging Face's pipeline does
    clipped = _run(image, *fine_tuned, str(tmp_path / "names.txt"), "-k", "5", "--jsonl", str(tmp_path / "k.jsonl"))
    assert clipped.returncode == 0 and "-k 5 is more than the model's 3 classes: giving 3" in clipped.stderr
    assert len(_records(tmp_path / "k.jsonl")[0]["topk"]) == 3
    npy = _run(image, "--embeddings", str(kept))
    assert npy.returncode == 2 and "is not a .npy file" in npy.stderr

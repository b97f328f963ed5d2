"""Hostile inputs, round two: no silent wrong answer, nothing destroyed, nothing hangs, errors that help."""

from __future__ import annotations

import io
import os
import struct
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import EpsImagePlugin, Image, ImageDraw

import top5hub.models as models
from top5hub.downloads import download
from top5hub.models import Prediction
from top5hub.models._weights import expected_size
from top5hub.transforms import IMAGE_SUFFIXES, ImageReadError, decode_bytes, fetch_url, read_file
from top5hub.validation import count_option

SHARK = "n01491361_tiger_shark.JPEG"
GUITAR = "n02676566_acoustic_guitar.JPEG"


def _png16(pixels: np.ndarray) -> bytes:
    """A 16-bit-per-channel RGB PNG (Pillow cannot write one), big-endian samples as the format wants."""
    height, width, _ = pixels.shape
    rows = b"".join(b"\x00" + pixels[row].astype(">u2").tobytes() for row in range(height))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def _top1(model, inputs) -> list[str | None]:
    return [p.top1 if p.ok else p.error for p in model.predict(inputs, precision="fp32")]


@pytest.fixture(scope="module")
def shark(images_dir) -> np.ndarray:
    return np.asarray(Image.open(images_dir / SHARK).convert("RGB"))


# Silent wrong answers: every bit depth and sample format gives the 8-bit answer.


def test_16_bit_rgb_png_gives_the_8_bit_answer_by_path_bytes_and_url(lite0, shark, tmp_path, server):
    data = _png16(shark.astype(np.uint16) * 257)
    (tmp_path / "shark16.png").write_bytes(data)
    server.routes["/shark16.png"] = (200, "image/png", data)
    eight = _top1(lite0, [shark])[0]
    assert eight == "tiger shark"
    assert _top1(lite0, [tmp_path / "shark16.png", data, f"{server.url}/shark16.png"]) == [eight] * 3
    assert decode_bytes(data, "x").dtype == torch.uint8


def test_32_bit_integer_and_float_tiffs_give_the_8_bit_answer(lite0, shark, tmp_path):
    gray = Image.fromarray(shark).convert("L")
    values = np.asarray(gray)
    renderings = {
        "int32-full.tif": Image.fromarray(values.astype(np.int32) * (2**23), mode="I"),
        "int32-16bit.tif": Image.fromarray(values.astype(np.int32) * 257, mode="I"),
        "float01.tif": Image.fromarray(values.astype(np.float32) / 255, mode="F"),
        "uint16-big-endian.tif": Image.fromarray((values.astype(np.uint16) * 257).astype(">u2")),
    }
    for name, image in renderings.items():
        image.save(tmp_path / name)
    reference = read_file(str(tmp_path / "float01.tif"))
    expected = _top1(lite0, [gray])[0]
    assert _top1(lite0, [tmp_path / name for name in renderings]) == [expected] * len(renderings)
    assert (reference[0].int() - torch.from_numpy(values.copy()).int()).abs().max() <= 1


def test_float_tensors_outside_the_contract_are_refused_with_the_fix(lite0, shark):
    unit = torch.from_numpy(shark.copy()).permute(2, 0, 1).float() / 255  # ToTensor without Normalize
    resized = torch.nn.functional.interpolate(unit[None], size=(224, 224))[0]
    cases = {
        "unnormalised": (resized, "not normalised"),
        "unresized": (lite0.preprocess(Image.fromarray(shark))[:, :200, :], "expected (3, 224, 224)"),
        "3x1x1": (torch.zeros(3, 1, 1), "expected (3, 224, 224)"),
    }
    predictions = lite0.predict([tensor for tensor, _ in cases.values()] + [lite0.preprocess(Image.fromarray(shark))])
    for prediction, (name, (_, words)) in zip(predictions, cases.items(), strict=False):
        assert not prediction.ok and words in prediction.error and "model.preprocess" in prediction.error, name
    assert predictions[-1].top1 == "tiger shark"


def test_a_bf16_converted_model_refuses_to_pretend_fp32(images_dir):
    model = models.get_model("efficientnet_lite0").to_precision("bf16")
    with pytest.raises(ValueError, match=r"converted to bf16.*Load the model again"):
        model.predict(images_dir / SHARK, precision="fp32")
    assert model.predict(images_dir / SHARK)[0].top1 == "tiger shark"  # auto runs its own precision


# Python API: integers of any type, never bools or floats; max_pixels=None.


def test_integer_options_take_numpy_integers_and_refuse_bools_and_floats(lite0, images_dir):
    image = images_dir / SHARK
    assert len(lite0.predict(image, k=np.int64(3), batch_size=np.int32(2))[0].labels) == 3
    for options in ({"k": True}, {"batch_size": 2.5}, {"k": 2.0}, {"workers": -1}, {"batch_size": np.bool_(True)}):
        with pytest.raises(ValueError, match="must be an integer"):
            lite0.predict(image, **options)
    assert lite0.predict(image, max_pixels=None)[0].top1 == "tiger shark"
    assert count_option("k", np.uint8(5)) == 5


@pytest.mark.slow
def test_malformed_settings_never_break_import_and_are_reported(monkeypatch):
    import subprocess
    import sys

    from top5hub.errors import SettingsError
    from top5hub.settings import URL_MAX_BYTES, check_settings

    monkeypatch.setenv("TOP5HUB_URL_MAX_BYTES", "12MB")
    imported = subprocess.run(
        [sys.executable, "-c", "import top5hub.models"], env=os.environ, capture_output=True, cwd=REPO / "src"
    )
    assert imported.returncode == 0, imported.stderr
    with pytest.raises(SettingsError, match=r"TOP5HUB_URL_MAX_BYTES='12MB' is not valid: it must be an integer"):
        check_settings()
    with pytest.raises(SettingsError, match="TOP5HUB_URL_MAX_BYTES"):
        URL_MAX_BYTES.get()
    monkeypatch.setenv("TOP5HUB_URL_MAX_BYTES", "12")
    assert URL_MAX_BYTES.get() == 12  # read when used: a later change counts
    check_settings()


# Hangs and memory.


def test_fifos_devices_and_oversized_files_are_refused_without_reading(lite0, images_dir, tmp_path, monkeypatch):
    folder = tmp_path / "photos"
    folder.mkdir()
    os.mkfifo(folder / "b.jpg")
    (folder / "z.jpg").symlink_to("/dev/zero")
    (folder / "c.jpg").write_bytes((images_dir / GUITAR).read_bytes())
    results = {Path(p.source).name: p for p in lite0.predict(folder)}
    assert "not a regular file (a FIFO)" in results["b.jpg"].error
    assert "not a regular file (a character device)" in results["z.jpg"].error
    assert results["c.jpg"].top1 == "acoustic guitar"
    monkeypatch.setenv("TOP5HUB_MAX_FILE_BYTES", "1000")
    assert "larger than the 1000 byte cap" in lite0.predict(folder / "c.jpg")[0].error
    assert "TOP5HUB_MAX_FILE_BYTES" in lite0.predict(io.BytesIO(b"\xff" * 2000))[0].error


def test_junk_is_refused_from_its_header_before_the_file_is_read(tmp_path):
    junk = tmp_path / "junk.jpg"
    with open(junk, "wb") as handle:
        handle.truncate(64 * 2**20)  # 64 MB of zeros
    tracemalloc.start()
    with pytest.raises(ImageReadError, match="not an image"):
        read_file(str(junk))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 4 * 2**20


def test_results_of_in_memory_inputs_keep_a_small_jpeg_not_pixels(lite0, images_dir):
    data = (images_dir / SHARK).read_bytes()
    prediction = lite0.predict([data])[0]
    assert isinstance(prediction.thumbnail_jpeg, bytes) and len(prediction.thumbnail_jpeg) < 60_000
    assert max(prediction.thumbnail.size) == 320 and prediction.render().size == (800, 320)


def test_the_figure_of_a_very_long_source_measures_little_text(monkeypatch):
    calls = []
    measure = ImageDraw.ImageDraw.textlength
    monkeypatch.setattr(
        ImageDraw.ImageDraw,
        "textlength",
        lambda self, text, *a, **k: calls.append(len(text)) or measure(self, text, *a, **k),
    )
    source = "https://example.org/" + "a" * 16_000 + ".jpg?signature=" + "b" * 4_000
    Prediction(source, [1], ["goldfish"], [0.9]).render()
    Prediction.failed(source, f"{source}: could not be fetched: timed out").render()
    assert len(calls) < 200 and sum(calls) < 200_000


# Files and folders.


def test_hidden_files_are_skipped_and_every_decodable_suffix_is_listed(lite0, images_dir, tmp_path):
    (tmp_path / "._guitar.jpg").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "x.jpg").write_bytes(b"junk")
    (tmp_path / "guitar.jpg").write_bytes((images_dir / GUITAR).read_bytes())
    Image.open(images_dir / GUITAR).save(tmp_path / "guitar.avif")
    predictions = lite0.predict(tmp_path)
    assert sorted(Path(p.source).name for p in predictions) == ["guitar.avif", "guitar.jpg"]
    assert all(p.top1 == "acoustic guitar" for p in predictions)
    assert ".avif" in IMAGE_SUFFIXES and ".eps" not in IMAGE_SUFFIXES and ".pdf" not in IMAGE_SUFFIXES


def test_eps_never_reaches_pillows_postscript_plugin(lite0, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the EPS plugin was used")

    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "_open", refuse)
    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", refuse)
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nnewpath 0 0 moveto 10 10 lineto stroke\n%%EOF\n"
    prediction = lite0.predict(eps)[0]
    assert "unsupported format: it is a PostScript file" in prediction.error and "JPEG" in prediction.error


def test_figures_replace_a_planted_symlink_instead_of_writing_through_it(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / "figures").mkdir()
    planted = tmp_path / "figures" / "0000_a.png"
    planted.symlink_to(victim)
    models.Predictions([Prediction("a.jpg", [1], ["goldfish"], [0.9])]).save(tmp_path / "figures")
    assert victim.read_text() == "precious"
    assert not planted.is_symlink() and Image.open(planted).size == (800, 320)
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == ["0000_a.png"]


# URLs and downloads, against a local server on 127.0.0.1.


@pytest.mark.parametrize("path", ["/drip.jpg", "/drip-headers.jpg"])
def test_url_deadline_is_total_not_per_read(server, path):
    # Each byte comes well within a per-read timeout; left alone the server would finish after 20 s.
    with pytest.raises(ImageReadError, match="timed out"):
        fetch_url(server.url + path, timeout=1.0)


def test_weights_downloads_have_a_deadline_and_a_size_cap(server, tmp_path):
    with pytest.raises(OSError, match="timed out"):
        download(f"{server.url}/drip/x.pth", tmp_path / "x.pth", deadline=1.0)
    server.routes["/big.pth"] = (200, "application/octet-stream", b"\x00" * 5000)
    with pytest.raises(OSError, match="larger than the 1000 byte cap"):
        download(f"{server.url}/big.pth", tmp_path / "big.pth", max_bytes=1000)
    assert not list(tmp_path.iterdir())
    lite = models.resolve_weights("resnet50")
    assert 97 * 2**20 < expected_size(lite) < 101 * 2**20


def test_urls_are_quoted_and_secrets_redacted(lite0, server):
    host = server.url.removeprefix("http://")
    predictions = lite0.predict([f"{server.url}/my guitar é.jpg", f"http://ann:s3cret@{host}/missing.jpg"])
    assert predictions[0].top1 == "acoustic guitar"
    assert "s3cret" not in predictions[1].error and "s3cret" not in predictions[1].source
    assert "ann:***@" in predictions[1].error and "HTTP 404" in predictions[1].error
    assert ("/missing.jpg", "Basic YW5uOnMzY3JldA==") in server.seen


def test_credentials_never_follow_a_redirect(lite0, server):
    host = server.url.removeprefix("http://")
    assert lite0.predict(f"http://ann:s3cret@{host}/to-guitar")[0].top1 == "acoustic guitar"
    assert ("/to-guitar", "Basic YW5uOnMzY3JldA==") in server.seen
    assert ("/guitar.jpg", None) in server.seen and ("/guitar.jpg", "Basic YW5uOnMzY3JldA==") not in server.seen


def test_redirects_only_to_http_on_known_ports_and_only_a_few(lite0, server):
    predictions = lite0.predict(
        [f"{server.url}/to-guitar", f"{server.url}/to-ftp", f"{server.url}/to-port", f"{server.url}/loop0"]
    )
    assert predictions[0].top1 == "acoustic guitar"
    assert "refused a redirect" in predictions[1].error and "ftp://" in predictions[1].error
    assert "refused a redirect" in predictions[2].error
    assert not predictions[3].ok and "HTTP 302" in predictions[3].error
    assert not any(path.startswith("/loop7") for path, _ in server.seen)


# The command-line tools: outputs are never inputs, never another kind of file, and have one writer.

REPO = Path(__file__).resolve().parents[1]


def _classify(capsys, *args: str) -> tuple[int, str, str]:
    import classify

    code = classify.main([*args, "--workers", "0", "--quiet"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _jsonl(path: Path) -> list[dict]:
    import json

    return [json.loads(line) for line in path.read_text().split("\n") if line]


@pytest.fixture()
def photos(images_dir, tmp_path) -> Path:
    folder = tmp_path / "imgs"
    folder.mkdir()
    for name in (SHARK, GUITAR, "n03785016_moped.JPEG"):
        (folder / name).write_bytes((images_dir / name).read_bytes())
    return folder


@pytest.mark.parametrize("resume", [False, True])
def test_an_input_is_never_opened_as_the_output(capsys, photos, resume):
    image = photos / SHARK
    before = image.read_bytes()
    code, _, err = _classify(capsys, str(photos), "--jsonl", str(image), *(["--resume"] if resume else []))
    assert code == 2 and image.read_bytes() == before
    assert "is not a classify.py JSONL file" in err and "refusing to overwrite" in err and len(err.splitlines()) == 1


def test_an_output_of_another_model_or_k_is_refused_before_appending(capsys, photos, tmp_path):
    out = tmp_path / "top5.csv"
    assert _classify(capsys, str(photos / SHARK), "--csv", str(out), "-k", "3")[0] == 0
    before = out.read_bytes()
    code, _, err = _classify(capsys, str(photos), "--csv", str(out), "-k", "5", "--resume")
    assert code == 2 and "resume with the same -k" in err and out.read_bytes() == before
    jsonl = tmp_path / "top5.jsonl"
    assert _classify(capsys, str(photos / SHARK), "--jsonl", str(jsonl))[0] == 0
    code, _, err = _classify(capsys, str(photos), "--jsonl", str(jsonl), "--resume", "--model", "efficientnet_lite1")
    assert code == 2 and "not efficientnet_lite1" in err and "--model" in err and len(_jsonl(jsonl)) == 1


def test_a_second_writer_is_refused_and_told_who_holds_the_output(capsys, photos, tmp_path):
    from top5hub.cli.outputs import OutputLock

    out = tmp_path / "top5.jsonl"
    holder = OutputLock(out)
    holder.acquire(out)
    try:
        code, _, err = _classify(capsys, str(photos), "--jsonl", str(out))
    finally:
        holder.release()
    assert code == 2 and f"is being written by classify.py pid {os.getpid()}" in err and not out.exists()
    assert _classify(capsys, str(photos), "--jsonl", str(out))[0] == 0


def test_a_record_means_its_figure_exists_even_when_the_disk_fills(capsys, photos, tmp_path, monkeypatch):
    out, figures = tmp_path / "top5.jsonl", tmp_path / "figures"
    real_save = Prediction.save_figure
    saved = []

    def fill_up(self, path):
        if len(saved) == 2:
            raise OSError(28, "No space left on device")
        saved.append(path)
        return real_save(self, path)

    monkeypatch.setattr(Prediction, "save_figure", fill_up)
    code, _, err = _classify(capsys, str(photos), "--jsonl", str(out), "--save-figures", str(figures))
    assert code == 1 and "No space left on device" in err and "--resume" in err
    assert len(_jsonl(out)) == 2 == len(list(figures.glob("*.png")))
    monkeypatch.setattr(Prediction, "save_figure", real_save)
    assert _classify(capsys, str(photos), "--jsonl", str(out), "--save-figures", str(figures), "--resume")[0] == 0
    assert len(_jsonl(out)) == 3 == len(list(figures.glob("*.png")))


def test_resume_survives_bad_lines_and_retries_failures(capsys, photos, tmp_path, monkeypatch):
    out = tmp_path / "top5.jsonl"
    monkeypatch.chdir(tmp_path)
    assert _classify(capsys, "imgs", "--jsonl", str(out))[0] == 0
    lines = out.read_text().split("\n")[:-1]
    failed = lines[2].replace('"error": null', '"error": "imgs/x: was unreadable"')
    out.write_text("\n".join([lines[0], '{"source": "imgs/z.jpg", "to', '{"error": null, "topk": []}', failed]) + "\n")
    code, _, err = _classify(capsys, "./imgs", "--jsonl", str(out), "--resume")
    assert code == 0
    assert "2 unreadable line(s) (2, 3)" in err and "1 image(s) recorded with an error are classified again" in err
    records = _jsonl(out)
    names = sorted(Path(r["source"]).name for r in records)
    assert names == sorted(p.name for p in photos.iterdir()) and all(r["error"] is None for r in records)
    assert len((tmp_path / "top5.jsonl.rejected").read_text().splitlines()) == 2
    assert _classify(capsys, "./imgs/", "--jsonl", str(out), "--resume")[0] == 0 and len(_jsonl(out)) == 3


def test_resume_of_a_csv_with_awkward_file_names(capsys, photos, tmp_path):
    import csv

    for weird in ("form\ffeed.jpg", "line\u2028sep.jpg", "new\nline.jpg"):
        (photos / weird).write_bytes((photos / GUITAR).read_bytes())
    out = tmp_path / "top5.csv"
    assert _classify(capsys, str(photos), "--csv", str(out))[0] == 0
    assert _classify(capsys, str(photos), "--csv", str(out), "--resume")[0] == 0
    with open(out, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert len(rows) == 1 + 6 and len({row[0] for row in rows[1:]}) == 6
    assert {len(row) for row in rows} == {len(rows[0])} and rows[0][-1] == "model"


@pytest.mark.parametrize(
    "args,words",
    [
        (["--batch-size", "0"], "--batch-size must be at least 1"),
        (["--workers", "-1"], "--workers must be 0 or more"),
        (["--precision", "fp16"], "needs a CUDA device"),
        (["--device", "foo"], "is not a device"),
        (["--model", "resnet5O"], "did you mean resnet50"),
        (["-k", "x"], "invalid int value"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2_before_any_output(capsys, photos, tmp_path, args, words):
    out = tmp_path / "top5.jsonl"
    out.write_text('{"source": "kept", "error": null, "topk": []}\n')
    import classify

    with pytest.raises(SystemExit) if args[0] == "-k" else _no_exit() as stopped:
        code = classify.main([str(photos), "--jsonl", str(out), *args])
    err = capsys.readouterr().err
    assert (stopped.value.code if stopped else code) == 2
    assert words in err and len(err.strip().splitlines()) == 1
    assert "kept" in out.read_text()


class _no_exit:
    value = None

    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def test_outputs_that_cannot_be_written_are_usage_errors(capsys, photos, tmp_path):
    (tmp_path / "afile").write_text("x")
    cases = {
        "--jsonl": (str(tmp_path), "is a directory"),
        "--csv": (str(tmp_path / "afile" / "top5.csv"), "cannot create the folder"),
        "--save-figures": (str(tmp_path / "afile"), "is a file: name a folder"),
    }
    for option, (value, words) in cases.items():
        code, _, err = _classify(capsys, str(photos), option, value)
        assert code == 2 and words in err and len(err.strip().splitlines()) == 1, (option, err)


def _script(*args: str, env: dict | None = None, **kwargs):
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
        env={**os.environ, **(env or {})},
        **kwargs,
    )


@pytest.mark.slow
def test_malformed_environment_variables_stop_both_scripts_with_one_line(images_dir, tmp_path):
    env = {"TOP5HUB_MAX_PIXELS": "lots", "TOP5HUB_URL_TIMEOUT": "-3"}
    one = _script("classify.py", str(images_dir / SHARK), "--jsonl", str(tmp_path / "a.jsonl"), env=env)
    two = _script("validate.py", "--images", str(images_dir), "--json", str(tmp_path / "v.json"), env=env)
    for result in (one, two):
        assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "TOP5HUB_MAX_PIXELS='lots' is not valid" in result.stderr and "TOP5HUB_URL_TIMEOUT" in result.stderr
    assert not (tmp_path / "a.jsonl").exists() and not (tmp_path / "v.json").exists()


@pytest.mark.slow
def test_pipes_and_devices_are_outputs_too(images_dir):
    piped = _script("classify.py", str(images_dir / SHARK), "--jsonl", "/dev/stdout", "--quiet", "--workers", "0")
    assert piped.returncode == 0, piped.stderr
    assert '"label": "tiger shark"' in piped.stdout
    null = _script("classify.py", str(images_dir / SHARK), "--csv", "/dev/null", "--quiet", "--workers", "0")
    assert null.returncode == 0, null.stderr


def test_validate_checks_its_outputs_before_the_work_and_never_overwrites_an_input(images_dir, tmp_path, capsys):
    from top5hub.cli import validate

    labels = (images_dir / "labels.csv").read_bytes()
    (tmp_path / "afile").write_text("x")
    for args, words in [
        (["--csv", str(images_dir / "labels.csv")], "is not a validate.py CSV file"),
        (["--json", str(images_dir / SHARK)], "is not a validate.py JSON file"),
        (["--json", str(tmp_path / "afile" / "val.json")], "cannot create the folder"),
        (["--batch-size", "0"], "--batch-size must be at least 1"),
    ]:
        assert validate.main(["--images", str(images_dir), *args]) == 2
        err = capsys.readouterr().err
        assert words in err and len(err.strip().splitlines()) == 1, err
    assert (images_dir / "labels.csv").read_bytes() == labels


def _rank(rank: int, port: int, inputs: list[str], results) -> None:
    import torch.distributed as dist

    from top5hub.cli.distributed import Shard, listed_once

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        listed = listed_once(Shard(rank, 2), inputs, skip=set())
        results.put((rank, [item.source for item in listed]))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.torchrun
def test_under_torchrun_rank_0_lists_the_inputs_for_every_rank(photos):
    import multiprocessing

    context = multiprocessing.get_context("fork")
    results = context.Queue()
    port = 29000 + os.getpid() % 1000
    # Rank 1 sees a folder that changed since (an extra file): it must still classify rank 0's list.
    (photos / "late.jpg").write_bytes((photos / GUITAR).read_bytes())
    ranks = [
        context.Process(target=_rank, args=(0, port, [str(photos / SHARK), str(photos / GUITAR)], results)),
        context.Process(target=_rank, args=(1, port, [str(photos)], results)),
    ]
    for process in ranks:
        process.start()
    for process in ranks:
        process.join(120)
    lists = dict(results.get(timeout=10) for _ in ranks)
    assert lists[0] == lists[1] == [str(photos / SHARK), str(photos / GUITAR)]

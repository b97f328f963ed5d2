"""Hostile inputs, round three (issue 19, parts 3 to 5): no late error destroys earlier results, streams stay
streams, what we write is safe to open, downloads are bounded by the manifest, inputs keep their contracts."""

from __future__ import annotations

import contextlib
import csv
import errno
import http.server
import io
import json
import os
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

import top5hub.models as models
from top5hub.cli import classify, samples, validate
from top5hub.errors import LabelsError, NonFiniteOutputError, OptionError, OutputError, UsageError, WeightsFileError
from top5hub.files import write_new_file
from top5hub.models import Evaluation, Prediction, Predictions, csv_cell, csv_value
from top5hub.transforms import ImageReadError, LabelledImage, decode_bytes, read_labelled_folder

SHARK = "n01491361_tiger_shark.JPEG"
GUITAR = "n02676566_acoustic_guitar.JPEG"
KEPT = '{"source": "kept", "error": null, "topk": []}\n'
FORMULAS = ['=HYPERLINK("http://x")', "+1+2", "-3", "@SUM(A1)", "\tx", "\rx", "'quoted"]


def _classify(capsys, *args: str) -> tuple[int, str]:
    code = classify.main([*args, "--workers", "0", "--quiet"])
    return code, capsys.readouterr().err


def _one_line(err: str) -> bool:
    return len(err.strip().splitlines()) == 1


def _strict_json(text: str):
    def refuse(token: str):
        raise AssertionError(f"not JSON: {token}")

    return json.loads(text, parse_constant=refuse)


def _bounded(call, seconds: float = 10.0):
    """Run ``call`` in a thread; fail (instead of hanging the suite) if it is not done in ``seconds``."""
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as error:
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    return thread.is_alive(), outcome


def _unblock(fifo: Path) -> None:
    """Let a thread stuck opening ``fifo`` for reading go on (a writer appears and leaves)."""
    with contextlib.suppress(OSError):
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


@pytest.fixture()
def photos(images_dir, tmp_path) -> Path:
    folder = tmp_path / "imgs"
    folder.mkdir()
    for name in (SHARK, GUITAR):
        (folder / name).write_bytes((images_dir / name).read_bytes())
    return folder


# 3. No late error destroys earlier results.


@pytest.mark.parametrize(
    "args,env,words",
    [
        (["--backend", "openvino", "--compile"], {}, "leave --compile off"),
        ([], {"TOP5HUB_DECODE_THREADS": "abc"}, "TOP5HUB_DECODE_THREADS='abc' is not valid"),
        ([], {"TOP5HUB_DECODE_THREADS": "-1"}, "TOP5HUB_DECODE_THREADS='-1' is not valid"),
        (["--save-figures", "/sys/top5hub-figures"], {}, "--save-figures /sys/top5hub-figures cannot be written"),
        (["--embeddings", "/sys/top5hub.npy"], {}, "/sys/top5hub.npy cannot be written"),
    ],
)
def test_failures_that_came_late_are_usage_errors_before_any_output_opens(
    capsys, monkeypatch, photos, tmp_path, args, env, words
):
    if any(arg.startswith("/sys/") for arg in args) and not Path("/sys").is_dir():
        pytest.skip("needs Linux's /sys, a place not even root can create files in")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    jsonl, csv_out = tmp_path / "top5.jsonl", tmp_path / "top5.csv"
    jsonl.write_text(KEPT)
    csv_out.write_bytes(b"source,error\r\nkept,\r\n")
    code, err = _classify(capsys, str(photos), "--jsonl", str(jsonl), "--csv", str(csv_out), *args)
    assert code == 2 and words in err and _one_line(err), err
    assert jsonl.read_text() == KEPT and csv_out.read_bytes() == b"source,error\r\nkept,\r\n"


def test_write_new_file_writes_streams_and_refuses_to_replace_devices(tmp_path):
    fifo = tmp_path / "figure.png"
    os.mkfifo(fifo)
    hung, outcome = _bounded(lambda: write_new_file(fifo, lambda handle: handle.write(b"x")), 5)
    assert not hung and isinstance(outcome.get("error"), OutputError) and "nobody reads" in str(outcome["error"])
    assert stat.S_ISFIFO(fifo.lstat().st_mode)  # never replaced by a file
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    for _ in range(200):  # the reader's open() must come first: without it, writing is refused at once
        try:
            write_new_file(fifo, lambda handle: handle.write(b"through the FIFO"))
            break
        except OutputError:
            time.sleep(0.02)
    reader.join(5)
    assert received == [b"through the FIFO"] and stat.S_ISFIFO(fifo.lstat().st_mode)
    write_new_file(Path("/dev/null"), lambda handle: handle.write(b"x"))
    assert stat.S_ISCHR(os.lstat("/dev/null").st_mode)
    block = tmp_path / "disk"
    try:
        os.mknod(block, 0o600 | stat.S_IFBLK, os.makedev(7, 250))
    except (OSError, AttributeError):
        return  # creating a device node needs privileges this run lacks
    with pytest.raises(OutputError, match="is a block device: refusing"):
        write_new_file(block, lambda handle: handle.write(b"x"))
    assert stat.S_ISBLK(block.lstat().st_mode)


def test_embeddings_to_a_fifo_or_dev_null_stay_streams(capsys, images_dir, tmp_path):
    fifo = tmp_path / "features.npy"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    code, err = _classify(capsys, str(images_dir / SHARK), "--embeddings", str(fifo))
    reader.join(30)
    assert code == 0, err
    assert stat.S_ISFIFO(fifo.lstat().st_mode) and np.load(io.BytesIO(received[0])).shape == (1, 1280)
    code, err = _classify(capsys, str(images_dir / SHARK), "--embeddings", "/dev/null")
    assert code == 0, err
    assert stat.S_ISCHR(os.lstat("/dev/null").st_mode)


def test_one_function_neutralises_formula_cells_and_reading_back_undoes_it(tmp_path):
    for text in [*FORMULAS, "plain.jpg", "", "0.500000"]:
        cell = csv_cell(text)
        assert csv_value(cell) == text
        assert cell == text or (cell == "'" + text and text[:1] in "=+-@\t\r'")
    assert csv_cell(3) == "3" and csv_cell(0.25) == "0.25"
    predictions = Predictions([Prediction(name, [1], ["=cmd|' /C calc'!A0"], [0.9]) for name in FORMULAS])
    with open(predictions.to_csv(tmp_path / "p.csv"), newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))[1:]
    assert [row[0] for row in rows] == ["'" + name for name in FORMULAS]
    assert all(row[3] == "'=cmd|' /C calc'!A0" for row in rows)
    evaluation = Evaluation("m", "w", "imgs")
    evaluation.rows.append(
        {
            "file": "@evil.jpg",
            "true_index": 1,
            "true_label": "-x",
            "top1_correct": True,
            "top5_correct": True,
            "topk": [{"index": 1, "label": "+y", "probability": 0.5}],
        }
    )
    evaluation.to_csv(tmp_path / "e.csv")
    with open(tmp_path / "e.csv", newline="", encoding="utf-8") as handle:
        row = list(csv.reader(handle))[1]
    assert row[0] == "'@evil.jpg" and row[2] == "'-x" and row[6] == "'+y"


def test_classify_and_validate_csvs_neutralise_names_and_resume_reads_them_back(
    capsys, images_dir, tmp_path, monkeypatch
):
    folder = tmp_path / "=labelled" / "tiger shark"
    folder.mkdir(parents=True)
    names = ["=HYPERLINK(1).jpg", "-x.jpg", "@y.jpg", "'q.jpg"]
    for name in names:
        (folder / name).write_bytes((images_dir / SHARK).read_bytes())
    monkeypatch.chdir(folder)  # relative sources: the cells start as the names do
    out = tmp_path / "top5.csv"
    options = ["--csv", str(out), "--workers", "0", "--quiet"]
    assert classify.main([*options, "--", *names]) == 0  # "--": names starting with "-" are inputs
    assert classify.main([*options, "--resume", "--", *names]) == 0  # read back: nothing classified twice
    with open(out, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))[1:]
    assert sorted(row[0] for row in rows) == sorted("'" + name for name in names)
    assert all(row[-1].startswith("efficientnet_lite0") for row in rows)
    # validate's rows hold absolute paths, and the labels: a fine-tuned model's own may start like formulas
    (tmp_path / "names.txt").write_text("=cmd\n+x\n@y\n")
    folder.rename(folder.with_name("=cmd"))
    fine_tuned = _fine_tuned_args(_three_classes(tmp_path, 0), tmp_path / "names.txt")
    assert validate.main([str(tmp_path / "=labelled"), *fine_tuned, "--csv", str(tmp_path / "v.csv"), "--quiet"]) == 0
    with open(tmp_path / "v.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert len(rows) == 5  # validate's k=5, clipped to the 3 classes: 3 ranks a row
    assert all(row[3] == "'=cmd" and sorted(row[7::3]) == ["'+x", "'=cmd", "'@y"] for row in rows[1:])


def _nan_copy(model_name: str = "efficientnet_lite0") -> models.Top5Classifier:
    model = models.get_model(model_name)
    with torch.no_grad():
        next(model.net.parameters()).fill_(float("nan"))
    return model


def test_nan_scores_are_an_error_naming_the_model_never_a_probability(images_dir, tmp_path):
    model = _nan_copy()
    predictions = model.predict([images_dir / SHARK, images_dir / GUITAR], precision="fp32")
    assert all(not p.ok and "efficientnet_lite0" in p.error and "NaN or infinite" in p.error for p in predictions)
    _strict_json(predictions.to_json(tmp_path / "p.json"))
    _strict_json((tmp_path / "p.json").read_text())
    with pytest.raises(NonFiniteOutputError, match="efficientnet_lite0"):
        model.decode(torch.tensor([[0.0, float("nan")] + [0.0] * 998]))


def test_weights_files_holding_nan_are_refused_naming_the_tensor(capsys, images_dir, tmp_path):
    state = torchvision.models.mobilenet_v3_small(num_classes=3).state_dict()
    state["classifier.3.bias"][1] = float("nan")
    torch.save(state, tmp_path / "nan.pth")
    (tmp_path / "names.txt").write_text("a\nb\nc\n")
    with pytest.raises(WeightsFileError, match=r"nan\.pth: the tensor classifier\.3\.bias holds NaN"):
        models.get_model("mobilenet_v3_small", weights_path=tmp_path / "nan.pth", categories=tmp_path / "names.txt")
    out = tmp_path / "out.jsonl"
    out.write_text(KEPT)
    code, err = _classify(
        capsys,
        str(images_dir / SHARK),
        "--model",
        "mobilenet_v3_small",
        "--weights-path",
        str(tmp_path / "nan.pth"),
        "--categories",
        str(tmp_path / "names.txt"),
        "--jsonl",
        str(out),
    )
    assert code == 2 and "holds NaN" in err and _one_line(err) and out.read_text() == KEPT


def test_a_folder_named_like_an_image_in_a_class_folder_is_skipped_with_a_note(lite0, images_dir, tmp_path, caplog):
    shark = tmp_path / "labelled" / "tiger shark"
    (shark / "x.jpg").mkdir(parents=True)
    for name in ("a.jpg", "b.jpg"):
        (shark / "x.jpg" / name).write_bytes((images_dir / SHARK).read_bytes())
    (shark / "c.jpg").write_bytes((images_dir / SHARK).read_bytes())
    labelled = read_labelled_folder(tmp_path / "labelled", lite0.categories)
    assert [Path(image.path).name for image in labelled] == ["c.jpg"]
    assert "x.jpg" in caplog.text and "folder named like an image" in caplog.text
    assert validate.main([str(tmp_path / "labelled"), "--json", str(tmp_path / "v.json"), "--quiet"]) == 0
    result = _strict_json((tmp_path / "v.json").read_text())
    assert result["n"] == 1 and result["top1"] == 100.0
    # a labelled path that became a folder after listing is that one image's error, never its folder's images
    inputs = models.labelled_inputs([*labelled, LabelledImage(str(shark / "x.jpg"), 3, "tiger shark")])
    predictions = lite0.predict(inputs)
    assert len(predictions) == 2 and "is a directory" in predictions[1].error


def test_names_with_any_bytes_survive_every_output(capsys, images_dir, tmp_path):
    folder = tmp_path / "tiger shark"
    folder.mkdir()
    odd = [os.fsdecode(b"\xff\xfe.jpg"), "new\"\nline's.jpg", "tab\tand\u2028sep.jpg"]
    for name in odd:
        (folder / name).write_bytes((images_dir / SHARK).read_bytes())
    jsonl, out_csv, figures = tmp_path / "o.jsonl", tmp_path / "o.csv", tmp_path / "figures"
    code, err = _classify(
        capsys, str(folder), "--jsonl", str(jsonl), "--csv", str(out_csv), "--save-figures", str(figures)
    )
    assert code == 0, err
    records = [_strict_json(line) for line in jsonl.read_text(encoding="utf-8").split("\n") if line]
    assert sorted(Path(r["source"]).name for r in records) == sorted(odd)
    with open(out_csv, newline="", encoding="utf-8", errors="surrogateescape") as handle:
        assert sorted(Path(csv_value(row[0])).name for row in list(csv.reader(handle))[1:]) == sorted(odd)
    texts = [Image.open(path).text["source"] for path in sorted(figures.glob("0*.png"))]
    assert len(texts) == 3 and any("\\xff\\xfe.jpg" in text for text in texts)
    assert all("\n" not in text for text in texts) and any("new\"\\nline's.jpg" in text for text in texts)
    for option in ("--jsonl", "--csv"):  # resume recognises every name: nothing is classified twice
        path = jsonl if option == "--jsonl" else out_csv
        assert _classify(capsys, str(folder), option, str(path), "--resume")[0] == 0
    assert len([line for line in jsonl.read_text(encoding="utf-8").split("\n") if line]) == 3
    html = Predictions([Prediction(str(folder / odd[0]), [3], ["tiger shark"], [0.9])])._repr_html_()
    assert "\\xff\\xfe.jpg" in html and html.encode("utf-8")
    labelled = tmp_path / "labelled"
    labelled.mkdir()
    folder.rename(labelled / "tiger shark")
    args = [str(labelled), "--json", str(tmp_path / "v.json"), "--csv", str(tmp_path / "v.csv"), "--quiet"]
    assert validate.main(args) == 0
    assert _strict_json((tmp_path / "v.json").read_text())["n"] == 3


# 4. Downloads bounded by what the manifest knows.


class _Mirror(http.server.BaseHTTPRequestHandler):
    """The seed images; ``bad`` maps a file name to how it misbehaves: endless, trickle, stall, missing."""

    files: dict[str, bytes]
    bad: dict[str, str]
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        name = self.path.lstrip("/")
        body, mode = self.files.get(name), self.bad.get(name, "good")
        if body is None or mode == "missing":
            self.send_error(404)
            return
        self.send_response(200)
        if mode == "good":
            self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        try:
            if mode == "good":
                self.wfile.write(body)
            elif mode == "endless":  # no length, no end: only a cap stops it
                for _ in range(100_000):
                    self.wfile.write(b"\0" * 65536)
            elif mode == "trickle":  # a byte every 50 ms: never silent long enough to stall
                for byte in body[:400]:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(0.05)
            elif mode == "stall":  # half, then silence
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                time.sleep(5)
        except OSError:
            pass

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def mirror(images_dir, monkeypatch) -> Iterator[type[_Mirror]]:
    _Mirror.files = {sample.file: (images_dir / sample.file).read_bytes() for sample in samples.manifest("seed50")}
    _Mirror.bad = {}
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Mirror)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    monkeypatch.setenv(samples.MIRROR_ENV, f"http://127.0.0.1:{httpd.server_port}")
    yield _Mirror
    httpd.shutdown()


SEED = samples.manifest("seed50")
FIRST, SECOND, THIRD = SEED[0].file, SEED[1].file, SEED[2].file


def _verified(folder: Path) -> list[str]:
    return sorted(s.file for s in SEED if samples.is_verified(folder / s.file, s))


def test_an_endless_body_is_cut_at_the_manifests_size_and_the_rest_are_fetched(mirror, tmp_path, capsys):
    mirror.bad = {FIRST: "endless"}
    target = tmp_path / "seed50"
    started = time.monotonic()
    assert samples.main(["seed50", str(target), "--quiet"]) == 1
    assert time.monotonic() - started < 30
    err = capsys.readouterr().err
    cap = samples.Limits().max_bytes(SEED[0].size)
    assert f"failed: {FIRST}: " in err and f"larger than the {cap} byte cap" in err and "1 files failed" in err
    assert _verified(target) == sorted(s.file for s in SEED[1:]) and not (target / "labels.csv").exists()
    assert sorted(p.name for p in target.iterdir()) == sorted(s.file for s in SEED[1:])  # nothing left over


@pytest.mark.slow
def test_trickling_and_stalled_bodies_meet_their_deadline_and_stall_timeout(mirror, tmp_path):
    mirror.bad = {FIRST: "trickle", SECOND: "stall"}
    limits = samples.Limits(stall_s=1.0, base_s=3.0, min_rate=10**7)
    started = time.monotonic()
    failures = samples.fetch_set("seed50", tmp_path / "seed50", progress=False, limits=limits)
    assert time.monotonic() - started < 15
    assert len(failures) == 2
    assert failures[0].startswith(f"{FIRST}: ") and "timed out" in failures[0]
    assert failures[1].startswith(f"{SECOND}: ") and "stalled: no data for 1 s" in failures[1]
    assert len(_verified(tmp_path / "seed50")) == len(SEED) - 2
    assert samples.Limits().deadline(100_000) < 30 and samples.Limits().max_bytes(100_000) == 105_096


def test_a_directory_mirror_missing_a_file_reports_every_bad_one_and_fetches_the_rest(
    images_dir, tmp_path, monkeypatch, capsys
):
    copy = tmp_path / "mirror"
    copy.mkdir()
    for sample in SEED:
        (copy / sample.file).write_bytes((images_dir / sample.file).read_bytes())
    (copy / FIRST).write_bytes(b"corrupt")  # before the missing one: reported too
    (copy / SECOND).unlink()
    monkeypatch.setenv(samples.MIRROR_ENV, str(copy))
    target = tmp_path / "seed50"
    assert samples.main(["seed50", str(target), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert f"failed: {FIRST}: " in err and f"failed: {SECOND}: not in the mirror {copy}" in err
    assert _verified(target) == sorted(s.file for s in SEED[2:])
    monkeypatch.setenv(samples.MIRROR_ENV, str(tmp_path / "nowhere"))
    assert samples.main(["seed50", str(tmp_path / "other"), "--quiet"]) == 2
    assert "is not a directory" in capsys.readouterr().err


def test_links_planted_in_the_destination_are_replaced_and_leftovers_removed(mirror, tmp_path, capsys):
    target = tmp_path / "seed50"
    target.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (target / FIRST).symlink_to(victim)  # a planted link at a file's name: replaced, never written through
    (target / THIRD).symlink_to(tmp_path)  # a link to a folder
    (target / "labels.csv").symlink_to(victim)
    leftover = target / f".{SECOND}.{'0' * 32}.part"  # what a killed run leaves
    leftover.write_bytes(b"half")
    assert samples.main(["seed50", str(target), "--quiet"]) == 0, capsys.readouterr().err
    assert victim.read_text() == "precious" and not leftover.exists()
    assert not any(path.is_symlink() for path in target.iterdir())
    assert _verified(target) == sorted(s.file for s in SEED)
    assert sorted(p.name for p in target.iterdir()) == sorted([*(s.file for s in SEED), "labels.csv"])
    link = tmp_path / "link"
    link.symlink_to(target)
    assert samples.main(["seed50", str(link), "--quiet"]) == 2
    assert "is a symbolic link" in capsys.readouterr().err


# 5. Inputs keep their documented contracts.


def test_categories_files_that_are_not_utf8_or_are_fifos_fail_at_once_naming_the_file(tmp_path):
    latin = tmp_path / "names.txt"
    latin.write_bytes("caf\xe9\nb\nc\n".encode("latin-1"))
    with pytest.raises(OptionError, match=r"categories file .*names\.txt is not UTF-8 text"):
        models.read_categories(latin)
    fifo = tmp_path / "names.fifo"
    os.mkfifo(fifo)
    hung, outcome = _bounded(lambda: models.read_categories(fifo))
    _unblock(fifo)
    assert not hung and isinstance(outcome.get("error"), OptionError)
    assert "not a regular file (a FIFO)" in str(outcome["error"]) and "names.fifo" in str(outcome["error"])


def test_a_fifo_given_as_weights_fails_at_once(capsys, images_dir, tmp_path):
    fifo = tmp_path / "weights.pth"
    os.mkfifo(fifo)
    hung, outcome = _bounded(lambda: models.get_model("resnet18", weights_path=fifo))
    _unblock(fifo)
    assert not hung and isinstance(outcome.get("error"), WeightsFileError)
    assert "not a regular file (a FIFO)" in str(outcome["error"])
    hung, outcome = _bounded(
        lambda: _classify(capsys, str(images_dir / SHARK), "--model", "resnet18", "--weights-path", str(fifo))
    )
    _unblock(fifo)
    assert not hung and outcome["value"][0] == 2 and "not a regular file (a FIFO)" in outcome["value"][1]


def _three_classes(tmp_path: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    torch.save(torchvision.models.mobilenet_v3_small(num_classes=3).state_dict(), tmp_path / "three.pth")
    return tmp_path / "three.pth"


def _fine_tuned_args(weights: Path, names: Path) -> list[str]:
    return ["--model", "mobilenet_v3_small", "--weights-path", str(weights), "--categories", str(names)]


def test_resume_refuses_records_of_other_weights_at_the_same_path(capsys, photos, tmp_path):
    weights = _three_classes(tmp_path, 0)
    (tmp_path / "names.txt").write_text("cat\ndog\nbird\n")
    model = _fine_tuned_args(weights, tmp_path / "names.txt")
    out = tmp_path / "top3.jsonl"
    assert _classify(capsys, str(photos / SHARK), "--jsonl", str(out), *model)[0] == 0
    record = _strict_json(out.read_text())
    assert record["model"].endswith(f"(sha256 {models.weights_digest(weights)})") and len(record["topk"]) == 3
    before = out.read_bytes()
    _three_classes(tmp_path, 1)  # retrained, saved at the same path
    code, err = _classify(capsys, str(photos), "--jsonl", str(out), "--resume", *model)
    assert code == 2 and "other weights at the same path" in err and "resume with the weights" in err
    assert _one_line(err) and out.read_bytes() == before


def test_k_is_clipped_to_the_class_count_with_a_note(capsys, caplog, photos, tmp_path):
    weights = _three_classes(tmp_path, 0)
    (tmp_path / "names.txt").write_text("cat\ndog\nbird\n")
    model = models.get_model("mobilenet_v3_small", weights_path=weights, categories=tmp_path / "names.txt")
    with caplog.at_level("INFO", logger="top5hub"):
        prediction = model.predict(photos / SHARK)[0]  # the default k=5, as the README's example
    assert len(prediction.labels) == 3 and sorted(prediction.labels) == ["bird", "cat", "dog"]
    assert "k=5 is more than the 3 classes" in caplog.text
    with pytest.raises(OptionError, match="k must be an integer from 1 to 1000"):
        model.predict(photos / SHARK, k=1001)
    out = tmp_path / "top.csv"
    args = _fine_tuned_args(weights, tmp_path / "names.txt")
    code = classify.main([str(photos), "--csv", str(out), "--workers", "0", *args])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "-k 5 is more than the model's 3 classes: giving 3" in captured.err
    with open(out, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows[0][-4:] == ["index_3", "label_3", "probability_3", "model"] and len(rows) == 3


@pytest.mark.parametrize(
    "row,words",
    [
        ('"' + "x" * 140_000 + '",tench\n', "field larger than field limit"),
        ("a" * 5000 + ".jpg,tench\n", "(5004 characters) is too long for a file name"),
        ("a/" * 2500 + "x.jpg,tench\n", "is too long for a file name"),
    ],
)
def test_hostile_labels_csv_rows_are_one_line_errors(lite0, tmp_path, capsys, row, words):
    (tmp_path / "labels.csv").write_text("file,label\n" + row)
    with pytest.raises(LabelsError, match=r"labels\.csv, line") as caught:
        read_labelled_folder(tmp_path, lite0.categories)
    assert words in str(caught.value) and "\n" not in str(caught.value) and len(str(caught.value)) < 400
    assert validate.main([str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert words in err and _one_line(err)


@pytest.mark.slow
def test_max_pixels_none_means_no_limit_not_pillows(tmp_path):
    buffer = io.BytesIO()
    Image.new("L", (10_000, 9_000), 128).save(buffer, "PNG", compress_level=1)  # 90 MP: over Pillow's 89.5 MP
    data = buffer.getvalue()
    limit = Image.MAX_IMAGE_PIXELS
    assert decode_bytes(data, "big.png", max_pixels=None).shape == (3, 9_000, 10_000)
    assert decode_bytes(data, "big.png").shape == (3, 9_000, 10_000)  # the default limit, 100 M, is the limit
    with pytest.raises(ImageReadError, match="over the limit of 1000000"):
        decode_bytes(data, "big.png", max_pixels=1_000_000)
    assert limit == Image.MAX_IMAGE_PIXELS  # nothing global was lifted


# 4. A descriptor's name is written through, never renamed over; no late failure loses printed results.


@pytest.mark.slow
def test_dev_stdout_redirected_to_a_file_is_written_through_never_replaced(images_dir, tmp_path):
    import subprocess
    import sys

    folder = tmp_path / "imgs"
    folder.mkdir()
    lines = (images_dir / "labels.csv").read_text().splitlines()
    (folder / "labels.csv").write_text("\n".join(lines[:4]) + "\n")  # the header and three images
    for line in lines[1:4]:
        name = next(csv.reader([line]))[0]
        (folder / name).write_bytes((images_dir / name).read_bytes())
    before = os.readlink("/dev/stdout")
    out = tmp_path / "out.txt"
    repo = Path(__file__).resolve().parents[1]
    command = [sys.executable, "validate.py", str(folder), "--json", "/dev/stdout", "--workers", "0", "--quiet"]
    with open(out, "wb") as handle:
        done = subprocess.run(command, cwd=repo, stdout=handle, stderr=subprocess.PIPE, timeout=300)
    assert done.returncode == 0, done.stderr.decode()
    assert stat.S_ISLNK(os.lstat("/dev/stdout").st_mode) and os.readlink("/dev/stdout") == before
    assert not list(Path("/dev").glob(".stdout.*.tmp"))
    text = out.read_text()
    summary, _, rest = text.partition("{")  # the table first, then the JSON after it (never over it)
    assert "top-1" in summary.lower() or "top1" in summary.lower(), text
    assert json.loads("{" + rest)["n"] == 3


def test_descriptor_names_are_streams_and_never_renamed_over(tmp_path):
    from top5hub.cli.outputs import check_output
    from top5hub.files import is_stream, names_descriptor

    for name in ("/dev/stdout", "/dev/stderr", "/dev/fd/1", "/proc/self/fd/1", "/dev/null"):
        assert names_descriptor(name) and is_stream(Path(name)), name
        check_output(Path(name), lambda head: False, "a test file")  # accepted, nothing probed in /dev
    link = tmp_path / "to-stdout"
    link.symlink_to("/proc/self/fd/1")
    assert names_descriptor(link)
    for name in (tmp_path / "out.json", Path("/dev/shm/out.json")):
        assert not names_descriptor(name)
    with pytest.raises(UsageError, match="does not exist"):
        check_output(Path("/dev/no-such-top5hub-device"), lambda head: False, "a test file")
    # written through a descriptor that is a regular file: appended after what it holds, link untouched
    target = tmp_path / "redirected.txt"
    target.write_bytes(b"printed\n")
    with open(target, "ab") as handle:
        descriptor_link = tmp_path / "fd-link"
        descriptor_link.symlink_to(f"/proc/self/fd/{handle.fileno()}")
        write_new_file(descriptor_link, lambda out: out.write(b"written\n"))
    assert target.read_bytes() == b"printed\nwritten\n" and descriptor_link.is_symlink()


def test_long_output_names_get_a_short_temporary_name_probed_before_the_work(tmp_path):
    from top5hub.cli.outputs import check_output
    from top5hub.files import temporary_name

    long = "r" * 240 + ".json"  # valid (under 255 bytes); with the usual temporary name it would not be
    assert len(temporary_name(long)) < 20 and temporary_name("a.json").startswith(".a.json.")
    check_output(tmp_path / long, lambda head: False, "a test file")
    write_new_file(tmp_path / long, lambda handle: handle.write(b"[]"))
    assert (tmp_path / long).read_bytes() == b"[]" and [p.name for p in tmp_path.iterdir()] == [long]


def test_validate_keeps_earlier_models_when_a_later_one_fails_and_prints_before_writing(capsys, monkeypatch, tmp_path):
    from top5hub.errors import BackendError

    monkeypatch.setattr(validate, "check_usage", lambda args: setattr(args, "models", ["first", "second"]))
    monkeypatch.setattr(validate, "model_from_args", lambda args, rank=None: args.model)
    monkeypatch.setattr(validate, "run_config", lambda args, images=None: None)

    def evaluate(model, images, shard, progress, config):
        if model == "second":
            raise BackendError("the second backend broke")
        return Evaluation(model=model, weights="w", images=str(images), n=1, top1=100.0, top5=100.0)

    monkeypatch.setattr(validate, "evaluate_sharded", evaluate)
    argv = [str(tmp_path), "--json", str(tmp_path / "val.json")]
    assert validate.main(argv) == 1
    out = capsys.readouterr().out
    assert "first" in out and "second: failed: the second backend broke" in out
    assert [row["model"] for row in json.loads((tmp_path / "val.json").read_text())] == ["first"]

    def full_disk(args, scored):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "val.json"))

    monkeypatch.setattr(validate, "write_files", full_disk)
    assert validate.main(argv) == 1
    captured = capsys.readouterr()
    assert "first" in captured.out and "Traceback" not in captured.err and _one_line(captured.err)
    assert "cannot write" in captured.err and "No space left on device" in captured.err

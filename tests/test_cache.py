"""Caches are data, checked before use (issue 19 part 1) and cached int8 programs start at once (issue 21 part 1).

The rules of ``models/_runtime/cache.py`` on a stand-in entry (fast), then through the real int8 and OpenVINO
paths on a tiny network (the same code as for real models: calibrate, compile or convert, seal, verify, load),
then the commands with an unwritable cache place. The real EfficientNet-Lite0 int8 program is in test_int8.py.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import pickle
import re
import shutil
import stat
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import nn

from top5hub.errors import CacheError
from top5hub.models._runtime import RunOptions, cache

REPO = Path(__file__).resolve().parents[1]
FILES = ("data.bin", "notes.txt")
CONTENT = bytes(range(256)) * 64  # 16 KiB


@pytest.fixture()
def torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "torch_home"
    home.mkdir()
    monkeypatch.setenv("TORCH_HOME", str(home))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    return home


class Demo:
    """A stand-in backend: ``build`` writes two files (counted), ``load`` reads one back."""

    def __init__(self) -> None:
        self.builds: list[bool] = []
        self.loads = 0
        self.fail_next_load = False

    def build(self, folder: Path, cached: bool) -> bytes:
        self.builds.append(cached)
        (folder / "data.bin").write_bytes(CONTENT)
        (folder / "notes.txt").write_text("made by the test\n")
        return b"built"

    def load(self, folder: Path) -> bytes:
        self.loads += 1
        if self.fail_next_load:
            self.fail_next_load = False
            raise RuntimeError("cannot read it")
        return (folder / "data.bin").read_bytes()

    def __call__(self) -> bytes:
        return cache.load_or_build(
            "demo", "entry", FILES, what="the demo program", made_by={"by": "test"}, load=self.load, build=self.build
        )


def _entry(home: Path) -> Path:
    return home / "hub" / "top5hub" / "demo" / "entry"


def _scramble(path: Path, share: float = 0.01) -> None:
    """Replace ``share`` of the bytes of ``path`` (spread evenly, at least one) with others: same size."""
    data = bytearray(path.read_bytes())
    step = max(1, int(1 / share))
    for index in range(step // 2, len(data), step):
        data[index] ^= 0xA5
    path.write_bytes(bytes(data))


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """``folder`` unwritable for this process: mode 555, or, for root (whom modes do not stop), immutable."""
    if os.geteuid() == 0:
        if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(folder)]).returncode:
            pytest.skip("root ignores modes and chattr +i is unavailable here")
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
    else:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)


def test_an_entry_is_sealed_with_a_manifest_then_loaded(torch_home):
    demo = Demo()
    assert demo() == b"built" and demo.builds == [True]
    entry = _entry(torch_home)
    manifest = json.loads((entry / "manifest.json").read_text())
    assert manifest["format"] == cache.FORMAT and manifest["made_by"] == {"by": "test"}
    assert manifest["files"]["data.bin"] == {"sha256": hashlib.sha256(CONTENT).hexdigest(), "size": len(CONTENT)}
    assert set(manifest["files"]) == set(FILES)
    assert not [path for path in entry.parent.iterdir() if path.name.startswith(".")]  # no staging left
    assert all(not (path.stat().st_mode & 0o022) for path in [entry, *entry.iterdir()])
    assert demo() == CONTENT and demo.builds == [True]  # the second time: loaded, not built


def test_a_group_writable_umask_still_makes_entries_it_accepts(torch_home):
    (torch_home / "hub").mkdir()  # torch's, made before (group-writable under umask 002 unless a private group)
    previous = os.umask(0o002)
    try:
        Demo()()
    finally:
        os.umask(previous)
    assert Demo()() == CONTENT


def test_the_check_is_remembered_until_a_file_changes(torch_home, monkeypatch):
    Demo()()
    hashed: list[Path] = []
    real = cache._sha256
    monkeypatch.setattr(cache, "_sha256", lambda path: hashed.append(path) or real(path))
    assert Demo()() == CONTENT and hashed == []  # size, mtime, ctime and inode as remembered: not hashed again
    data = _entry(torch_home) / "data.bin"
    os.utime(data, ns=(data.stat().st_atime_ns, data.stat().st_mtime_ns + 10**9))
    assert Demo()() == CONTENT and [path.name for path in hashed] == sorted(FILES)
    hashed.clear()
    assert Demo()() == CONTENT and hashed == []


def _linked(entry: Path) -> None:
    """data.bin replaced by a link to a copy outside the entry, same bytes."""
    (entry.parent / "copy").write_bytes(CONTENT)
    (entry / "data.bin").unlink()
    (entry / "data.bin").symlink_to(entry.parent / "copy")


DAMAGE = {
    "1% of the bytes scrambled": (lambda entry: _scramble(entry / "data.bin"), "data.bin fails its SHA-256"),
    "truncated": (
        lambda entry: (entry / "data.bin").write_bytes(CONTENT[:1000]),
        f"data.bin is 1000 bytes, its manifest says {len(CONTENT)}",
    ),
    "emptied": (lambda entry: (entry / "notes.txt").write_bytes(b""), "notes.txt is 0 bytes"),
    "a file missing": (lambda entry: (entry / "data.bin").unlink(), "data.bin missing: incomplete"),
    "no manifest (foreign)": (lambda entry: (entry / "manifest.json").unlink(), "it has no manifest"),
    "a manifest that is not JSON": (
        lambda entry: (entry / "manifest.json").write_text("{"),
        "its manifest is not JSON",
    ),
    "a manifest of another format": (
        lambda entry: (entry / "manifest.json").write_text('{"format": 99, "files": {}}'),
        "its manifest is of format 99",
    ),
    "a file planted beside": (lambda entry: (entry / "data.pkl").write_bytes(b"x"), "data.pkl"),
    "a file replaced by a link": (_linked, "data.bin is not a regular file"),
    "a file, not a folder": (lambda entry: (shutil.rmtree(entry), entry.write_bytes(b"x")), "it is not a folder"),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_entry_is_never_used_but_removed_and_built_again(torch_home, damage, caplog):
    Demo()()
    entry = _entry(torch_home)
    do, reason = DAMAGE[damage]
    do(entry)
    demo = Demo()
    with caplog.at_level(logging.WARNING, logger="top5hub"):
        assert demo() == b"built"
    assert demo.builds == [True] and demo.loads == 0
    (message,) = caplog.messages
    assert message.startswith(f"cache entry {entry} is unusable (") and reason in message
    assert message.endswith("): removed, building it again")
    assert cache.verify(entry, FILES) is None and Demo()() == CONTENT
    assert sorted(path.name for path in entry.parent.iterdir()) == (
        ["copy", "entry"] if "link" in damage else ["entry"]
    )


def test_an_entry_that_does_not_load_is_built_again(torch_home, caplog):
    Demo()()
    demo = Demo()
    demo.fail_next_load = True
    with caplog.at_level(logging.WARNING, logger="top5hub"):
        assert demo() == b"built"
    assert "it passed its checks but does not load: RuntimeError: cannot read it" in caplog.text


@pytest.mark.parametrize("where", ["data.bin", "manifest.json", "."])
@pytest.mark.parametrize("mode", [0o020, 0o002])
def test_an_entry_writable_by_others_is_refused_unread(torch_home, where, mode):
    Demo()()
    entry = _entry(torch_home)
    target = entry / where
    target.chmod(target.stat().st_mode | mode)
    demo = Demo()
    with pytest.raises(CacheError) as refused:
        demo()
    message = str(refused.value)
    assert f"refused to load the cache entry {entry}: {target if where != '.' else entry} is writable by " in message
    assert f"chmod -R go-w {entry}" in message and "TORCH_HOME" in message
    assert demo.loads == 0 and demo.builds == [] and (entry / "data.bin").read_bytes() == CONTENT  # left alone


def test_the_cache_folders_are_made_private_whatever_the_umask(torch_home):
    (torch_home / "hub").mkdir()
    previous = os.umask(0o002)
    try:
        Demo()()
    finally:
        os.umask(previous)
    kind = _entry(torch_home).parent
    assert stat.S_IMODE(kind.stat().st_mode) == 0o700 and stat.S_IMODE(kind.parent.stat().st_mode) == 0o700
    assert Demo()() == CONTENT


@pytest.mark.parametrize("level", ["kind", "top5hub", "hub"])
@pytest.mark.parametrize("mode", [0o020, 0o002])
def test_an_entry_below_a_folder_writable_by_others_is_refused_unread(torch_home, monkeypatch, level, mode):
    monkeypatch.setattr(cache, "_private_group", lambda gid, user: False)  # (the hub folder's exception, below)
    Demo()()
    entry = _entry(torch_home)
    folder = {"kind": entry.parent, "top5hub": entry.parent.parent, "hub": torch_home / "hub"}[level]
    folder.chmod(stat.S_IMODE(folder.stat().st_mode) | mode)
    demo = Demo()
    with pytest.raises(CacheError) as refused:
        demo()
    message = str(refused.value)
    assert f"refused to load the cache entry {entry}: the folder {folder} above it " in message
    assert "is writable by " in message and f"chmod go-w {folder}" in message
    assert "set TORCH_HOME to a private folder" in message
    assert demo.loads == 0 and demo.builds == [] and (entry / "data.bin").read_bytes() == CONTENT  # left alone
    folder.chmod(stat.S_IMODE(folder.stat().st_mode) & ~0o022)
    assert Demo()() == CONTENT  # the fix the message gives


def test_no_entry_is_built_below_a_folder_writable_by_others(torch_home):
    kind = _entry(torch_home).parent
    kind.mkdir(parents=True)
    kind.chmod(0o777)
    demo = Demo()
    with pytest.raises(CacheError, match=rf"the folder {re.escape(str(kind))} above it is writable by group and "):
        demo()
    assert demo.builds == [] and list(kind.iterdir()) == []


def test_a_sticky_folder_or_a_private_group_above_the_cache_is_accepted(torch_home, monkeypatch):
    hub = torch_home / "hub"
    Demo()()
    hub.chmod(0o1777)  # as /tmp
    assert Demo()() == CONTENT
    hub.chmod(0o775)  # torch's hub folder under umask 002, group being the user's own private group
    monkeypatch.setattr(cache, "_private_group", lambda gid, user: True)
    assert Demo()() == CONTENT
    kind = _entry(torch_home).parent
    kind.chmod(0o770)  # but never for the folders this library makes 0o700
    with pytest.raises(CacheError, match="is writable by group"):
        Demo()()


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="only root can give a file away")
@pytest.mark.parametrize("where", ["data.bin", "."])
def test_an_entry_of_another_user_is_refused_unread(torch_home, where):
    Demo()()
    entry = _entry(torch_home)
    os.chown(entry / where, 65534, 65534)
    demo = Demo()
    with pytest.raises(CacheError, match=r"belongs to user .*uid 65534.*not to you.*set TORCH_HOME to a folder of"):
        demo()
    assert demo.loads == 0 and demo.builds == [] and entry.exists()


def test_an_unmakeable_cache_place_builds_for_this_process_only(tmp_path, monkeypatch, caplog):
    blocker = tmp_path / "a file"
    blocker.write_text("")
    monkeypatch.setenv("TORCH_HOME", str(blocker / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    demo = Demo()
    with caplog.at_level(logging.WARNING, logger="top5hub"):
        assert demo() == b"built"
    assert demo.builds == [False]
    (message,) = caplog.messages
    where = blocker / "torch" / "hub" / "top5hub" / "demo"
    assert message.startswith(f"cannot cache the demo program in {where}: Not a directory")
    assert message.endswith("building it for this process only (each run builds it again): set TORCH_HOME to a "
                            "writable folder")  # fmt: skip


def test_an_empty_read_only_torch_home_builds_for_this_process_only(torch_home, caplog):
    demo = Demo()
    with read_only(torch_home), caplog.at_level(logging.WARNING, logger="top5hub"):
        assert demo() == b"built"
    assert demo.builds == [False] and not (torch_home / "hub").exists()
    assert "cannot cache the demo program in " in caplog.text and "set TORCH_HOME to a writable folder" in caplog.text


def test_a_read_only_cache_is_used_once_verified_and_never_when_damaged(torch_home, caplog):
    Demo()()
    entry = _entry(torch_home)
    (entry / cache.MEMO).unlink()
    with read_only(entry.parent), read_only(entry):
        assert Demo()() == CONTENT  # checked in full (the memo cannot be written), then used
        assert Demo()() == CONTENT
    _scramble(entry / "data.bin")
    demo = Demo()
    with read_only(entry.parent), caplog.at_level(logging.WARNING, logger="top5hub"):
        assert demo() == b"built"
    assert demo.builds == [False] and demo.loads == 0
    assert f"cache entry {entry} is unusable (data.bin fails its SHA-256" in caplog.text
    assert "cannot be replaced" in caplog.text and "delete the entry, or set TORCH_HOME" in caplog.text


# The real backends on a tiny network: what int8 and OpenVINO build, seal, verify and load for every model.


def _tiny() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1, groups=16),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 10),
    ).eval()


def _preprocess():
    from torchvision.transforms._presets import ImageClassification

    from top5hub.transforms import TensorPreprocess

    return TensorPreprocess(ImageClassification(crop_size=32, resize_size=36))


def _options(images_dir: Path, precision: str, backend: str = "torch") -> RunOptions:
    calibration = tuple(str(path) for path in sorted(images_dir.glob("*.JPEG"))[:4])
    return RunOptions(torch.device("cpu"), precision, input_size=(32, 32), calibration=calibration, backend=backend)


X = torch.randn(5, 3, 32, 32, generator=torch.Generator().manual_seed(1))


class _Marker:
    """A pickle that, when unpickled, creates the file ``path`` (what planted code could do instead)."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def _int8_runner(images_dir: Path):
    pytest.importorskip("torchao", reason="optional: pip install torchao for precision='int8'")
    from top5hub.models._runtime.int8 import QuantizedRunner

    return QuantizedRunner(_tiny(), _options(images_dir, "int8"), _preprocess())


@pytest.fixture(scope="module")
def int8_built(tmp_path_factory: pytest.TempPathFactory, images_dir: Path) -> tuple[Path, torch.Tensor]:
    """A TORCH_HOME holding the tiny network's int8 program, built once (20-40 s), and its logits for ``X``: each
    test starts from a copy."""
    home = tmp_path_factory.mktemp("int8_home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TORCH_HOME", str(home))
        patch.setattr(torch.hub, "_hub_dir", None)
        return home, _int8_runner(images_dir)(X)


def _copy_of(built: Path, home: Path) -> Path:
    """The built int8 cache copied into ``home``; the path of its package with a dynamic batch dimension (the other
    is for batches of 32)."""
    shutil.copytree(built / "hub", home / "hub", symlinks=True)
    (entry,) = (home / "hub" / "top5hub" / "int8").iterdir()
    assert sorted(path.name for path in entry.iterdir()) == [".verified", "manifest.json", "program-b32.pt2",
                                                             "program.pt2"]  # fmt: skip
    return entry / "program.pt2"


_INT8_KERNEL = re.compile(rb"aoti_torch_cpu__q(?:conv|linear)\w*\(")


@pytest.mark.int8
@pytest.mark.slow
class TestInt8:
    """The int8 program: compiled ahead of time, loaded without compiling, never unpickled, rebuilt when damaged."""

    def test_a_new_runner_loads_the_program_without_compiling(self, int8_built, torch_home, images_dir, monkeypatch,
                                                              caplog):  # fmt: skip
        from top5hub.models._runtime import int8

        built, expected = int8_built
        package = _copy_of(built, torch_home)
        for each in (package, package.with_name("program-b32.pt2")):
            with zipfile.ZipFile(each) as archive:
                (wrapper,) = [archive.read(name) for name in archive.namelist() if name.endswith(".wrapper.cpp")]
            assert len(_INT8_KERNEL.findall(wrapper)) == 3  # both convolutions and the linear layer run in int8
        for name in ("quantize", "compile_ahead"):
            monkeypatch.setattr(int8, name, lambda *args: pytest.fail("built again"))
        monkeypatch.setattr(torch, "compile", lambda *args, **kwargs: pytest.fail("compiled"))
        with caplog.at_level(logging.DEBUG, logger="top5hub"):
            loaded = _int8_runner(images_dir)
        assert f"the int8 program of Sequential: using the verified cache entry {package.parent}" in caplog.messages
        assert torch.equal(loaded(X), expected)
        assert loaded(X[:1]).shape == (1, 10) and loaded(X[:3]).shape == (3, 10)  # any batch size
        many = torch.cat([X] * 14)  # 70 rows: two chunks of 32 through the static package, 6 through the dynamic one
        torch.testing.assert_close(loaded(many), torch.cat([expected] * 14), rtol=1e-5, atol=1e-5)

    def test_a_pickle_planted_in_the_cached_program_never_runs(self, int8_built, torch_home, images_dir, tmp_path,
                                                               caplog):  # fmt: skip
        from top5hub.models._runtime.int8 import AheadOfTime

        built, expected = int8_built
        package = _copy_of(built, torch_home)
        marker = tmp_path / "planted-code-ran"
        payload = pickle.dumps(_Marker(marker))
        pickle.loads(payload)  # the payload is live: unpickled, it runs
        assert marker.exists()
        marker.unlink()
        top = zipfile.ZipFile(package).namelist()[0].split("/")[0]
        with zipfile.ZipFile(package, "a") as archive:  # where torch.export.load and torch.load look for pickles
            archive.writestr(f"{top}/data.pkl", payload)
            archive.writestr(f"{top}/data/sample_inputs/model.pt", payload)

        with pytest.raises(ValueError, match="is not an AOTInductor package as this library writes them"):
            AheadOfTime(package)  # even past the hash (an entry the user's own tool rewrote): refused unopened
        assert not marker.exists()

        with caplog.at_level(logging.WARNING, logger="top5hub"):
            again = _int8_runner(images_dir)
        assert not marker.exists()
        assert f"cache entry {package.parent} is unusable (program.pt2 is " in caplog.text
        assert "removed, building it again" in caplog.text
        assert torch.equal(again(X), expected)
        assert not any(name.endswith((".pkl", ".pt")) for name in zipfile.ZipFile(package).namelist())

    @pytest.mark.parametrize("damage", ["scrambled", "truncated"])
    def test_a_damaged_program_is_built_again(self, int8_built, torch_home, images_dir, damage, caplog):
        built, expected = int8_built
        package = _copy_of(built, torch_home)
        if damage == "scrambled":  # 1% of the bytes, same size: int8 weights, kernels and all
            package = package.with_name("program-b32.pt2")
            _scramble(package)
        else:
            package.write_bytes(package.read_bytes()[: package.stat().st_size // 2])
        with caplog.at_level(logging.WARNING, logger="top5hub"):
            again = _int8_runner(images_dir)
        reason = f"{package.name} fails its SHA-256" if damage == "scrambled" else f"{package.name} is "
        assert f"cache entry {package.parent} is unusable ({reason}" in caplog.text
        assert torch.equal(again(X), expected)

    def test_an_empty_read_only_torch_home_runs_in_memory(self, torch_home, images_dir, caplog):
        with read_only(torch_home), caplog.at_level(logging.INFO, logger="top5hub"):
            logits = _int8_runner(images_dir)(X)
        assert logits.shape == (5, 10) and not (torch_home / "hub").exists()
        warning = next(message for message in caplog.messages if message.startswith("cannot cache"))
        assert "the int8 program of Sequential" in warning and "set TORCH_HOME to a writable folder" in warning
        assert caplog.messages.index(warning) < next(
            index for index, message in enumerate(caplog.messages) if message.startswith("calibrating int8")
        )  # found before any work
        assert any("(for this process only)" in message for message in caplog.messages)


OV_DAMAGE = {
    "1% of model.bin scrambled": lambda entry: _scramble(entry / "model.bin"),
    "model.bin truncated": lambda entry: (entry / "model.bin").write_bytes((entry / "model.bin").read_bytes()[:99]),
    "model.bin missing": lambda entry: (entry / "model.bin").unlink(),
    "model.xml empty": lambda entry: (entry / "model.xml").write_bytes(b""),
}


@pytest.mark.openvino
@pytest.mark.slow
class TestOpenVINO:
    """The OpenVINO IR: a scrambled, truncated or missing file is found and the IR made again."""

    @pytest.fixture(autouse=True)
    def _needs_openvino(self):
        pytest.importorskip("openvino")
        pytest.importorskip("nncf")

    def _runner(self, images_dir: Path, precision: str):
        from top5hub.models._runtime.openvino import OpenVINORunner

        return OpenVINORunner(_tiny(), _options(images_dir, precision, "openvino"), _preprocess())

    @staticmethod
    def _entries(home: Path) -> list[Path]:
        return sorted((home / "hub" / "top5hub" / "openvino").iterdir(), key=lambda entry: entry.stat().st_mtime)

    @pytest.mark.parametrize("precision", ["fp32", "int8"])
    @pytest.mark.parametrize("damage", OV_DAMAGE)
    def test_a_damaged_ir_is_made_again(self, torch_home, images_dir, precision, damage, caplog):
        expected = self._runner(images_dir, precision)(X)
        entries = self._entries(torch_home)
        assert len(entries) == (1 if precision == "fp32" else 2)
        entry = entries[-1]  # int8: the quantized IR (the fp32 one it was made from stays good)
        OV_DAMAGE[damage](entry)
        with caplog.at_level(logging.WARNING, logger="top5hub"):
            again = self._runner(images_dir, precision)
        assert f"cache entry {entry} is unusable (" in caplog.text and "removed, building it again" in caplog.text
        torch.testing.assert_close(again(X), expected, rtol=1e-4, atol=1e-4)
        assert cache.verify(entry, ("model.xml", "model.bin")) is None

    def test_an_empty_read_only_torch_home_converts_in_memory(self, torch_home, images_dir, caplog):
        with read_only(torch_home), caplog.at_level(logging.WARNING, logger="top5hub"):
            logits = self._runner(images_dir, "int8")(X)
        assert logits.shape == (5, 10) and not (torch_home / "hub").exists()
        assert "cannot cache the OpenVINO int8 IR of Sequential in " in caplog.text
        assert "set TORCH_HOME to a writable folder" in caplog.text


def _classify(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "classify.py"), *args, "--workers", "0", "--quiet"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
        env=env,
    )


@pytest.mark.slow
@pytest.mark.openvino
@pytest.mark.parametrize("place", ["an empty read-only TORCH_HOME", "TORCH_HOME unset, HOME unwritable"])
def test_the_commands_run_with_an_unwritable_cache_place(place, images_dir, tmp_path):
    """Before: minutes of converting or calibrating, then an OSError or FileNotFoundError traceback."""
    pytest.importorskip("openvino")
    two = [str(images_dir / "n01491361_tiger_shark.JPEG"), str(images_dir / "n03785016_moped.JPEG")]
    env = {key: value for key, value in os.environ.items() if key not in ("TORCH_HOME", "XDG_CACHE_HOME")}
    unwritable = tmp_path / "unwritable"
    unwritable.mkdir()
    if place.startswith("an empty"):
        env["TORCH_HOME"] = str(unwritable)
    else:
        env["HOME"] = str(unwritable)
    records = tmp_path / "out.jsonl"
    with read_only(unwritable):
        result = _classify(env, *two, "--backend", "openvino", "--jsonl", str(records))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert "cannot cache the OpenVINO IR of EfficientNetLite in " in result.stderr
    assert "set TORCH_HOME to a writable folder" in result.stderr
    top1 = [json.loads(line)["topk"][0]["label"] for line in records.read_text().splitlines()]
    assert top1 == ["tiger shark", "moped"]
    assert not any(unwritable.iterdir())

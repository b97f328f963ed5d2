"""Freed memory kept for the next batch (glibc's mallopt), once per process, and TOP5HUB_KEEP_MEMORY=0 to leave it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from top5hub.models._runtime import memory

PROBE = textwrap.dedent(
    """
    import ctypes
    from top5hub.models._runtime.memory import keep_freed_memory
    from top5hub.models import get_model
    model = get_model("efficientnet_lite0")
    model.runner("fp32")  # building a CPU runner applies it
    # glibc's own view: mallinfo2's hblks counts blocks served by mmap; a fresh 64 MB block is one more unless
    # mmap is off
    libc = ctypes.CDLL(None)
    class Info(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in
                    ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                     "keepcost")]
    libc.mallinfo2.restype = Info
    before = libc.mallinfo2().hblks
    block = bytearray(64 * 2**20)
    print(keep_freed_memory(), libc.mallinfo2().hblks - before)
    """
)


def _probe(env: dict[str, str]) -> tuple[str, str]:
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    applied, new_mmaps = done.stdout.split()
    return applied, new_mmaps


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_a_cpu_runner_keeps_large_blocks_out_of_mmap_unless_told_not_to():
    env = {key: value for key, value in os.environ.items() if key != "TOP5HUB_KEEP_MEMORY"}
    env["PYTHONPATH"] = os.pathsep.join([*sys.path])
    assert _probe(env) == ("True", "0")
    assert _probe({**env, "TOP5HUB_KEEP_MEMORY": "0"}) == ("False", "1")


def test_applied_once_per_process_and_only_when_asked(monkeypatch):
    calls: list[tuple[int, int]] = []

    class Libc:
        def mallopt(self, option: int, value: int) -> int:
            calls.append((option, value))
            return 1

    monkeypatch.setattr(memory.ctypes, "CDLL", lambda name: Libc())
    monkeypatch.setattr(memory.sys, "platform", "linux")
    monkeypatch.setattr(memory, "_applied", None)
    monkeypatch.setenv("TOP5HUB_KEEP_MEMORY", "0")
    assert memory.keep_freed_memory() is False and calls == []
    monkeypatch.setattr(memory, "_applied", None)
    monkeypatch.delenv("TOP5HUB_KEEP_MEMORY")
    assert memory.keep_freed_memory() is True
    assert memory.keep_freed_memory() is True
    assert calls == [(memory._M_MMAP_MAX, 0), (memory._M_TRIM_THRESHOLD, memory._TRIM_THRESHOLD)]


def test_a_c_library_without_mallopt_changes_nothing(monkeypatch):
    class Musl:
        def mallopt(self, option: int, value: int) -> int:
            return 0  # not supported

    monkeypatch.setattr(memory.ctypes, "CDLL", lambda name: Musl())
    monkeypatch.setattr(memory.sys, "platform", "linux")
    monkeypatch.setattr(memory, "_applied", None)
    monkeypatch.delenv("TOP5HUB_KEEP_MEMORY", raising=False)
    assert memory.keep_freed_memory() is False

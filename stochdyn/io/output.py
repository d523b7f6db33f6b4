"""Where outputs go: checks made before a run, and atomic placement of files and stores.

Everything that can be known about an output before a run starts is checked here — the parent
is a folder we can write in, the target is not a directory (for files) or not a file (for
stores), an existing output is replaced only when asked, and the file system has room for the
estimated size — so that a problem is one clear message before any work, never a traceback
after the work is done.

Temporary files and folders are created with the permissions of the user's umask (``0o666`` /
``0o777`` minus the umask, as ``open`` and ``mkdir`` would give), never the private ``0o600`` of
:func:`tempfile.mkstemp`.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
from pathlib import Path

__all__ = ["OutputError", "check_output", "check_free_space", "free_space", "fmt_bytes", "temp_path",
           "make_temp_dir", "place_file", "place_dir"]


class OutputError(OSError):
    """An output cannot be written where asked (checked before the run) or failed while written.

    ``str(exc)`` is the plain message (no ``[Errno N]`` prefix); ``exc.errno`` is set when known.
    """

    def __init__(self, message: str, err: int | None = None):
        super().__init__(message)
        self.errno = err


def fmt_bytes(n: float) -> str:
    """``1.2 GiB``-style size."""
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def _existing_ancestor(path: Path) -> Path:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def free_space(path: str | os.PathLike) -> tuple[int, Path]:
    """Free bytes on the file system that would hold ``path`` (its nearest existing folder)."""
    where = _existing_ancestor(Path(os.path.abspath(path)).parent)
    return int(shutil.disk_usage(where).free), where


def check_free_space(path: str | os.PathLike, need: int, what: str) -> None:
    """Raise :class:`OutputError` if the file system of ``path`` has less than ``need`` bytes free."""
    free, where = free_space(path)
    if need > free:
        raise OutputError(
            f"{what} needs about {fmt_bytes(need)} (an estimate from the number of records, before compression) "
            f"but the file system holding {str(where)!r} has {fmt_bytes(free)} free: free some space, choose another "
            "place, or record less (fewer replicas, a larger record interval)",
            errno.ENOSPC,
        )


def _probe_writable(folder: Path) -> None:
    probe = folder / f".stochdyn-write-test-{secrets.token_hex(4)}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as exc:
        raise OutputError(f"cannot write in the folder {str(folder)!r}: {exc.strerror or exc}",
                          exc.errno or errno.EACCES) from None
    os.close(fd)
    os.unlink(probe)


def check_output(path: str | os.PathLike, *, store: bool, overwrite: bool = False, resume: bool = False,
                 exists_hint: str = "pass overwrite=True to replace it") -> Path:
    """Check that ``path`` can be written, before any work; return the path to write.

    ``store=True`` for a zarr store (a folder), ``False`` for a file. A symbolic link is followed:
    the link stays and its target is written. An existing output is an error unless ``overwrite``
    (or, for a store, ``resume``). The parent folder may not exist yet (it is created), but its
    nearest existing ancestor must be a folder we can write in.
    """
    p = Path(path)
    if p.is_symlink():
        p = Path(os.path.realpath(p))
    if p.exists():
        if store and not p.is_dir():
            raise OutputError(f"{str(path)!r} exists and is a file, not a zarr store (a folder)", errno.ENOTDIR)
        if not store and p.is_dir():
            raise OutputError(f"{str(path)!r} is a folder, not a file: name a file to write", errno.EISDIR)
        if not (overwrite or (store and resume)):
            raise FileExistsError(f"{str(path)!r} exists: {exists_hint}")
    parent = _existing_ancestor(p.parent if p.parent != Path("") else Path("."))
    if not parent.is_dir():
        raise OutputError(f"cannot write {str(path)!r}: {str(parent)!r} is a file, not a folder", errno.ENOTDIR)
    _probe_writable(parent)
    return p


def temp_path(target: Path, suffix: str = ".tmp") -> Path:
    """A fresh, unused name beside ``target`` (same file system, so a rename is atomic)."""
    return target.parent / f".{target.name}.{secrets.token_hex(6)}{suffix}"


def make_temp_dir(target: Path) -> Path:
    """Create an empty temporary folder beside ``target`` (permissions from the umask)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = temp_path(target)
        try:
            os.mkdir(tmp, 0o777)
            return tmp
        except FileExistsError:  # pragma: no cover - 48 random bits
            continue


def place_file(tmp: Path, target: Path, overwrite: bool) -> None:
    """Move a finished temporary file to ``target`` atomically; without ``overwrite`` never replace a file."""
    if overwrite:
        os.replace(tmp, target)
        return
    try:
        os.link(tmp, target)  # fails if target exists: no race with another writer
    except FileExistsError:
        raise FileExistsError(f"{str(target)!r} appeared while writing (another writer?); not replaced") from None
    except OSError:  # file systems without hard links
        if target.exists():
            raise FileExistsError(f"{str(target)!r} appeared while writing (another writer?); not replaced") from None
        os.replace(tmp, target)
        return
    os.unlink(tmp)


def place_dir(tmp: Path, target: Path, overwrite: bool) -> None:
    """Move a finished temporary folder to ``target`` (replacing an existing one only with ``overwrite``)."""
    if target.exists() and overwrite:
        old = temp_path(target, ".old")
        os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
        return
    try:
        os.rename(tmp, target)  # onto an existing non-empty folder this fails
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
            raise FileExistsError(f"{str(target)!r} appeared while writing (another writer?); not replaced") from None
        raise

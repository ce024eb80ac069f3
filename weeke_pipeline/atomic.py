"""Atomic output writes: a file appears under its final name only when it is complete.

Every writer goes through a hidden temporary file in the same folder,
``.<stem>.part-<pid>.<ext>`` (the extension kept for format-sniffing writers such as
``nib.save``; the stem changed so no BIDS glob like ``*_T2w.nii.gz`` matches it), then
:func:`os.replace` (atomic on POSIX). On any error the temporary file is removed, so a failed
write never leaves a truncated file that looks finished (a previous complete version stays).
A full disk (``ENOSPC``, ``EDQUOT``) raises :class:`DiskFullError` naming the file; other write
errors raise :class:`OutputWriteError` naming the file.

The standard library has no atomic-replace writer (``tempfile`` + ``os.replace`` is the idiom);
this module is that idiom in one place.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


class OutputWriteError(OSError):
    """An output file could not be written (the message names the file and the reason)."""

    def __str__(self) -> str:
        return str(self.strerror)


class DiskFullError(OutputWriteError):
    """The disk (or quota) is full: the message names the file that could not be written."""


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in _FULL


def write_error(exc: OSError, path: str | os.PathLike[str]) -> OutputWriteError:
    """The error to raise for ``exc`` while writing ``path``."""
    if is_disk_full(exc):
        return DiskFullError(exc.errno, f"disk full while writing {path}: nothing was left "
                             "half-written; free some space and re-run (finished work is kept)")
    return OutputWriteError(exc.errno, f"cannot write {path}: {exc.strerror or exc}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path`` atomically."""
    path = Path(path)
    stem, dot, ext = path.name.partition(".")
    tmp = path.with_name(f".{stem}.part-{os.getpid()}{dot}{ext}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OutputWriteError):
            raise
        raise write_error(exc, path) from exc
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> Path:
    return write_bytes(path, text.encode(encoding))


def write_with(path: str | os.PathLike[str], writer: Callable[[Path], object]) -> Path:
    """Call ``writer(tmp_path)`` (e.g. ``nib.save``, ``ds.save_as``), then move the result into
    place."""
    with atomic_path(path) as tmp:
        writer(tmp)
    return Path(path)


def copy_file(src: str | os.PathLike[str], dest: str | os.PathLike[str]) -> Path:
    """Copy ``src`` to ``dest`` atomically (contents only, like :func:`shutil.copyfile`)."""
    with atomic_path(dest) as tmp, open(src, "rb") as fin, open(tmp, "wb") as fout:
        shutil.copyfileobj(fin, fout, 1 << 20)
    return Path(dest)


def move_file(src: str | os.PathLike[str], dest: str | os.PathLike[str]) -> Path:
    """Move ``src`` to ``dest``: a rename on one file system, else an atomic copy + delete."""
    src, dest = Path(src), Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dest)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise write_error(exc, dest) from exc
        copy_file(src, dest)
        src.unlink()
    return dest

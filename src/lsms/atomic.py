"""Crash-safe writes: every file and folder the package writes goes through these helpers.

A file is written under a temporary name beside its target (``.NAME.tmp-PID``), flushed to disk
(``fsync``), given the usual file mode (``0666 & ~umask``: some writers, such as safetensors, create
files ``0600``) and renamed over the target; the folder is then fsynced so the rename itself survives
a power cut. A folder is filled under a temporary name and swapped in with two renames. What an
interrupted write leaves behind is cleaned by :func:`clean_interrupted_writes` on the next start.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

# ``.NAME.tmp-PID`` (being written) and ``.NAME.old-PID`` (the previous folder during a swap).
_LEFTOVER = re.compile(r"^\.(?P<name>.+)\.(?P<kind>tmp|old)-\d+$")


def _temp_name(path: Path, kind: str) -> Path:
    return path.with_name(f".{path.name}.{kind}-{os.getpid()}")


def _umask() -> int:
    """The process's umask, read without changing it where Linux shows it (os.umask can only be read by
    setting it, which would briefly give files created by other threads mode 0666)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def _fsync(path: Path) -> None:
    """Flush a file's or a folder's data and metadata to disk (folders: their entries, i.e. renames)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(folder: Path) -> None:
    for path in sorted(folder.rglob("*"), reverse=True):  # files before the folders holding them
        _fsync(path)
    _fsync(folder)


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, fsync it and rename it onto ``path``.

    Readers see the old file or the complete new one, never a part; returns ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(path, "tmp")
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        _fsync(tmp)
        os.replace(tmp, path)
        _fsync(path.parent)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """:func:`atomic_write` of UTF-8 text."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def replace_dir(target: Path, fill: Callable[[Path], None]) -> None:
    """Have ``fill(folder)`` create and fill a temporary sibling folder, then swap it in for ``target``.

    Directories cannot be replaced over in one call, so the old one is renamed aside first; a crash
    in that two-rename window leaves ``.NAME.old-PID``, which :func:`clean_interrupted_writes` puts
    back.
    """
    tmp = _temp_name(target, "tmp")
    old = _temp_name(target, "old")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        fill(tmp)
        for path in tmp.rglob("*"):
            if path.is_file():
                os.chmod(path, 0o666 & ~_umask())
        _fsync_tree(tmp)
        if target.exists():
            os.replace(target, old)
        os.replace(tmp, target)
        _fsync(target.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def clean_interrupted_writes(folder: Path) -> list[str]:
    """Remove what killed writes left in ``folder`` (not recursive) and return the names handled.

    ``.NAME.tmp-PID`` is an unfinished file or folder: removed. ``.NAME.old-PID`` is the previous
    folder of a swap: put back when ``NAME`` is missing (the crash fell between the two renames),
    else removed. Call it only when no other process writes in ``folder``.
    """
    handled = []
    if not folder.is_dir():
        return handled
    for path in sorted(folder.iterdir()):
        match = _LEFTOVER.match(path.name)
        if match is None:
            continue
        target = folder / match["name"]
        if match["kind"] == "old" and not target.exists():
            os.replace(path, target)
        elif path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
        handled.append(path.name)
    return handled

"""Atomic file writes: a crash leaves the previous file or no file, never half of one."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ""):
    """Yields a temporary path beside ``path``; renames it onto ``path`` if the block succeeds.

    Works for files and for directories (a SavedModel, say). The temporary name keeps the
    final suffix because some writers (Keras' ``.keras``) insist on it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = suffix or "".join(path.suffixes)
    for stale in path.parent.glob(f".{path.name}.*"):
        # Left by a writer of this path that was killed (one writer per artifact at a time).
        shutil.rmtree(stale, ignore_errors=True)
    tmp_dir = tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent)
    tmp = Path(tmp_dir) / f"partial{suffix}"
    try:
        yield tmp
        if path.is_dir():
            # A directory cannot be replaced in one rename: move the old one aside first, so a
            # crash in between leaves the old one (hidden in tmp_dir) or the new one, never a mix.
            os.replace(path, Path(tmp_dir) / "previous")
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)

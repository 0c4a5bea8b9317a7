"""Where built-in data sets are found, and verified downloads of them.

A data set ``name`` is looked for in the source's ``path`` when given (and only there), else
in ``<folder>/<name>`` for each folder of ``$MODELYARD_DATA`` (a list, separated like
``PATH``; scripts/setup and scripts/test add the workspace's ../shared/datasets when it
exists), the user cache ``($XDG_CACHE_HOME or ~/.cache)/modelyard/<name>`` and
``/usr/share/datasets/<name>`` (where Debian's data set packages install). Nothing is
downloaded unless a URL is configured; a download is checked before it is kept, and written
atomically (temp file, fsync, rename).
"""

from __future__ import annotations

import logging
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from modelyard.data.raw import resolve_path
from modelyard.errors import DataError

__all__ = ["search_folders", "cache_folder", "download_verified"]

log = logging.getLogger(__name__)


def search_folders(name: str, path: str | None) -> list[Path]:
    """Where the files of data set ``name`` are looked for, in order."""
    if path is not None:
        return [resolve_path(path, "data.path", folder=True)]
    folders = [
        Path(entry).expanduser() / name for entry in os.environ.get("MODELYARD_DATA", "").split(os.pathsep) if entry
    ]
    folders.append(cache_folder(name))
    folders.append(Path("/usr/share/datasets") / name)
    return folders


def cache_folder(name: str) -> Path:
    """The user cache folder of data set ``name`` (where downloads go)."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache).expanduser() / "modelyard" / name


def download_verified(source: str, target: Path, check: Callable[[Path], str | None]) -> None:
    """Fetch ``source`` into ``target``; ``check(tmp)`` returns None when the file is right, else
    what is wrong with it (then nothing is saved)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("downloading %s", source)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(source, timeout=60) as response:  # noqa: S310
            while chunk := response.read(1 << 20):
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        problem = check(tmp)
        if problem is not None:
            raise DataError(f"Checksum mismatch for {source}: {problem}; the file was not saved")
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 is for the partial file only
        os.replace(tmp, target)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise DataError(f"Cannot download {source}: {exc}") from None
    finally:
        tmp.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask

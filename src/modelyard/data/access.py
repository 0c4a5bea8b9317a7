"""Which files a data source may read: everything on the CLI, only the data folders in a server.

On a user's own machine (``modelyard train``) a spec reads the user's files. A job sent to
the control plane runs as the server's user, so there a spec may only read under the data
folders the operator configured (``modelyard server --data-dir DIR``; none by default):
never the store (``MODELYARD_HOME``: tokens, the session key, other users' models),
``/dev``, ``/proc`` or ``/sys``, nothing a symlink leads to outside the folders, only
regular files, and at most ``max_bytes`` per source. No URL is fetched on a job's behalf.

The rule is a context (``confined(access)``) around loading the data, so every source
gets it through ``resolve_path`` without an argument threaded through each one; both the
submit route and the worker set it (the worker must not trust what the queue holds).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

from modelyard.errors import DataAccessError

__all__ = ["DataAccess", "confined", "current_access", "SYSTEM_FOLDERS"]

#: Never data, whatever the data folders say: devices (/dev/zero never ends), kernel state.
SYSTEM_FOLDERS = (Path("/dev"), Path("/proc"), Path("/sys"))

_CURRENT: ContextVar[DataAccess | None] = ContextVar("modelyard_data_access", default=None)


def _real(path: str | os.PathLike[str]) -> Path:
    return Path(os.path.realpath(os.path.expanduser(path)))


def _within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


@dataclass(frozen=True)
class DataAccess:
    """The server's data rule: readable ``folders``, ``refused`` ones inside them, a size cap."""

    folders: tuple[Path, ...]
    refused: tuple[Path, ...]
    max_bytes: int

    @classmethod
    def server(cls, folders: Iterable[str | os.PathLike[str]], *, home: Path, max_bytes: int) -> DataAccess:
        refused = (_real(home), *(_real(f) for f in SYSTEM_FOLDERS))
        return cls(tuple(_real(f) for f in folders), refused, max_bytes)

    def configured(self) -> str:
        return ", ".join(str(f) for f in self.folders) or "none"

    def _refuse(self, field: str, shown: str, why: str) -> DataAccessError:
        return DataAccessError(
            f"{field}: {shown!r} {why} (configured: {self.configured()}; start the server with --data-dir DIR)",
            field=field,
        )

    def candidates(self, path: str) -> list[Path]:
        """Where a path may be: itself when absolute, else under each data folder in turn."""
        given = Path(path).expanduser()
        return [given] if given.is_absolute() else [folder / given for folder in self.folders]

    def check(self, path: str, field: str, *, folder: bool = False) -> Path:
        """The real path of ``path`` when a job may read it; DataAccessError naming ``field`` if not."""
        tried = self.candidates(path)
        found = next((p for p in tried if p.exists()), tried[0] if tried else Path(path))
        real = _real(found)
        if not any(_within(real, f) for f in self.folders):
            why = "is outside the server's data folders"
            if real != found.absolute():
                why = f"leads (through a symlink) to {real}, outside the server's data folders"
            raise self._refuse(field, path, why)
        if any(_within(real, f) for f in self.refused):
            raise self._refuse(field, path, "is in the store or a system folder, which jobs may not read")
        if real.exists():
            self.check_entry(real, field, shown=path, folder=folder)
        return real

    def check_entry(self, real: Path, field: str, *, shown: str, folder: bool = False) -> None:
        """Only regular files (or folders) within the size cap: no FIFOs, devices or sockets."""
        if folder and real.is_dir():
            return
        if not real.is_file():
            if real.is_dir():
                return  # resolve_path names the file/folder mismatch
            raise self._refuse(field, shown, "is not a regular file")
        self.check_size(real.stat().st_size, field, shown)

    def check_size(self, size: int, field: str, shown: str) -> None:
        if size > self.max_bytes:
            raise DataAccessError(
                f"{field}: {shown!r} is larger than the server's limit of {self.max_bytes} bytes "
                f"(start the server with a larger --max-data-mb)",
                field=field,
            )

    def check_file_in(self, file: Path, field: str) -> Path:
        """One file found inside an allowed folder (an image of a class folder): a symlink out is refused."""
        return self.check(str(file), field)

    def refuse_url(self, field: str) -> DataAccessError:
        return DataAccessError(
            f"{field}: a job sent to the server may not make it download from a URL; "
            f"put the files in one of its data folders (configured: {self.configured()})",
            field=field,
        )


def current_access() -> DataAccess | None:
    """The rule in force, or None on the CLI (a user's own files)."""
    return _CURRENT.get()


@contextmanager
def confined(access: DataAccess | None) -> Iterator[None]:
    """Apply ``access`` to every data read inside the block (None: no restriction)."""
    token = _CURRENT.set(access)
    try:
        yield
    finally:
        _CURRENT.reset(token)

"""Checkpoint files: the package's assets, the download cache, SHA-256 checks."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from napari_samphase.core.errors import CheckpointError
from napari_samphase.core.sam.registry import get_spec

ASSETS = Path(__file__).resolve().parents[2] / "assets"
CACHE_ENV = "SAMPHASE_CACHE_DIR"


def os_error(exc: OSError, path, action: str = "read") -> CheckpointError:
    """A one-line error that keeps the file system's reason and the path: a folder
    we may not write to is not "offline", an unreadable file is not "corrupted"."""
    where = exc.filename or path
    if isinstance(exc, PermissionError):
        return CheckpointError(f"permission denied: cannot {action} {where}")
    return CheckpointError(f"cannot {action} {where}: {exc.strerror or exc}")


@contextlib.contextmanager
def file_errors(path, action: str = "read"):
    """Raise :func:`os_error` for file-system errors inside the block."""
    try:
        yield
    except OSError as exc:
        raise os_error(exc, path, action) from None


def cache_dir() -> Path:
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    import pooch

    return Path(pooch.os_cache("napari-samphase"))


def sha256sum(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _stamp(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _verified(path: Path, sha: str) -> bool:
    """True if ``path`` (a file in the download cache) has hash ``sha``; a stamp
    beside it (size, mtime) avoids re-hashing GBs."""
    if not path.is_file():
        return False
    stat = path.stat()
    key = f"{sha} {stat.st_size} {stat.st_mtime_ns}"
    stamp = _stamp(path)
    if stamp.is_file() and stamp.read_text() == key:
        return True
    if sha256sum(path) != sha:
        return False
    with contextlib.suppress(OSError):  # read-only cache: verify again next time
        stamp.write_text(key)
    return True


def is_cached(name: str) -> bool:
    """True if ``name``'s checkpoint is on disk and verified (False if it cannot be
    read: loading it then says why)."""
    spec = get_spec(name)
    try:
        if spec.url is None:
            return (ASSETS / spec.filename).is_file()
        return _verified(cache_dir() / spec.filename, spec.sha256)
    except OSError:
        return False


class _CallbackBar:
    """tqdm-like object pooch can drive, forwarding to a progress callback."""

    def __init__(self, progress, message: str) -> None:
        self.progress, self.message, self.total, self.n = progress, message, 0, 0

    def update(self, k: int) -> None:
        self.n += k
        self.progress(self.n, self.total or 1, self.message)

    def reset(self) -> None:
        self.n = 0

    def close(self) -> None:
        pass


def download(name: str, progress=None) -> Path:
    """Fetch an official checkpoint into the cache (verified), or return the cached file.

    ``progress``: None for a tqdm bar on stderr, or a ``(done, total, message)`` callback.
    """
    spec = get_spec(name)
    if spec.url is None:
        return ASSETS / spec.filename
    target = cache_dir() / spec.filename
    with file_errors(target):
        if _verified(target, spec.sha256):
            return target
    import pooch
    import requests

    bar = True if progress is None else _CallbackBar(progress, f"downloading {spec.filename}")
    pooch.get_logger().setLevel("WARNING")  # our own progress bar says what is happening
    try:
        # pooch downloads to a temporary file and moves it into place only after the
        # SHA-256 matches, so a broken transfer never leaves a loadable file behind.
        path = pooch.retrieve(
            spec.url,
            known_hash=f"sha256:{spec.sha256}",
            fname=spec.filename,
            path=target.parent,
            progressbar=bar,
        )
    except ValueError as exc:  # pooch: hash mismatch
        raise CheckpointError(
            f"downloaded {spec.filename} does not match its SHA-256 ({exc}); try again"
        ) from None
    except requests.RequestException as exc:  # network (an OSError too: caught first)
        raise CheckpointError(
            f"cannot download {spec.filename} from {spec.url} ({type(exc).__name__}). "
            f"Offline? Download it by hand and put it at {target}, "
            f"or pass its path with --checkpoint."
        ) from None
    except OSError as exc:  # the cache folder: permissions, disk full, read-only
        err = os_error(exc, target.parent, "write into")
        raise CheckpointError(f"{err} (the download cache; {CACHE_ENV} picks another)") from None
    _verified(Path(path), spec.sha256)
    return Path(path)


def resolve_checkpoint(
    name: str, checkpoint: str | Path | None = None, fetch: bool = True, progress=None
) -> Path:
    """The file to load for ``name``: the user's path, the bundled asset or the cache."""
    spec = get_spec(name)
    if checkpoint is not None:
        path = Path(checkpoint).expanduser()
        with file_errors(path):
            if not path.is_file():
                raise CheckpointError(f"checkpoint {path} does not exist")
        return path
    if spec.url is None:
        path = ASSETS / spec.filename
        with file_errors(path):
            if not path.is_file():
                raise CheckpointError(
                    f"bundled checkpoint {path} is missing; reinstall the package"
                )
            # Hashed every time (a few MB): nothing is ever written into the package.
            if sha256sum(path) != spec.sha256:
                raise CheckpointError(f"bundled checkpoint {path} is corrupted (SHA-256 mismatch)")
        return path
    target = cache_dir() / spec.filename
    with file_errors(target):
        if _verified(target, spec.sha256):
            return target
    if target.exists():
        # A partial or corrupted file: never load it; fetch a fresh copy when allowed.
        if not fetch:
            raise CheckpointError(f"{target} is incomplete or corrupted (SHA-256 mismatch)")
    elif not fetch:
        raise CheckpointError(
            f"model {name} is not downloaded: run `samphase download --model {name}` "
            f"or put {spec.filename} ({spec.url}) at {target}"
        )
    return download(name, progress=progress)

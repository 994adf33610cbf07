"""Checksummed folders: ``MANIFEST.json`` lists the sha256 and size of every file a folder holds, so that a
corrupted, truncated or edited artefact is refused on load instead of silently changing results."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from .errors import IntegrityError, MissingFileError

MANIFEST = "MANIFEST.json"
_CHUNK = 1 << 20


def sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)


def write(folder: str | os.PathLike) -> Path:
    """Write ``folder/MANIFEST.json`` covering every file under ``folder`` (call it last, before the rename)."""
    folder = Path(folder)
    entries = {p.relative_to(folder).as_posix(): {"sha256": sha256(p), "bytes": p.stat().st_size}
               for p in _files(folder)}
    path = folder / MANIFEST
    path.write_text(json.dumps({"files": entries}, indent=1, sort_keys=True), encoding="utf-8")
    return path


def verify(folder: str | os.PathLike, required: tuple[str, ...] = (), only: tuple[str, ...] | None = None, *,
           sealed: tuple[str, ...] = ()) -> dict[str, dict]:
    """Check every file listed in ``folder/MANIFEST.json`` (size and sha256) and that ``required`` files are listed;
    with ``only``, just those of the listed files (a reader that opens a few files of a large folder). The files of
    each ``sealed`` sub-folder that holds its own manifest are checked for size only: whoever reads that folder
    verifies the checksums of what it reads against that manifest, so they are not read twice.

    Raises :class:`MissingFileError` when the manifest or a listed file is missing and :class:`IntegrityError` when a
    file differs from what was written.
    """
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise MissingFileError(f"no {MANIFEST}: the folder is incomplete or was not written by ratecast",
                               path=str(folder))
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        entries = data["files"]
        if not isinstance(entries, dict):
            raise TypeError("files must be an object")
        listed = {str(k): (str(v["sha256"]), int(v["bytes"])) for k, v in entries.items()}
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise IntegrityError(f"{path}: not a valid manifest ({type(exc).__name__}: {exc})") from None
    for name in required:
        if name not in listed:
            raise IntegrityError(f"{path}: required file {name!r} is not listed")
    sealed = tuple(f"{sub.rstrip('/')}/" for sub in sealed if (folder / sub / MANIFEST).is_file())
    for name, (digest, size) in listed.items():
        if only is not None and name not in only:
            continue
        p = folder / name
        if ".." in Path(name).parts or Path(name).is_absolute():
            raise IntegrityError(f"{path}: unsafe file name {name!r}")
        if not p.is_file():
            raise MissingFileError(f"listed in {MANIFEST} but missing", path=str(p))
        actual = p.stat().st_size
        if actual != size:
            raise IntegrityError(f"{p}: size {actual} bytes, expected {size} (truncated or replaced)")
        if not name.startswith(sealed) and sha256(p) != digest:
            raise IntegrityError(f"{p}: sha256 does not match {MANIFEST} (the file was corrupted or edited)")
    return entries

"""Downloading and unpacking dataset archives: checksummed with pooch, cached, never left half-written."""

from __future__ import annotations

import contextlib
import os
import re
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path

from ..errors import DataError, DownloadError, MissingFileError, spelled
from ..io import replace_dir, temp_dir
from .readers import check_file, one_line

GROUPLENS_URL = "https://files.grouplens.org/datasets/movielens/"
_MD5 = re.compile(r"\b([0-9a-fA-F]{32})\b")


class NoLocalCopyError(MissingFileError, DownloadError):
    """A release is neither in the data folder nor downloadable now (exit code 4 on the command line)."""


class _Unreachable(DownloadError):
    """The archive or its checksum could not be fetched (no network, a refused connection, an HTTP error)."""


def default_data_home(data_home: str | os.PathLike | None = None) -> Path:
    """``data_home`` if given, else ``$RATECAST_DATA``, else the per-user cache folder."""
    for where, value in (("data_home", data_home), ("RATECAST_DATA", os.environ.get("RATECAST_DATA"))):
        if value is not None and (where == "data_home" or value):
            home = Path(value).expanduser()
            if home.exists() and not home.is_dir():
                name = spelled(where) if where == "data_home" else where
                raise DataError(f"{name} must be a folder, got the file {str(home)!r}")
            return home
    import platformdirs

    return Path(platformdirs.user_cache_dir("ratecast"))


def fetch_published_md5(url: str, timeout: float = 30.0) -> str:
    """The md5 published beside ``url`` (at ``url + '.md5'``), e.g. ``MD5 (ml-100k.zip) = 0e33...``."""
    md5_url = url + ".md5"
    try:
        with urllib.request.urlopen(md5_url, timeout=timeout) as resp:
            text = resp.read(4096).decode("ascii", errors="replace")
    except urllib.error.HTTPError as exc:
        raise _Unreachable(f"could not fetch checksum {md5_url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise _Unreachable(f"could not fetch checksum {md5_url}: {getattr(exc, 'reason', exc)}") from None
    m = _MD5.search(text)
    if not m:
        raise DownloadError(f"checksum file {md5_url} holds no md5 hash (got {text[:80]!r})")
    return m.group(1).lower()


def download(url: str, dest: Path, *, md5: str | None = None, progress: bool = True) -> Path:
    """Download ``url`` to ``dest`` and verify its md5 (the published one when ``md5`` is None).

    pooch writes to a temporary file beside ``dest`` and moves it into place only once the hash matches, so a failed
    or interrupted download leaves nothing behind.
    """
    import pooch
    import requests

    md5 = md5 or fetch_published_md5(url)
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        path = pooch.retrieve(
            url,
            known_hash=f"md5:{md5}",
            fname=dest.name,
            path=dest.parent,
            progressbar=progress,
        )
    except requests.exceptions.RequestException as exc:  # HTTP errors, refused connections, no network
        raise _Unreachable(f"could not download {url}: {exc}") from None
    except ValueError as exc:
        if "hash" in str(exc).lower():
            raise DownloadError(
                f"checksum mismatch for {url}: expected md5 {md5}; the download was discarded ({exc})"
            ) from None
        raise
    return Path(path)


def extract_zip(archive: Path, into: Path, folder: str, required: tuple[str, ...] = ()) -> Path:
    """Extract ``folder`` from ``archive`` into ``into/folder`` atomically (temp folder, then rename).

    Every member is checked (CRC, compressed data) before anything is moved into place; an archive that lacks one of
    the ``required`` files in ``folder`` is rejected.
    """
    check_file(archive, "a zip archive")
    target = into / folder
    # the scratch folder is owned by this process: what a kill leaves behind, the next write removes
    with contextlib.ExitStack() as stack:
        try:
            into.mkdir(parents=True, exist_ok=True)
            tmp = stack.enter_context(temp_dir(target))
        except OSError as exc:
            raise DataError(f"cannot extract into this folder: {exc.strerror or one_line(exc)}",
                            path=str(into)) from None
        _unpack(archive, tmp)
        found = tmp / folder
        if not found.is_dir():
            raise DataError(f"zip archive has no folder {folder!r}", path=str(archive))
        missing = [f for f in required if not (found / f).exists()]
        if missing:
            raise DataError(f"zip archive lacks {missing} in {folder!r}", path=str(archive))
        replace_dir(found, target)
    return target


def _unpack(archive: Path, into: Path) -> None:
    """Check every member of ``archive`` and extract them all into ``into``; any fault is one :class:`DataError`."""
    damage = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, ValueError, OSError)
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                p = Path(info.filename)
                if p.is_absolute() or ".." in p.parts:
                    raise DataError(f"unsafe path in zip archive: {info.filename!r}", path=str(archive))
                try:
                    with zf.open(info) as member:
                        while member.read(1 << 20):
                            pass
                except damage as exc:
                    raise DataError(
                        f"corrupt zip archive: member {info.filename!r} cannot be read ({one_line(exc)})",
                        path=str(archive),
                    ) from None
            zf.extractall(into)
    except DataError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, ValueError) as exc:
        raise DataError(f"corrupt or truncated zip archive ({one_line(exc)})", path=str(archive)) from None
    except OSError as exc:
        raise DataError(f"cannot be unpacked as a zip archive ({one_line(exc)})", path=str(archive)) from None


def fetch_archive(
    name: str,
    folder: str,
    data_home: Path,
    *,
    base_url: str | None = None,
    required: tuple[str, ...] = (),
    progress: bool = True,
    md5: str | None = None,
) -> Path:
    """Return the extracted folder of archive ``name``: from ``data_home/folder``, else ``data_home/name.zip``, else
    downloaded from ``base_url`` (default ``$RATECAST_MIRROR`` or GroupLens) and checked against ``md5`` (when None:
    the md5 published beside the archive, for releases that change over time).

    An existing ``data_home/folder`` is never replaced: if it lacks one of the ``required`` files,
    :class:`MissingFileError` says which. When there is no local copy and the download cannot be fetched,
    :class:`NoLocalCopyError` says where the release was looked for and how to provide it.
    """
    target = data_home / folder
    if target.is_dir():
        missing = [f for f in required if not (target / f).exists()]
        if missing:
            raise MissingFileError(
                f"incomplete local copy of {name} at {target}: missing {missing} "
                f"(add the files, or remove the folder to fetch {name} again)"
            )
        return target
    if target.exists():
        raise DataError(f"exists but is not a folder: expected the extracted {name} release", path=str(target))
    archive = data_home / f"{name}.zip"
    if archive.exists():
        return extract_zip(archive, data_home, folder, required)
    base = base_url or os.environ.get("RATECAST_MIRROR") or GROUPLENS_URL
    url = base.rstrip("/") + f"/{name}.zip"
    data_home.mkdir(parents=True, exist_ok=True)
    try:
        download(url, archive, md5=md5, progress=progress)
    except _Unreachable as exc:
        raise NoLocalCopyError(
            f"no local copy of {name} in {data_home} (expected the folder {target} or the archive {archive}), and "
            f"it could not be downloaded ({exc}): download {url} there, or point RATECAST_DATA or "
            f"{spelled('data_home')} at a folder holding {folder}/"
        ) from None
    try:
        return extract_zip(archive, data_home, folder, required)
    except DataError:
        archive.unlink(missing_ok=True)  # the downloaded archive is ours: the next call starts clean
        raise

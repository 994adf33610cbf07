"""Downloading and unpacking dataset archives: checksummed with pooch, cached, never left half-written."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from ..errors import DataError, DownloadError
from ..io import replace_dir

GROUPLENS_URL = "https://files.grouplens.org/datasets/movielens/"
_MD5 = re.compile(r"\b([0-9a-fA-F]{32})\b")


def default_data_home(data_home: str | os.PathLike | None = None) -> Path:
    """``data_home`` if given, else ``$RATECAST_DATA``, else the per-user cache folder."""
    if data_home is not None:
        return Path(data_home).expanduser()
    env = os.environ.get("RATECAST_DATA")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("ratecast"))


def fetch_published_md5(url: str, timeout: float = 30.0) -> str:
    """The md5 published beside ``url`` (at ``url + '.md5'``), e.g. ``MD5 (ml-100k.zip) = 0e33...``."""
    md5_url = url + ".md5"
    try:
        with urllib.request.urlopen(md5_url, timeout=timeout) as resp:
            text = resp.read(4096).decode("ascii", errors="replace")
    except urllib.error.HTTPError as exc:
        raise DownloadError(f"could not fetch checksum {md5_url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise DownloadError(f"could not fetch checksum {md5_url}: {getattr(exc, 'reason', exc)}") from None
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
    except requests.exceptions.HTTPError as exc:
        raise DownloadError(f"could not download {url}: {exc}") from None
    except requests.exceptions.RequestException as exc:
        raise DownloadError(f"could not download {url}: {exc}") from None
    except ValueError as exc:
        if "hash" in str(exc).lower():
            raise DownloadError(
                f"checksum mismatch for {url}: expected md5 {md5}; the download was discarded ({exc})"
            ) from None
        raise
    return Path(path)


def extract_zip(archive: Path, into: Path, folder: str) -> Path:
    """Extract ``folder`` from ``archive`` into ``into/folder`` atomically (temp folder, then rename)."""
    target = into / folder
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder}-", dir=into))
    try:
        try:
            with zipfile.ZipFile(archive) as zf:
                bad = zf.testzip()
                if bad is not None:
                    raise DataError(f"corrupt zip archive: member {bad!r} fails its CRC check", path=str(archive))
                for member in zf.namelist():
                    p = Path(member)
                    if p.is_absolute() or ".." in p.parts:
                        raise DataError(f"unsafe path in zip archive: {member!r}", path=str(archive))
                zf.extractall(tmp)
        except zipfile.BadZipFile as exc:
            raise DataError(f"corrupt or truncated zip archive ({exc})", path=str(archive)) from None
        except (EOFError, zipfile.LargeZipFile, OSError) as exc:
            raise DataError(f"corrupt or truncated zip archive ({exc})", path=str(archive)) from None
        found = tmp / folder
        if not found.is_dir():
            raise DataError(f"zip archive has no folder {folder!r}", path=str(archive))
        replace_dir(found, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def fetch_archive(
    name: str,
    folder: str,
    data_home: Path,
    *,
    base_url: str | None = None,
    required: tuple[str, ...] = (),
    progress: bool = True,
) -> Path:
    """Return the extracted folder of archive ``name``: from ``data_home/folder``, else ``data_home/name.zip``, else
    downloaded from ``base_url`` (default ``$RATECAST_MIRROR`` or GroupLens) with its published md5."""
    target = data_home / folder
    if target.is_dir() and all((target / f).exists() for f in required):
        return target
    archive = data_home / f"{name}.zip"
    if archive.exists():
        return extract_zip(archive, data_home, folder)
    base = base_url or os.environ.get("RATECAST_MIRROR") or GROUPLENS_URL
    url = base.rstrip("/") + f"/{name}.zip"
    data_home.mkdir(parents=True, exist_ok=True)
    download(url, archive, progress=progress)
    try:
        return extract_zip(archive, data_home, folder)
    except DataError:
        archive.unlink(missing_ok=True)  # the next call starts clean
        raise

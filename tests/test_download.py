"""The downloader, end to end against a loopback HTTP server the test starts and stops."""

import hashlib
import http.server
import io
import threading
import zipfile
from pathlib import Path

import pytest

import ratecast as rc
from ratecast.datasets.download import extract_zip
from ratecast.errors import DataError, DownloadError, MissingFileError


def tiny_ml100k_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("ml-100k/u.data", "1\t1\t5\t874965758\n1\t2\t3\t876893171\n2\t1\t4\t888550871\n")
        zf.writestr("ml-100k/u.genre", "unknown|0\nAction|1\n\n")
        zf.writestr(
            "ml-100k/u.item",
            "1|Toy Story (1995)|01-Jan-1995||http://x|0|0\n2|GoldenEye (1995)|01-Jan-1995||http://y|0|1\n".encode("latin-1"),
        )
        zf.writestr("ml-100k/u.user", "1|24|M|technician|85711\n2|53|F|other|94043\n")
    return buf.getvalue()


@pytest.fixture
def server():
    files: dict[str, tuple[int, bytes]] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            status, body = files.get(self.path, (404, b"not found"))
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield files, f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(autouse=True)
def tiny_release(monkeypatch):
    """The tiny ml-100k of these tests has neither GroupLens's row counts nor its md5: its md5 is fetched from beside
    the archive, as for a release without a pinned one."""
    monkeypatch.setattr(rc.datasets.movielens, "KNOWN_COUNTS", {})
    monkeypatch.setattr(rc.datasets.movielens, "PUBLISHED_MD5", {})


def publish(files, body: bytes, md5: str | None = None, status: int = 200):
    md5 = md5 or hashlib.md5(body).hexdigest()
    files["/ml-100k.zip"] = (status, body)
    files["/ml-100k.zip.md5"] = (200, f"MD5 (ml-100k.zip) = {md5}\n".encode())


def leftovers(home: Path) -> list[str]:
    return sorted(p.name for p in home.iterdir()) if home.exists() else []


def test_good_zip_is_downloaded_verified_and_cached(server, tmp_path):
    files, url = server
    publish(files, tiny_ml100k_zip())
    ds = rc.datasets.load_movielens("ml-100k", data_home=tmp_path, base_url=url, progress=False)
    assert ds.n_ratings == 3 and ds.items.loc[2, "Action"] == 1
    assert leftovers(tmp_path) == ["ml-100k", "ml-100k.zip"]
    files.clear()  # a second load needs no network
    assert rc.datasets.load_movielens("ml-100k", data_home=tmp_path, base_url=url).n_ratings == 3


def test_checksum_mismatch_leaves_nothing(server, tmp_path):
    files, url = server
    publish(files, tiny_ml100k_zip(), md5="0" * 32)
    with pytest.raises(DownloadError, match=r"checksum mismatch for http://127.0.0.1:\d+/ml-100k.zip: expected md5 0{32}"):
        rc.datasets.load_movielens("ml-100k", data_home=tmp_path, base_url=url, progress=False)
    assert leftovers(tmp_path) == []
    publish(files, tiny_ml100k_zip())  # the next call starts clean and succeeds
    assert rc.datasets.load_movielens("ml-100k", data_home=tmp_path, base_url=url, progress=False).n_ratings == 3


def test_corrupt_zip_is_reported_and_removed(server, tmp_path):
    files, url = server
    body = tiny_ml100k_zip()
    publish(files, body[: len(body) // 2])  # truncated, with a matching md5
    with pytest.raises(DataError, match=r"ml-100k.zip: corrupt or truncated zip archive"):
        rc.datasets.load_movielens("ml-100k", data_home=tmp_path, base_url=url, progress=False)
    assert leftovers(tmp_path) == []


def test_server_error(server, tmp_path):
    files, url = server
    publish(files, b"oops", status=500)
    with pytest.raises(DownloadError, match=r"could not download http://127.0.0.1:\d+/ml-100k.zip: 500"):
        rc.datasets.load_movielens("ml-100k", data_home=tmp_path, base_url=url, progress=False)
    assert leftovers(tmp_path) == []
    files.clear()
    with pytest.raises(DownloadError, match=r"could not fetch checksum .*ml-100k.zip.md5: HTTP 404"):
        rc.datasets.load_movielens("ml-100k", data_home=tmp_path, base_url=url, progress=False)


def test_local_zip_is_used_without_network(tmp_path):
    (tmp_path / "ml-100k.zip").write_bytes(tiny_ml100k_zip())
    ds = rc.datasets.load_movielens("ml-100k", data_home=tmp_path, base_url="http://127.0.0.1:9/")
    assert ds.n_ratings == 3


def test_local_corrupt_zip(tmp_path):
    (tmp_path / "ml-100k.zip").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DataError, match="ml-100k.zip: corrupt or truncated zip archive"):
        rc.datasets.load_movielens("ml-100k", data_home=tmp_path)
    assert leftovers(tmp_path) == ["ml-100k.zip"]  # the user's own file is not deleted


def test_data_home_from_environment(tmp_path, monkeypatch):
    (tmp_path / "ml-100k.zip").write_bytes(tiny_ml100k_zip())
    monkeypatch.setenv("RATECAST_DATA", str(tmp_path))
    assert rc.datasets.load_movielens("ml-100k").n_ratings == 3


# --- local copies and broken archives -------------------------------------------------------------------------------


def test_incomplete_local_copy_is_reported_not_downloaded_over(server, tmp_path):
    files, url = server
    publish(files, tiny_ml100k_zip())
    folder = tmp_path / "ml-100k"
    with zipfile.ZipFile(io.BytesIO(tiny_ml100k_zip())) as zf:
        zf.extractall(tmp_path)
    (folder / "u.user").unlink()
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(MissingFileError, match=r"incomplete local copy of ml-100k at .*ml-100k: missing \['u.user'\]"):
        rc.datasets.load_movielens("ml-100k", data_home=tmp_path, base_url=url, progress=False)
    assert leftovers(tmp_path) == ["ml-100k"]
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt", "u.data", "u.genre", "u.item"]
    (tmp_path / "ml-100k.zip").write_bytes(tiny_ml100k_zip())  # a local zip does not replace the folder either
    with pytest.raises(MissingFileError, match=r"incomplete local copy"):
        rc.datasets.load_movielens("ml-100k", data_home=tmp_path, download=False)
    assert (folder / "notes.txt").read_text() == "mine"


def test_release_path_that_is_a_file(tmp_path):
    (tmp_path / "ml-100k").write_text("not a folder")
    with pytest.raises(DataError, match=r"ml-100k: exists but is not a folder"):
        rc.datasets.load_movielens("ml-100k", data_home=tmp_path, base_url="http://127.0.0.1:9/")
    assert (tmp_path / "ml-100k").read_text() == "not a folder"


def test_local_zip_without_download(tmp_path):
    (tmp_path / "ml-100k.zip").write_bytes(tiny_ml100k_zip())
    assert rc.datasets.load_movielens("ml-100k", data_home=tmp_path, download=False).n_ratings == 3


def _corrupt_member(compression: int) -> bytes:
    """A one-member zip whose member data has one byte flipped (CRC or deflate stream broken)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as zf:
        zf.writestr("ml-100k/u.data", "1\t1\t5\t874965758\n" * 200)
    body = bytearray(buf.getvalue())
    with zipfile.ZipFile(io.BytesIO(bytes(body))) as zf:
        info = zf.getinfo("ml-100k/u.data")
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    body[start + 5] ^= 0xFF
    return bytes(body)


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_zip_with_corrupt_member_data(tmp_path, compression):
    archive = tmp_path / "ml-100k.zip"
    archive.write_bytes(_corrupt_member(compression))
    with pytest.raises(DataError, match=r"ml-100k.zip: corrupt zip archive: member 'ml-100k/u.data'") as err:
        extract_zip(archive, tmp_path, "ml-100k")
    assert "\n" not in str(err.value)
    assert leftovers(tmp_path) == ["ml-100k.zip"]


def test_zip_without_a_required_file(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("ml-100k/u.data", "1\t1\t5\t874965758\n")
    (tmp_path / "ml-100k.zip").write_bytes(buf.getvalue())
    with pytest.raises(DataError, match=r"ml-100k.zip: zip archive lacks \['u.item', 'u.genre', 'u.user'\] in 'ml-100k'"):
        rc.datasets.load_movielens("ml-100k", data_home=tmp_path, download=False)
    assert leftovers(tmp_path) == ["ml-100k.zip"]


def test_missing_archive(tmp_path):
    with pytest.raises(MissingFileError, match=r"nope.zip: file not found"):
        extract_zip(tmp_path / "nope.zip", tmp_path, "ml-100k")


def test_unwritable_extraction_folder(tmp_path, monkeypatch):
    (tmp_path / "ml-100k.zip").write_bytes(tiny_ml100k_zip())

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("ratecast.datasets.download.temp_dir", denied)
    with pytest.raises(DataError, match=r": cannot extract into this folder: Permission denied"):
        extract_zip(tmp_path / "ml-100k.zip", tmp_path, "ml-100k")


def test_data_home_that_is_a_file_is_refused(tmp_path):
    from ratecast.datasets.download import default_data_home

    f = tmp_path / "s.csv"
    f.write_text("x")
    with pytest.raises(DataError, match=r"data_home must be a folder, got the file '.*s.csv'"):
        default_data_home(f)


# --- pinned checksums -----------------------------------------------------------------------------------------------


def test_a_mirror_cannot_substitute_an_archive_of_a_pinned_release(server, tmp_path, monkeypatch):
    files, url = server
    grouplens = {"ml-100k": "0e33842e24a9c977be4e0107933c0723"}
    monkeypatch.setattr(rc.datasets.movielens, "PUBLISHED_MD5", grouplens)
    publish(files, tiny_ml100k_zip())  # another archive, with its own md5 published beside it by the same mirror
    with pytest.raises(DownloadError, match=r"checksum mismatch for .*ml-100k.zip: expected md5 "
                                            r"0e33842e24a9c977be4e0107933c0723"):
        rc.datasets.load_movielens("ml-100k", data_home=tmp_path, base_url=url, progress=False)
    assert leftovers(tmp_path) == []


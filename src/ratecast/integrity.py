"""Checks shared by the loaders of saved artefacts (a recommender, a blend): the keys and types of their JSON, and the
sizes their binary files really hold, read from headers without loading any array.

Every check raises a one-line :class:`~ratecast.errors.IntegrityError` that names the file, the field and the value.
"""

from __future__ import annotations

import math
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import IntegrityError

NoneType = type(None)
_KIND_NAMES = {str: "a string", dict: "an object", list: "a list", int: "an integer", float: "a number",
               bool: "true or false", NoneType: "null"}


def require(condition: bool, path: Path, message: str) -> None:
    """Raise ``IntegrityError("<path>: <message>")`` unless ``condition``."""
    if not condition:
        raise IntegrityError(f"{path}: {message}")


def kind_name(kinds: tuple[type, ...]) -> str:
    """``(int, NoneType)`` as "an integer or null"."""
    return " or ".join(_KIND_NAMES.get(k, k.__name__) for k in kinds)


def is_kind(value: Any, kinds: tuple[type, ...]) -> bool:
    """Whether a JSON ``value`` is one of ``kinds``; a boolean is no number, an integer is a number (``float``)."""
    if isinstance(value, bool):
        return bool in kinds
    if isinstance(value, int) and float in kinds:
        return True
    return isinstance(value, tuple(k for k in kinds if k is not bool))


def check_fields(data: Mapping[str, Any], schema: Mapping[str, tuple[type, ...]], path: Path, *,
                 where: str = "field") -> None:
    """Every key of ``schema`` is in ``data`` with a value of its kinds, and ``data`` holds no other key."""
    for name, kinds in schema.items():
        require(name in data, path, f"{where} {name!r} is missing: the file is incomplete or was written by another "
                                    "ratecast version")
        require(is_kind(data[name], kinds), path,
                f"{where} {name!r} must be {kind_name(kinds)}, got {type(data[name]).__name__}")
    unknown = sorted(set(data) - set(schema))
    require(not unknown, path, f"unknown {where}(s) {unknown}: the file was edited or written by another ratecast "
                               "version")


def finite(value: Any) -> bool:
    """Whether ``value`` is a finite number (not a boolean)."""
    return is_kind(value, (float,)) and math.isfinite(value)


# --- sizes from file headers -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ArrayHeader:
    """The shape and type an array in a file declares, and the bytes the file really gives it."""

    shape: tuple[int, ...]
    dtype: np.dtype
    stored_bytes: int  # the npz member's uncompressed size, or the h5 dataset's allocated storage

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=object)) * self.dtype.itemsize


def npz_headers(path: Path) -> dict[str, ArrayHeader]:
    """The arrays of an ``.npz`` file by name, from their ``.npy`` headers (no array is read). An array whose
    declared size exceeds what its member holds is refused."""
    out = {}
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                require(info.filename.endswith(".npy"), path, f"member {info.filename!r} is not an array")
                with zf.open(info) as fh:
                    version = np.lib.format.read_magic(fh)
                    read = {(1, 0): np.lib.format.read_array_header_1_0,
                            (2, 0): np.lib.format.read_array_header_2_0}.get(version)
                    require(read is not None, path, f"member {info.filename!r}: unsupported .npy version {version}")
                    shape, _, dtype = read(fh)
                    header = ArrayHeader(tuple(int(s) for s in shape), np.dtype(dtype), info.file_size - fh.tell())
                require(not dtype.hasobject, path, f"member {info.filename!r} holds Python objects")
                require(header.nbytes <= header.stored_bytes, path,
                        f"array {info.filename[:-4]!r} declares shape {header.shape} ({header.nbytes} bytes) but "
                        f"holds {header.stored_bytes} bytes")
                out[info.filename[:-4]] = header
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise IntegrityError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from None
    return out


def h5_headers(path: Path) -> dict[str, ArrayHeader]:
    """The datasets of an HDF5 file by path, from its metadata (no dataset is read). A dataset that is compressed,
    external or virtual, or whose storage is smaller than its declared size, is refused, as is a file whose datasets
    declare more bytes than the file holds."""
    import h5py

    out: dict[str, ArrayHeader] = {}

    def visit(name: str, obj) -> None:
        if isinstance(obj, h5py.Dataset):
            require(obj.compression is None and not obj.is_virtual and obj.external is None, path,
                    f"dataset {name!r} is compressed, external or virtual (not as ratecast writes weights)")
            out[name] = ArrayHeader(tuple(int(s) for s in obj.shape), np.dtype(obj.dtype), obj.id.get_storage_size())
            require(out[name].nbytes <= out[name].stored_bytes, path,
                    f"dataset {name!r} declares shape {out[name].shape} ({out[name].nbytes} bytes) but "
                    f"holds {out[name].stored_bytes} bytes")

    try:
        with h5py.File(path, "r") as f:
            f.visititems(visit)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise IntegrityError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from None
    declared, size = sum(h.nbytes for h in out.values()), path.stat().st_size
    require(declared <= size, path, f"its datasets declare {declared} bytes but the file holds {size}")
    return out

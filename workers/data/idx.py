"""IDX files (the MNIST format): read and write, gzipped or raw, with strict header checks."""

from __future__ import annotations

import gzip as _gzip
import math
import zlib
from pathlib import Path

import numpy as np

from storage.contract.errors import BadInput

# IDX type code -> big-endian NumPy dtype (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT").
DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dtype.newbyteorder("="): code for code, dtype in DTYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"
_FIX = "re-download it or point --dataset at a good copy"


def _bad(path: Path, what: str) -> BadInput:
    return BadInput(f"{path}: {what}; {_FIX}")


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file, gzipped (detected by its magic bytes, not its name) or raw.

    Parameters
    ----------
    path : str or Path
        The file, e.g. ``train-images-idx3-ubyte.gz``.

    Returns
    -------
    np.ndarray
        Native byte order, shape ``(d1, ..., dk)`` from the header: ``(N, 28, 28)`` uint8 for
        MNIST images, ``(N,)`` uint8 for labels.

    Raises
    ------
    BadInput
        The file is missing or unreadable, the gzip stream is broken, the magic number or the
        type code is wrong, or the payload is shorter or longer than the header says.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise _bad(path, f"cannot read ({exc.strerror or exc})") from None
    if data[:2] == _GZIP_MAGIC:
        try:
            data = _gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise _bad(path, f"broken gzip stream ({exc})") from None
    if len(data) < 4:
        raise _bad(path, f"{len(data)} bytes, too short for an IDX header")
    zero, code, ndim = data[:2], data[2], data[3]
    if zero != b"\0\0" or code not in DTYPES or ndim == 0:
        expected = "0x0000TTDD: type TT in 08 09 0B 0C 0D 0E, DD >= 1 dimensions"
        raise _bad(path, f"bad IDX magic number 0x{data[:4].hex()} (expected {expected})")
    start = 4 + 4 * ndim
    if len(data) < start:
        raise _bad(path, f"header cut short: {ndim} dimensions need {start} bytes, file has {len(data)}")
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    dtype = DTYPES[code]
    expected = math.prod(shape) * dtype.itemsize  # exact: a header of 2**32-1 per dimension overflows int64
    got = len(data) - start
    if got != expected:
        kind = "truncated" if got < expected else "oversized"
        raise _bad(path, f"{kind} payload: header {shape} needs {expected} bytes, file has {got}")
    return np.frombuffer(data, dtype, offset=start).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: str | Path, array: np.ndarray, gzip: bool = True) -> Path:
    """Write ``array`` as an IDX file (big-endian), gzipped or raw; the inverse of `read_idx`.

    Parameters
    ----------
    path : str or Path
        Where to write; the name is used as given (no suffix is added).
    array : np.ndarray
        Shape ``(d1, ..., dk)``, k >= 1, of dtype uint8, int8, int16, int32, float32 or float64.
    gzip : bool
        Compress the file (deterministically: no timestamp in the gzip header).

    Returns
    -------
    Path
        ``path``.
    """
    array = np.asarray(array)
    code = _CODES.get(array.dtype.newbyteorder("="))
    if code is None:
        raise ValueError(f"IDX cannot hold dtype {array.dtype}: use one of {sorted(map(str, _CODES))}")
    if array.ndim == 0:
        raise ValueError("IDX needs an array of at least one dimension")
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    data = header + np.ascontiguousarray(array, DTYPES[code]).tobytes()
    if gzip:
        data = _gzip.compress(data, mtime=0)
    path = Path(path)
    path.write_bytes(data)
    return path

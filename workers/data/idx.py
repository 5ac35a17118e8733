"""IDX files (the MNIST format): read and write, gzipped or raw, with strict header checks."""

from __future__ import annotations

import gzip as _gzip
import math
import os
import stat
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
_MAX_RATIO = 1032  # deflate's largest expansion: a gzip file of n bytes holds at most about 1032 * n


def _bad(path: Path, what: str) -> BadInput:
    return BadInput(f"{path}: {what}; {_FIX}")


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file, gzipped (detected by its magic bytes, not its name) or raw.

    The payload is read (and decompressed) as a stream, never more than the header declares plus one
    byte, so a gzip stream that expands beyond it is refused after that much.

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
        The file is missing, unreadable or not a regular file, the gzip stream is broken, the magic
        number or the type code is wrong, or the payload is shorter or longer than the header says.
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO opens at once (then is refused)
        with open(fd, "rb") as raw:
            st = os.fstat(raw.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise _bad(path, "not a regular file (a folder, device or pipe)")
            packed = raw.read(2) == _GZIP_MAGIC
            raw.seek(0)
            if not packed:
                return _parse(path, raw, st.st_size)
            with _gzip.GzipFile(fileobj=raw, mode="rb") as stream:
                return _parse(path, stream, None, st.st_size)
    except BadInput:
        raise
    except (EOFError, zlib.error, _gzip.BadGzipFile) as exc:
        raise _bad(path, f"broken gzip stream ({exc})") from None
    except OSError as exc:
        raise _bad(path, f"cannot read ({exc.strerror or exc})") from None


def _parse(path: Path, f, size: int | None, packed_size: int = 0) -> np.ndarray:
    """The array in IDX stream `f`: raw of `size` bytes, or (`size` None) decompressed from
    `packed_size` bytes of gzip. Nothing beyond the declared payload and one byte is read."""
    head = f.read(4)
    if len(head) < 4:
        raise _bad(path, f"{len(head)} bytes, too short for an IDX header")
    zero, code, ndim = head[:2], head[2], head[3]
    if zero != b"\0\0" or code not in DTYPES or ndim == 0:
        expected = "0x0000TTDD: type TT in 08 09 0B 0C 0D 0E, DD >= 1 dimensions"
        raise _bad(path, f"bad IDX magic number 0x{head.hex()} (expected {expected})")
    start = 4 + 4 * ndim
    dims = f.read(4 * ndim)
    if len(dims) < 4 * ndim:
        raise _bad(path, f"header cut short: {ndim} dimensions need {start} bytes, file has {4 + len(dims)}")
    shape = tuple(int(d) for d in np.frombuffer(dims, ">u4"))
    dtype = DTYPES[code]
    expected = math.prod(shape) * dtype.itemsize  # exact: a header of 2**32-1 per dimension overflows int64

    def wrong(got: int | str) -> BadInput:
        kind = "oversized" if isinstance(got, str) or got > expected else "truncated"
        return _bad(path, f"{kind} payload: header {shape} needs {expected} bytes, file has {got}")

    if size is not None and size - start != expected:  # raw: the size says it before anything is read
        raise wrong(size - start)
    if size is None and expected > _MAX_RATIO * packed_size + 1024:  # no gzip stream of this size holds it
        raise wrong(f"at most {_MAX_RATIO * packed_size + 1024} in its {packed_size} gzipped bytes")
    try:
        payload = bytearray(expected)
    except MemoryError:
        raise _bad(path, f"header {shape} declares {expected} bytes, more than this process can hold") from None
    got = f.readinto(payload) if expected else 0
    while 0 < got < expected and (more := f.readinto(memoryview(payload)[got:])):
        got += more
    if got < expected:
        raise wrong(got)
    if f.read(1):  # one byte past the payload is enough to refuse it (and no more is decompressed)
        raise wrong("more")
    return np.frombuffer(payload, dtype).reshape(shape).astype(dtype.newbyteorder("="), copy=False)


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

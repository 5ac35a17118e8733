"""workers.data: IDX files, the real MNIST files, digits, the split, and downloads from a real local HTTP server."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import shutil
import socket
import threading
from pathlib import Path

import numpy as np
import pytest

from storage.contract.errors import BadInput
from workers.data import Dataset, load, mnist
from workers.data.idx import read_idx, write_idx

README_CLASS_COUNTS = [2381, 2732, 2347, 2487, 2347, 2144, 2370, 2489, 2292, 2411]
FILE_NAMES = [f"{stem}.gz" for stem in mnist.FILES]


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


# --- IDX ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("compress", [True, False], ids=["gz", "raw"])
@pytest.mark.parametrize(
    "array",
    [
        np.arange(7 * 5 * 3, dtype=np.uint8).reshape(7, 5, 3),
        np.array([-128, -1, 0, 127], dtype=np.int8),
        np.arange(-600, 600, 7, dtype=np.int16).reshape(-1, 1),
        np.array([[-(2**31), 2**31 - 1], [1, -1]], dtype=np.int32),
        np.linspace(-1, 1, 24, dtype=np.float32).reshape(2, 3, 4),
        np.array([np.pi, -np.e, 1e300], dtype=np.float64),
        np.zeros((0, 28, 28), dtype=np.uint8),
    ],
    ids=["u8-3d", "i8", "i16-2d", "i32", "f32-3d", "f64", "empty"],
)
def test_idx_round_trip(tmp_path, array, compress):
    path = write_idx(tmp_path / "a.idx", array, gzip=compress)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == compress
    back = read_idx(path)
    assert back.dtype == array.dtype and back.dtype.isnative and back.shape == array.shape
    np.testing.assert_array_equal(back, array)


def test_idx_gzip_detected_by_magic_not_name(tmp_path):
    array = np.arange(12, dtype=np.int32).reshape(3, 4)
    raw, packed = tmp_path / "x.gz", tmp_path / "x.idx"  # names lie on purpose
    write_idx(raw, array, gzip=False)
    write_idx(packed, array, gzip=True)
    np.testing.assert_array_equal(read_idx(raw), array)
    np.testing.assert_array_equal(read_idx(packed), array)


def test_idx_header_is_big_endian(tmp_path):
    path = write_idx(tmp_path / "labels", np.array([1, 2, 3], dtype=np.uint8), gzip=False)
    assert path.read_bytes() == bytes.fromhex("00000801 00000003 010203")


def _one_line_bad_input(path: Path, *words: str) -> str:
    with pytest.raises(BadInput) as info:
        read_idx(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message and "re-download" in message
    for word in words:
        assert word in message
    return message


@pytest.mark.parametrize(
    "header", ["00000a01", "01000801", "00000800", "0000"], ids=["type", "nonzero", "ndim0", "short"]
)
def test_idx_corrupt_magic(tmp_path, header):
    path = tmp_path / "bad"
    whole = len(header) == 8
    path.write_bytes(bytes.fromhex(header) + b"\0" * 16 * whole)
    _one_line_bad_input(path, "magic" if whole else "too short")


def test_idx_truncated_and_oversized_payload(tmp_path):
    good = write_idx(tmp_path / "good", np.ones((4, 28, 28), np.uint8), gzip=False).read_bytes()
    short = tmp_path / "short.gz"
    short.write_bytes(gzip.compress(good[:-1]))
    _one_line_bad_input(short, "truncated", "3136 bytes", "3135")
    long = tmp_path / "long"
    long.write_bytes(good + b"\0")
    _one_line_bad_input(long, "oversized")
    header_only = tmp_path / "header"
    header_only.write_bytes(good[:10])  # says 3 dims, holds 1.5
    _one_line_bad_input(header_only, "header cut short")


def test_idx_bad_gzip(tmp_path):
    packed = gzip.compress(write_idx(tmp_path / "raw", np.ones(1000, np.int16), gzip=False).read_bytes())
    cut = tmp_path / "cut.gz"
    cut.write_bytes(packed[: len(packed) // 2])
    _one_line_bad_input(cut, "gzip")
    flipped = tmp_path / "flipped.gz"
    flipped.write_bytes(packed[:20] + bytes([packed[20] ^ 0xFF]) + packed[21:])
    _one_line_bad_input(flipped, "gzip")


def test_idx_missing_file(tmp_path):
    _one_line_bad_input(tmp_path / "nothing-here", "cannot read")


# --- the real MNIST files ----------------------------------------------------------------------


def test_load_idx_real_mnist(mnist_dir):
    data = load(f"idx:{mnist_dir}")
    assert isinstance(data, Dataset) and data.image_shape == (28, 28) and data.n_classes == 10
    assert (len(data.y_train), len(data.y_valid), len(data.y_test)) == (19200, 4800, 10000)
    for x, y in [(data.x_train, data.y_train), (data.x_valid, data.y_valid), (data.x_test, data.y_test)]:
        assert x.dtype == np.float32 and x.flags.c_contiguous and x.shape == (len(y), 28, 28)
        assert y.dtype == np.int32 and set(np.unique(y)) == set(range(10))
        assert 0.0 <= x.min() and x.max() == 1.0
        assert not x.flags.writeable and not y.flags.writeable
    # training + validation together are the training file: the README's class counts
    counts = np.bincount(np.concatenate([data.y_train, data.y_valid]), minlength=10)
    assert counts.tolist() == README_CLASS_COUNTS
    # the split is a fixed permutation (seed 0): its first 4800 are validation, both parts in file order
    images = read_idx(mnist_dir / "train-images-idx3-ubyte.gz")
    order = np.random.default_rng(0).permutation(24000)
    train, valid = np.sort(order[4800:]), np.sort(order[:4800])
    np.testing.assert_array_equal(data.x_train[:50], images[train[:50]] / np.float32(255))
    np.testing.assert_array_equal(data.x_valid[-50:], images[valid[-50:]] / np.float32(255))
    assert load(f"idx:{mnist_dir}") is data  # cached per process


def test_load_idx_count_and_determinism(mnist_dir):
    a = load(f"idx:{mnist_dir}", valid_size=1000)
    assert (len(a.y_train), len(a.y_valid)) == (23000, 1000)
    load.cache_clear()
    b = load(f"idx:{mnist_dir}", valid_size=1000)
    assert a is not b
    for name in ("x_train", "y_train", "x_valid", "y_valid", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    with pytest.raises(ValueError):
        a.x_train[0, 0, 0] = 1.0  # read-only: the cache cannot be corrupted


def test_load_idx_raw_files_and_mismatched_counts(tmp_path, mnist_dir):
    for name in FILE_NAMES:  # raw (un-gzipped) copies load too
        (tmp_path / name.removesuffix(".gz")).write_bytes(gzip.decompress((mnist_dir / name).read_bytes()))
    assert len(load(f"idx:{tmp_path}", 0.5).y_test) == 10000
    labels = read_idx(tmp_path / "t10k-labels-idx1-ubyte")
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", labels[:-1], gzip=False)
    with pytest.raises(BadInput, match="10000 images but t10k-labels-idx1-ubyte 9999 labels"):
        load(f"idx:{tmp_path}", 0.25)
    labels[3] = 10
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", labels, gzip=False)
    with pytest.raises(BadInput, match=r"labels span 0\.\.10, expected 0\.\.9"):
        load(f"idx:{tmp_path}", 0.125)


def test_idx_header_that_overflows_is_one_line(tmp_path):
    """Dimensions of 2**32-1 each: their product overflowed int64 into a negative size."""
    huge = tmp_path / "huge"
    huge.write_bytes(b"\0\0\x08\x03" + b"\xff\xff\xff\xff" * 3 + b"\0" * 16)
    _one_line_bad_input(huge, "truncated", str(4294967295 ** 3))


@pytest.mark.parametrize("shape", [(0, 28, 28), (5, 0, 28)])
def test_an_empty_test_set_is_one_line(tmp_path, mnist_dir, shape):
    for name in FILE_NAMES:
        shutil.copy(mnist_dir / name, tmp_path)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros(shape, np.uint8))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(shape[0], np.uint8))
    with pytest.raises(BadInput, match="t10k-images-idx3-ubyte.gz: holds no images") as info:
        load(f"idx:{tmp_path}")
    assert "\n" not in str(info.value)


def test_load_idx_missing_file_named(tmp_path, mnist_dir):
    shutil.copy(mnist_dir / "train-images-idx3-ubyte.gz", tmp_path)
    with pytest.raises(BadInput, match=r"missing train-labels-idx1-ubyte\[\.gz\] in "):
        load(f"idx:{tmp_path}")
    with pytest.raises(BadInput, match="no directory"):
        load(f"idx:{tmp_path / 'nope'}")


# --- digits, specs, valid_size -----------------------------------------------------------------


def test_digits_loads_with_no_file():
    data = load("digits")
    assert data.image_shape == (8, 8)
    assert (len(data.y_train), len(data.y_valid), len(data.y_test)) == (1150, 288, 359)
    assert data.x_train.dtype == np.float32 and data.x_train.max() == 1.0 and data.x_train.min() == 0.0
    assert data.y_train.dtype == np.int32 and set(np.unique(data.y_test)) == set(range(10))
    assert not data.x_test.flags.writeable
    # the test set does not depend on valid_size; train + valid are the same 1438 images
    other = load("digits", valid_size=100)
    np.testing.assert_array_equal(other.x_test, data.x_test)
    both = lambda d: np.sort(np.concatenate([d.x_train, d.x_valid]).reshape(-1, 64), axis=0)  # noqa: E731
    np.testing.assert_array_equal(both(other), both(data))
    assert len(other.y_valid) == 100 and len(other.y_train) == 1338
    assert len(load("digits", 0).y_valid) == 0


def test_digits_are_scikit_learns_read_without_importing_it():
    """Read from the CSV file scikit-learn ships (its import cost each worker a second): the same images."""
    from sklearn.datasets import load_digits

    from workers.data import digits

    images, target = digits._bundled()
    bunch = load_digits()
    np.testing.assert_array_equal(images, bunch.images)
    np.testing.assert_array_equal(target, bunch.target)
    x_train, y_train, x_test, y_test = digits.read()
    assert len(x_train) + len(x_test) == 1797 and x_train.dtype == np.float32


@pytest.mark.parametrize("spec, says", [("foo", "unknown dataset"), ("MNIST", "unknown dataset"),
                                         ("idx:", "names no folder"), ("idx:  ", "names no folder"),
                                         ("digits ", "unknown dataset"), ("", "unknown dataset")])
def test_unknown_spec(spec, says):
    with pytest.raises(BadInput, match=f"{says}.*: use digits, mnist, xor, idx:DIR .*npz:FILE") as info:
        load(spec)
    assert "\n" not in str(info.value)


def test_spec_not_a_string():
    with pytest.raises(BadInput, match="must be a string"):
        load(["digits"])


@pytest.mark.parametrize("valid_size", [-1, -0.1, 1438, 1437.5, 10**6, float("nan"), float("inf"), True, "0.2", None])
def test_impossible_valid_size(valid_size):
    with pytest.raises(BadInput, match="valid_size=") as info:
        load("digits", valid_size)
    assert isinstance(info.value, ValueError) and "\n" not in str(info.value)


def test_valid_size_edges():
    assert len(load("digits", 1437).y_train) == 1
    assert len(load("digits", 1e-9).y_valid) == 1  # a positive share keeps at least one image
    assert len(load("digits", 5.0).y_valid) == 5


@pytest.mark.parametrize("split,n_valid", [("random", 0.2), ("tensorflow", None), ("theano", None), ("last", 100)])
def test_a_seed_draws_which_images_validate_keeping_how_many(mnist_dir, split, n_valid):
    from workers.data import split_indices

    fixed_valid, fixed_train = split_indices(24_000, n_valid, split)
    draws = [split_indices(24_000, n_valid, split, seed) for seed in (0, 1, 0)]
    for valid, train in draws:
        assert len(valid) == len(fixed_valid) and len(train) == len(fixed_train)
        assert np.array_equal(np.sort(np.concatenate([valid, train])), np.arange(24_000))  # a partition
        assert np.all(np.diff(valid) > 0) and np.all(np.diff(train) > 0)  # each in file order
    assert np.array_equal(draws[0][0], draws[2][0])  # the same seed, the same split
    assert len(np.intersect1d(draws[0][0], draws[1][0])) < 0.5 * len(fixed_valid)  # another seed, another split
    assert not np.array_equal(draws[0][0], fixed_valid)  # not the study's fixed split
    size = n_valid if n_valid is not None else 0.2
    data = load(f"idx:{mnist_dir}", size, split, split_seed=1)
    y_file = mnist.read(mnist_dir)[1]
    valid, train = split_indices(len(y_file), size, split, 1)
    assert np.array_equal(data.y_valid, y_file[valid]) and np.array_equal(data.y_train, y_file[train])


# --- downloads from a real HTTP server on 127.0.0.1 --------------------------------------------


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def serve(tmp_path):
    """Start an HTTP server for a directory; returns its URL base. Stopped after the test."""
    servers = []

    def start(directory: Path) -> str:
        handler = functools.partial(_Quiet, directory=str(directory))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def shared_checksums(mnist_dir) -> dict[str, str]:
    return {name: md5(mnist_dir / name) for name in FILE_NAMES}


def test_download_then_load(tmp_path, mnist_dir, serve, shared_checksums, monkeypatch):
    site = tmp_path / "site"
    shutil.copytree(mnist_dir, site)
    table = tmp_path / "mnist.md5"
    table.write_text("".join(f"{digest}  {name}\n" for name, digest in shared_checksums.items()))
    monkeypatch.setenv("SWEEPER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SWEEPER_MNIST_MIRROR", serve(site).rstrip("/"))  # a trailing / is optional
    monkeypatch.setenv("SWEEPER_MNIST_CHECKSUMS", str(table))
    load.cache_clear()
    data = load("mnist")
    target = tmp_path / "data" / "mnist"
    assert sorted(p.name for p in target.iterdir()) == sorted(FILE_NAMES)  # no temporary files left
    assert all(md5(target / name) == digest for name, digest in shared_checksums.items())
    assert (len(data.y_train), len(data.y_valid), len(data.y_test)) == (19200, 4800, 10000)
    assert mnist.download(target) == []  # nothing missing, nothing fetched
    load.cache_clear()


def test_download_checksum_mismatch_leaves_nothing(tmp_path, mnist_dir, serve, shared_checksums):
    site = tmp_path / "site"
    site.mkdir()
    for name in FILE_NAMES:  # every file is served, but train-images holds the test images
        shutil.copy(mnist_dir / ("t10k-images-idx3-ubyte.gz" if name.startswith("train-images") else name), site / name)
    target = tmp_path / "target"
    url = serve(site)
    with pytest.raises(BadInput) as info:
        mnist.download(target, url, shared_checksums)
    message = str(info.value)
    assert message.startswith(f"checksum mismatch for train-images-idx3-ubyte.gz from {url}: ")
    assert shared_checksums["train-images-idx3-ubyte.gz"] in message and message.endswith("check the mirror")
    assert list(target.iterdir()) == []


def test_download_missing_on_mirror(tmp_path, serve, shared_checksums):
    url = serve(tmp_path / "empty-site")
    with pytest.raises(BadInput, match="cannot download .*train-images-idx3-ubyte.gz: .*SWEEPER_MNIST_MIRROR"):
        mnist.download(tmp_path / "target", url, shared_checksums)
    assert list((tmp_path / "target").iterdir()) == []


def test_download_unreachable_mirror(tmp_path):
    with socket.socket() as sock:  # an ephemeral port that nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(BadInput, match=f"cannot download http://127.0.0.1:{port}/.*check the network") as info:
        mnist.download(tmp_path / "target", f"http://127.0.0.1:{port}/", {n: "0" * 32 for n in FILE_NAMES}, timeout=5)
    assert "\n" not in str(info.value)
    assert list((tmp_path / "target").iterdir()) == []


def test_default_checksum_table_is_the_original_mnist(monkeypatch, mnist_dir):
    monkeypatch.delenv("SWEEPER_MNIST_CHECKSUMS", raising=False)
    table = mnist.checksum_table()
    assert set(table) == set(FILE_NAMES)
    # the test files here are byte-identical to the originals: their md5, computed, is the table's
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        assert table[name] == md5(mnist_dir / name), name
    # the training files here are a prefix of the originals, so theirs cannot match: distinct md5s
    assert all(len(table[n]) == 32 and int(table[n], 16) >= 0 for n in FILE_NAMES)
    assert len(set(table.values())) == 4 and table["train-images-idx3-ubyte.gz"] != md5(
        mnist_dir / "train-images-idx3-ubyte.gz")


def test_xor_is_a_seeded_two_class_toy_problem_with_xor_labels():
    data = load("xor")
    assert (len(data.x_train), len(data.x_valid), len(data.x_test)) == (100, 25, 1000)
    assert data.image_shape == (1, 2) and data.n_classes == 2
    x = np.concatenate([data.x_train, data.x_valid, data.x_test])[:, 0, :]
    y = np.concatenate([data.y_train, data.y_valid, data.y_test])
    np.testing.assert_array_equal(y, np.logical_xor(x[:, 0] > 0.5, x[:, 1] > 0.5))  # independent rule
    assert 0.4 < y.mean() < 0.6 and x.min() >= 0 and x.max() <= 1

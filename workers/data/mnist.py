"""MNIST in a directory of IDX files: find and read the four files, download missing ones with checksums."""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from storage.contract import files
from storage.contract.errors import BadInput
from workers.data.idx import read_idx

TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"
FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)

DEFAULT_MIRROR = "https://ossci-datasets.s3.amazonaws.com/mnist/"
# md5 of the original MNIST files (the .gz names are what a mirror serves).
CHECKSUMS = {
    TRAIN_IMAGES + ".gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    TRAIN_LABELS + ".gz": "d53e105ee54ea40749a09fcbcd1e9432",
    TEST_IMAGES + ".gz": "9fb629c4189551a2d022fa330f9573f3",
    TEST_LABELS + ".gz": "ec29112dd5afa0611ce80d1b7f02629c",
}


def data_dir() -> Path:
    """Where ``load("mnist")`` keeps its files: ``$SWEEPER_DATA_DIR/mnist``, else the user cache."""
    root = os.environ.get("SWEEPER_DATA_DIR")
    if not root:
        import platformdirs

        root = platformdirs.user_cache_dir("sweeper")
    return Path(root) / "mnist"


def mirror_url() -> str:
    """The URL base to download from: ``$SWEEPER_MNIST_MIRROR``, else `DEFAULT_MIRROR`."""
    return os.environ.get("SWEEPER_MNIST_MIRROR") or DEFAULT_MIRROR


def checksum_table() -> dict[str, str]:
    """The expected md5 (32 hex digits) or sha256 (64) per file name.

    `CHECKSUMS`, unless ``$SWEEPER_MNIST_CHECKSUMS`` names a file in ``md5sum`` / ``sha256sum``
    output format (``<hex>  <file name>`` per line), which then replaces the table.
    """
    path = os.environ.get("SWEEPER_MNIST_CHECKSUMS")
    if not path:
        return dict(CHECKSUMS)
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        reason = exc.strerror or exc
        raise BadInput(f"SWEEPER_MNIST_CHECKSUMS={path}: cannot read ({reason}); fix the path or unset it") from None
    table = {}
    for line in filter(str.strip, lines):
        digest, _, name = line.strip().partition(" ")
        name = Path(name.strip().lstrip("*")).name
        if len(digest) not in (32, 64) or not name:
            raise BadInput(f"SWEEPER_MNIST_CHECKSUMS={path}: bad line {line!r}; write '<md5 or sha256>  <file name>'")
        table[name] = digest.lower()
    return table


def find(directory: str | Path, name: str) -> Path | None:
    """``directory/name.gz`` if it exists, else ``directory/name``, else None."""
    for candidate in (Path(directory) / f"{name}.gz", Path(directory) / name):
        if candidate.is_file():
            return candidate
    return None


def download(
    directory: str | Path,
    mirror: str | None = None,
    checksums: dict[str, str] | None = None,
    timeout: float = 60.0,
) -> list[Path]:
    """Download the MNIST files that ``directory`` lacks, each verified before it appears.

    Each file goes to a temporary file in ``directory`` and is renamed into place only after its
    checksum matches, so a failed download leaves nothing behind.

    Parameters
    ----------
    directory : str or Path
        Created if needed.
    mirror : str, optional
        URL base serving ``train-images-idx3-ubyte.gz`` etc.; default `mirror_url()`.
    checksums : dict, optional
        File name (``*.gz``) -> md5 or sha256 hex digest; default `checksum_table()`.
    timeout : float
        Seconds to wait for the mirror, per request.

    Returns
    -------
    list of Path
        The files downloaded (empty when none was missing).

    Raises
    ------
    BadInput
        The mirror is unreachable or answers with an error, a checksum does not match, or a file
        has no checksum in the table.
    """
    directory = Path(directory)
    base = mirror or mirror_url()
    base = base if base.endswith("/") else base + "/"
    table = checksums if checksums is not None else checksum_table()
    directory.mkdir(parents=True, exist_ok=True)
    fetched = []
    for name in (f"{stem}.gz" for stem in FILES if find(directory, stem) is None):
        expected = table.get(name)
        if expected is None:
            raise BadInput(f"no checksum for {name}: add it to SWEEPER_MNIST_CHECKSUMS or to mnist.CHECKSUMS")
        fetched.append(_fetch(base + name, directory / name, expected.lower(), timeout))
    return fetched


def _fetch(url: str, target: Path, expected: str, timeout: float) -> Path:
    digest = hashlib.md5() if len(expected) == 32 else hashlib.sha256()
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    while chunk := response.read(1 << 20):
                        digest.update(chunk)
                        out.write(chunk)
            except (urllib.error.URLError, OSError) as exc:
                reason = getattr(exc, "reason", None) or exc
                fix = ("check the network, set SWEEPER_MNIST_MIRROR, or use MNIST files you have: "
                       "dataset = \"idx:DIR\" (sweeper run --dataset idx:DIR) or SWEEPER_DATA_DIR")
                raise BadInput(f"cannot download {url}: {reason}; {fix}") from None
        got = digest.hexdigest()
        if got != expected:
            raise BadInput(
                f"checksum mismatch for {target.name} from {url.rsplit('/', 1)[0]}/: "
                f"expected {expected}, got {got}; check the mirror"
            )
        os.chmod(tmp, files.created_mode())  # mkstemp's 0600: a shared data folder's files follow the umask
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def read(directory: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Read the four MNIST files of ``directory`` (``.gz`` or raw) and check they agree.

    Returns
    -------
    x_train : np.ndarray, uint8, shape (N, H, W)
    y_train : np.ndarray, int32, shape (N,), values 0..9
    x_test : np.ndarray, uint8, shape (M, H, W)
    y_test : np.ndarray, int32, shape (M,), values 0..9

    Raises
    ------
    BadInput
        The directory or one of its files is missing, a file is corrupt, or images and labels
        do not agree.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise BadInput(f"no directory {directory}: point --dataset idx:DIR at a directory holding the MNIST IDX files")
    paths = {}
    for stem in FILES:
        paths[stem] = find(directory, stem)
        if paths[stem] is None:
            raise BadInput(f"missing {stem}[.gz] in {directory}: copy it there or point --dataset at a complete copy")
    x_train, y_train = _pair(paths[TRAIN_IMAGES], paths[TRAIN_LABELS])
    x_test, y_test = _pair(paths[TEST_IMAGES], paths[TEST_LABELS])
    if x_train.shape[1:] != x_test.shape[1:]:
        raise BadInput(
            f"{directory}: training images are {x_train.shape[1:]}, test images {x_test.shape[1:]}; "
            "use files from one data set"
        )
    return x_train, y_train, x_test, y_test


def _pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    images, labels = read_idx(images_path), read_idx(labels_path)
    fix = "re-download it or point --dataset at a good copy"
    if images.ndim != 3 or images.dtype != np.uint8:
        raise BadInput(f"{images_path}: holds {images.dtype} {images.shape}, expected uint8 (N, H, W) images; {fix}")
    if not len(images) or 0 in images.shape[1:]:
        raise BadInput(f"{images_path}: holds no images (its header says {images.shape}); {fix}")
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise BadInput(f"{labels_path}: holds {labels.dtype} {labels.shape}, expected integer (N,) labels; {fix}")
    if len(images) != len(labels):
        counts = f"{images_path.name} has {len(images)} images but {labels_path.name} {len(labels)} labels"
        raise BadInput(f"{counts}; {fix}")
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise BadInput(f"{labels_path}: labels span {labels.min()}..{labels.max()}, expected 0..9; {fix}")
    return images, labels.astype(np.int32)

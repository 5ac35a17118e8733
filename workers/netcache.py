"""Compiled networks kept on disk, so that a new process skips building and rewriting their graphs.

PyTensor rewrites a train step's graph for 1-1.5 s on every process start (the XLA code itself is
already cached by JAX). A `workers.compiled.Network` pickles with its rewritten graphs: a later
process unpickles it in ~0.4 s and runs the same code. Files (gzipped: the weights in them are
zeros) live in ``<PyTensor's base_compiledir>/sweeper-networks``, named by a hash of the
architecture, the versions in `LIBRARIES`, the float type, the JAX platform and the source of the
code that builds the graphs (`SOURCES`), so that changing any of them compiles afresh. Networks
with dropout are not kept: PyTensor cannot unpickle a JAX function's random generator.

Trust: unpickling runs code, so a file is loaded only when it and its folder belong to this user
(or root) and no other user may write them; otherwise the network is compiled afresh. Whoever can
write the cache folder can run code in every worker that uses it: share it only between processes
of one user (docker-compose's cache volume is written by its own containers only).
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import importlib.metadata
import logging
import os
import pickle
import tempfile
from pathlib import Path

log = logging.getLogger("sweeper.worker")

# The code whose changes change a compiled graph (this package's files, by path from workers/).
SOURCES = ("compiled.py", "netcache.py", "nn")
LIBRARIES = ("pytensor", "jax", "jaxlib", "numpy", "ml_dtypes")


def load(key: tuple):
    """The Network kept under `key`, or None (not kept, unreadable, or from other code)."""
    path = _path(key)
    try:
        why = _untrusted(path)
        if why:
            log.warning("compiled network %s not loaded: %s (unpickling runs code): compiling again", path.name, why)
            return None
        with gzip.open(path, "rb") as f:
            return pickle.load(f)
    except FileNotFoundError:
        return None
    except Exception as exc:  # noqa: BLE001 - a damaged or stale file: compile afresh and replace it
        log.warning("compiled network %s unreadable (%s: %s): compiling again", path.name, type(exc).__name__, exc)
        return None


def save(key: tuple, network) -> None:
    """Keep `network` (just compiled, never run) under `key`; written whole or not at all."""
    path = _path(key)
    temp = None
    try:
        path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)  # no group or other writes (_untrusted)
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(fd, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1) as f:
            pickle.dump(network, f, protocol=pickle.HIGHEST_PROTOCOL)  # its weights are zeros: ~1 % of it
        os.replace(temp, path)  # atomic: a process reading at the same time gets the old file or the new one
    except Exception as exc:  # noqa: BLE001 - a cache that cannot be written only costs time
        log.warning("could not keep the compiled network in %s: %s", path.parent, exc)
        if temp is not None:
            Path(temp).unlink(missing_ok=True)


def _untrusted(path: Path) -> str:
    """Why `path` must not be unpickled ('' when it may be): it or its folder belongs to another user
    or may be written by others."""
    for p in (path.parent, path):
        st = p.stat()
        if st.st_uid not in (os.getuid(), 0):
            return f"{p} belongs to another user"
        if st.st_mode & 0o022:
            return f"{p} may be written by other users"
    return ""


def _path(key: tuple) -> Path:
    import pytensor

    digest = hashlib.sha256(repr((key, _fingerprint())).encode()).hexdigest()[:32]
    return Path(pytensor.config.base_compiledir) / "sweeper-networks" / f"{digest}.pkl.gz"


@functools.cache
def _fingerprint() -> tuple:
    """What else a compiled network depends on: library versions, float type, platform, our source."""
    import jax
    import pytensor

    versions = tuple(importlib.metadata.version(name) for name in LIBRARIES)
    root = Path(__file__).resolve().parent
    files = sorted(p for s in SOURCES for p in ((root / s).rglob("*.py") if (root / s).is_dir() else [root / s]))
    source = hashlib.sha256(b"".join(p.name.encode() + p.read_bytes() for p in files)).hexdigest()
    return versions, pytensor.config.floatX, jax.default_backend(), source

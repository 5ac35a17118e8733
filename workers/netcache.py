"""Compiled networks kept on disk, so that a new process skips building and rewriting their graphs.

PyTensor rewrites a train step's graph for 1-1.5 s on every process start (the XLA code itself is
already cached by JAX). A `workers.compiled.Network` pickles with its rewritten graphs: a later
process unpickles it in ~0.4 s and runs the same code. Files (gzipped: the weights in them are
zeros) live in ``<PyTensor's base_compiledir>/sweeper-networks``, named by a hash of the
architecture, the versions in `LIBRARIES`, the float type, the JAX platform and the source of the
code that builds the graphs (`SOURCES`), so that changing any of them compiles afresh. Networks
with dropout are not kept: PyTensor cannot unpickle a JAX function's random generator.

Trust: unpickling runs code, and so does loading XLA's compiled code from JAX's persistent cache
(``xla`` in the same folder). A network is loaded only when the file, its folder and every folder
above it belong to this user (or root) and no other user may write them (a folder above
``$SWEEPER_COMPILEDIR`` may be one others write if it has the sticky bit, as /tmp has); otherwise
it is compiled afresh, with one log line. When this module is imported, JAX's cache folder is
checked the same way and, if it fails, JAX's persistent cache is turned off for the process. A
file that unpickles to something other than a Network is compiled afresh too. Whoever can write
the cache folder can run code in every worker that uses it: share it only between processes of
one user (docker-compose's cache volume is written by its own containers only).
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import importlib.metadata
import logging
import os
import pickle
import stat
import sys
import tempfile
from pathlib import Path

log = logging.getLogger("sweeper.worker")

# The code whose changes change a compiled graph (this package's files, by path from workers/).
SOURCES = ("compiled.py", "netcache.py", "nn")
LIBRARIES = ("pytensor", "jax", "jaxlib", "numpy", "ml_dtypes")


def load(key: tuple):
    """The Network kept under `key`, or None (not kept, unreadable, untrusted, or from other code)."""
    path = _path(key)
    try:
        why = _untrusted(path, _root())
        if why:
            log.warning("compiled network %s not loaded: %s (unpickling runs code): compiling again", path.name, why)
            return None
        with gzip.open(path, "rb") as f:
            network = pickle.load(f)
    except FileNotFoundError:
        return None
    except Exception as exc:  # noqa: BLE001 - a damaged or stale file: compile afresh and replace it
        log.warning("compiled network %s unreadable (%s: %s): compiling again", path.name, type(exc).__name__, exc)
        return None
    from workers.compiled import Network  # (compiled imports this module)

    if not isinstance(network, Network):
        log.warning("compiled network %s holds a %s, not a network: compiling again", path.name,
                    type(network).__name__)
        return None
    return network


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


def _untrusted(path: Path, root: Path) -> str:
    """Why `path` must not be loaded ('' when it may be): it, or a folder above it, belongs to another
    user (not root), or may be written by others; a folder above `root` (the cache folder) may be
    written by others only if it has the sticky bit (as /tmp). A missing `path` is judged by the folders
    that exist above it (FileNotFoundError for a missing file is the caller's)."""
    path, root = Path(os.path.abspath(path)), Path(os.path.realpath(root))
    real = Path(os.path.realpath(path))
    chain = [real, *real.parents] if real.exists() else [p for p in real.parents if p.exists()]
    for p in chain:
        st = p.stat()
        if st.st_uid not in (os.getuid(), 0):
            return f"{p} belongs to another user"
        inside = p == root or root in p.parents
        if st.st_mode & 0o022 and (inside or not st.st_mode & stat.S_ISVTX):
            return f"{p} may be written by other users"
    return ""


def _root() -> Path:
    """The cache folder: PyTensor's base_compiledir ($SWEEPER_COMPILEDIR)."""
    import pytensor

    return Path(pytensor.config.base_compiledir)


def _guard_xla_cache() -> None:
    """Turn JAX's persistent cache off (one log line) when its folder fails `_untrusted` (judged from the
    cache folder when it is inside it, as ``xla`` is): JAX would load compiled code from it."""
    jax = sys.modules.get("jax")
    folder = jax.config.jax_compilation_cache_dir if jax else os.environ.get("JAX_COMPILATION_CACHE_DIR")
    if not folder:
        return
    folder, ours = Path(os.path.realpath(folder)), Path(os.path.realpath(_root()))
    why = _untrusted(folder, ours if folder == ours or ours in folder.parents else folder)
    if not why:
        return
    log.warning("JAX's compilation cache %s not used: %s (it holds code that would run): compiling afresh",
                folder, why)
    if jax:
        jax.config.update("jax_compilation_cache_dir", None)
        jax.config.update("jax_enable_compilation_cache", False)
    else:
        os.environ.pop("JAX_COMPILATION_CACHE_DIR", None)
        os.environ["JAX_ENABLE_COMPILATION_CACHE"] = "false"


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


_guard_xla_cache()  # before anything is compiled: compiled.py imports this module first

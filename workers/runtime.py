"""Process setup before PyTensor/JAX load: backend, float32, compile cache, thread budget, device."""

from __future__ import annotations

import os
import sys

from storage.contract.errors import BadInput

# PyTensor compilation modes by our backend names, measured on 2 cores (bench/train_speed.py).
BACKENDS = {"jax": "JAX", "numba": "NUMBA", "c": "CVM"}
DEFAULT_BACKEND = "jax"
DEVICES = ("cpu", "cuda")


def backend_name(name: str | None = None) -> str:
    """The backend to use: `name`, else $SWEEPER_BACKEND, else jax; BadInput if unknown."""
    name = (name or os.environ.get("SWEEPER_BACKEND") or DEFAULT_BACKEND).lower()
    if name not in BACKENDS:
        raise BadInput(f"unknown backend '{name}': use one of {', '.join(BACKENDS)}")
    return name


def compile_mode() -> str:
    """The PyTensor mode string of the configured backend."""
    return BACKENDS[backend_name()]


def configure(threads: int | None = None, backend: str | None = None, device: str = "cpu",
              cpus: list[int] | None = None) -> None:
    """Set environment for this process; must run before pytensor or jax is imported.

    Parameters
    ----------
    threads : int, optional
        BLAS/OpenMP/XLA threads for this process (default: leave the libraries' own choice).
    backend : {"jax", "numba", "c"}, optional
        Compilation backend (default: $SWEEPER_BACKEND or jax).
    device : {"cpu", "cuda"}
        Where the JAX backend runs; "cuda" needs the JAX CUDA plugin and the jax backend.
    cpus : list of int, optional
        Pin this process to these cores (how XLA's thread pool is sized).
    """
    name = backend_name(backend)
    if device not in DEVICES:
        raise BadInput(f"unknown device '{device}': use cpu or cuda")
    if device == "cuda" and name != "jax":
        raise BadInput(f"device cuda needs the jax backend, not {name}: add --backend jax")
    if "pytensor" in sys.modules or "jax" in sys.modules:
        raise RuntimeError("workers.runtime.configure() must run before pytensor or jax is imported")
    os.environ["SWEEPER_BACKEND"] = name
    os.environ.setdefault("JAX_PLATFORMS", "cuda" if device == "cuda" else "cpu")
    cache = _pytensor_flags()
    # XLA's own persistent cache: a new worker process reuses the compiled train step of an earlier one.
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(cache, "xla"))
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")
    if threads:
        n = str(int(threads))
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
            os.environ[var] = n
        xla = os.environ.get("XLA_FLAGS", "")
        if threads == 1 and "xla_cpu_multi_thread_eigen" not in xla:
            # XLA has no thread-count flag; one thread is eigen off, more are set by CPU affinity (cpus=).
            os.environ["XLA_FLAGS"] = f"{xla} --xla_cpu_multi_thread_eigen=false".strip()
    if cpus:
        os.sched_setaffinity(0, cpus)
    _quiet()


def _pytensor_flags() -> str:
    """float32 and our compile cache in $PYTENSOR_FLAGS (the user's own flags win); the cache folder."""
    cache = os.environ.get("SWEEPER_COMPILEDIR") or _default_compiledir()
    flags = [f for f in os.environ.get("PYTENSOR_FLAGS", "").split(",") if f]
    keys = {f.split("=", 1)[0] for f in flags}
    flags += [f for f in ("floatX=float32", f"base_compiledir={cache}") if f.split("=", 1)[0] not in keys]
    os.environ["PYTENSOR_FLAGS"] = ",".join(flags)
    return cache


def _quiet() -> None:
    """Silence the JAX backend's harmless warnings about dtypes, asserts and generator copies."""
    import warnings

    warnings.filterwarnings("ignore", message=".*RandomType SharedVariables.*")
    warnings.filterwarnings("ignore", message=".*Explicitly requested dtype.*")
    warnings.filterwarnings("ignore", message=".*Skipping Assert.*as JAX tracing would remove it.*")


def _default_compiledir() -> str:
    import platformdirs

    return os.path.join(platformdirs.user_cache_dir("sweeper"), "pytensor")


def ensure_configured() -> None:
    """Configure with defaults if nobody did (library use: `from workers.train import train`).

    A caller that imported jax first keeps JAX's own settings (platform, threads, cache); one that
    imported pytensor first keeps its PyTensor flags.
    """
    if "pytensor" in sys.modules:
        return
    if "jax" in sys.modules:
        backend_name()  # a bad $SWEEPER_BACKEND is still an error
        _pytensor_flags()
        _quiet()
    else:
        configure()  # the backend comes from $SWEEPER_BACKEND when an earlier configure() set it


def parse_cpus(text: str | None) -> list[int] | None:
    """'0,2-3' -> [0, 2, 3]; BadInput naming the cores this machine has when one is missing."""
    if not text:
        return None
    have = sorted(os.sched_getaffinity(0))
    cpus = []
    try:
        for part in text.split(","):
            low, _, high = part.strip().partition("-")
            cpus += range(int(low), int(high or low) + 1)
    except ValueError:
        raise BadInput(f"--cpus {text!r} is not a list of cores: write e.g. 0 or 0,1 or 0-3") from None
    missing = sorted(set(cpus) - set(have))
    if missing:
        raise BadInput(f"--cpus {text}: no core {missing[0]} here: use cores among {have[0]}-{have[-1]}")
    return cpus


def check_cuda() -> None:
    """BadInput unless JAX (configured for cuda) sees a GPU; call after configure(device='cuda')."""
    try:
        import jax

        devices = jax.devices("gpu")
    except Exception:  # noqa: BLE001 - RuntimeError, or an AssertionError when JAX_PLATFORMS=cuda has no plugin
        devices = []
    if not devices:
        raise BadInput("--device cuda: JAX has no CUDA backend or sees no GPU: pip install 'jax[cuda12]' on a "
                       "machine with an NVIDIA GPU, or use --device cpu")

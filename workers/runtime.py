"""Process setup, called once at start before PyTensor/JAX load: backend, float32, compile cache, threads, device."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

from storage.contract.errors import BadInput
from storage.contract.options import WorkerOptions, backend_name

# PyTensor compilation modes by our backend names, measured on 2 cores (bench/train_speed.py).
BACKENDS = {"jax": "JAX", "numba": "NUMBA", "c": "CVM"}  # the names: storage.contract.options.BACKENDS
DEVICES = ("cpu", "cuda")


@dataclass(frozen=True)
class Runtime:
    """How this process trains, as configure() set it up."""

    backend: str  # one of BACKENDS
    device: str  # cpu or cuda

    @property
    def mode(self) -> str:
        """The PyTensor compilation mode of the backend."""
        return BACKENDS[self.backend]


_current: Runtime | None = None  # set by configure(), once per process


def current() -> Runtime:
    """This process's runtime; RuntimeError naming the fix when nobody called configure()."""
    if _current is None:
        raise RuntimeError("workers.runtime.configure() was not called: call it at process start, before "
                           "importing pytensor or the training core (the CLIs and the worker do)")
    return _current


def compile_mode() -> str:
    """The PyTensor mode string of the configured backend."""
    return current().mode


def configure(options: WorkerOptions | None = None) -> Runtime:
    """Set this process up for training; call it once at process start, before pytensor is imported.

    From `options` (storage.contract.options.WorkerOptions; default: all defaults) it takes
    `backend` (None: $SWEEPER_BACKEND, else jax), `device` (cuda needs the JAX CUDA plugin and the
    jax backend), `threads` (BLAS/OpenMP/XLA threads; None: the libraries' own choice) and `cpus`
    (the cores to pin this process to: how XLA's thread pool is sized). PyTensor gets float32 and
    sweeper's compile cache; a caller that imported jax first keeps JAX's own settings (platform,
    threads, cache).
    """
    global _current
    options = options or WorkerOptions()
    name = backend_name(options.backend)
    if options.device not in DEVICES:
        raise BadInput(f"unknown device '{options.device}': use cpu or cuda")
    if options.device == "cuda" and name != "jax":
        raise BadInput(f"device cuda needs the jax backend, not {name}: add --backend jax")
    if "pytensor" in sys.modules:
        raise RuntimeError("workers.runtime.configure() must run before pytensor is imported")
    cache = _pytensor_flags()
    if "jax" not in sys.modules:
        os.environ.setdefault("JAX_PLATFORMS", "cuda" if options.device == "cuda" else "cpu")
        # XLA's own persistent cache: a new worker process reuses the compiled train step of an earlier one.
        os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(cache, "xla"))
        os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")
    _threads(options.threads)
    if options.cpus:
        os.sched_setaffinity(0, options.cpus)
    _quiet()
    _current = Runtime(backend=name, device=options.device)
    return _current


def _threads(threads: int | None) -> None:
    """BLAS/OpenMP/XLA threads for this process (None: leave the libraries' own choice)."""
    if not threads:
        return
    n = str(int(threads))
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = n
    xla = os.environ.get("XLA_FLAGS", "")
    if threads == 1 and "xla_cpu_multi_thread_eigen" not in xla:
        # XLA has no thread-count flag; one thread is eigen off, more are set by CPU affinity (cpus=).
        os.environ["XLA_FLAGS"] = f"{xla} --xla_cpu_multi_thread_eigen=false".strip()


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


def parse_cpus(text: str | None) -> tuple[int, ...] | None:
    """'0,2-3' -> (0, 2, 3); BadInput naming the cores this machine has when one is missing."""
    if not text:
        return None
    have = sorted(os.sched_getaffinity(0))
    cpus = []
    try:
        ranges = [(int(low), int(high or low)) for low, _, high in (p.strip().partition("-") for p in text.split(","))]
    except ValueError:
        raise BadInput(f"--cpus {text!r} is not a list of cores: write e.g. 0 or 0,1 or 0-3") from None
    for low, high in ranges:
        if high < low:
            raise BadInput(f"--cpus {text}: the range {low}-{high} runs backwards: write {high}-{low}")
        cpus += range(low, high + 1)
    missing = sorted(set(cpus) - set(have))
    if missing:
        raise BadInput(f"--cpus {text}: no core {missing[0]} here: use cores among {have[0]}-{have[-1]}")
    return tuple(cpus)


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

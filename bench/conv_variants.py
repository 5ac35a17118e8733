"""Benchmark LeNet-5 train steps: PyTensor conv/pool variants on the JAX backend vs PyTorch CPU eager.

    python bench/conv_variants.py                      # the default variants, blocks of 6 steps
    python bench/conv_variants.py --variants conv.py@eigen,conv.py_nhwc@eigen
    python bench/conv_variants.py --full-epochs 3 --variants conv.py@eigen   # real MNIST epochs

Prints seconds per epoch of 24,000 images (batch 100, float32, Adam, forward + backward +
update; minibatches passed as function inputs; each step blocks on its loss).  The machine
may be shared: timed blocks wait until no other process is runnable, run round-robin, and
the table gives the minimum (the uncontended speed) with the 25th percentile and median.
Variant suffixes: '@eigen' compiles with `workers.nn.jaxmode.jax_mode()`; '@static' puts the
batch size in the graph (the im2col variants need it).  torch runs with --threads threads.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault(
    "PYTENSOR_FLAGS", f"floatX=float32,base_compiledir={tempfile.gettempdir()}/sweeper_bench_ptc"
)

import numpy as np  # noqa: E402

EPOCH = 24_000
BATCH = 100


# --------------------------------------------------------------------------- PyTensor variants
def _pt():
    import pytensor
    import pytensor.tensor as pt

    return pytensor, pt


def conv_im2col_nchw(x, w, stack_axis="last", contract="dot"):
    """im2col in NCHW: one slice per kernel offset, stacked, then one matmul."""
    _, pt = _pt()
    K, C, kh, kw = w.shape
    kh, kw = int(w.type.shape[2]), int(w.type.shape[3])
    oh = x.shape[2] - kh + 1
    ow = x.shape[3] - kw + 1
    sl = [x[:, :, i : i + oh, j : j + ow] for i in range(kh) for j in range(kw)]
    if stack_axis == "last":
        p = pt.stack(sl, axis=-1)  # (B, C, oh, ow, P)
        if contract == "einsum":
            wr = w.reshape((w.shape[0], w.shape[1], kh * kw))
            return pt.einsum("bchwp,kcp->bkhw", p, wr)
        p = p.dimshuffle(0, 2, 3, 1, 4).reshape((-1, w.shape[1] * kh * kw))
        y = pt.dot(p, w.reshape((w.shape[0], -1)).T)  # (B*oh*ow, K)
        return y.reshape((x.shape[0], oh, ow, w.shape[0])).dimshuffle(0, 3, 1, 2)
    if stack_axis == "chan":
        p = pt.stack(sl, axis=2)  # (B, C, P, oh, ow)
        wr = w.reshape((w.shape[0], w.shape[1], kh * kw))
        if contract == "einsum":
            return pt.einsum("bcphw,kcp->bkhw", p, wr)
        y = pt.tensordot(p, wr, axes=[[1, 2], [1, 2]])  # (B, oh, ow, K)
        return y.dimshuffle(0, 3, 1, 2)
    # stack first
    p = pt.stack(sl, axis=0)  # (P, B, C, oh, ow)
    wr = w.reshape((w.shape[0], w.shape[1], kh * kw))
    y = pt.tensordot(p, wr, axes=[[0, 2], [2, 1]])  # (B, oh, ow, K)
    return y.dimshuffle(0, 3, 1, 2)


def conv_im2col_nhwc(x, w):
    """im2col in NHWC: x (B, H, W, C), w (kh, kw, C, K): concat slices on channels, one dot."""
    _, pt = _pt()
    kh, kw = int(w.type.shape[0]), int(w.type.shape[1])
    oh = x.shape[1] - kh + 1
    ow = x.shape[2] - kw + 1
    sl = [x[:, i : i + oh, j : j + ow, :] for i in range(kh) for j in range(kw)]
    p = pt.concatenate(sl, axis=3)  # (B, oh, ow, P*C)
    y = pt.dot(p.reshape((-1, p.shape[3])), w.reshape((-1, w.shape[3])))
    return y.reshape((x.shape[0], oh, ow, w.shape[3]))


def _jaxop_apply(fn, inputs, name=None):
    """Apply a JAX function as a JAXOp whose output type gets static shapes from jax.eval_shape."""
    import jax
    from pytensor.link.jax.ops import JAXOp
    from pytensor.tensor.type import TensorType

    # batch dim unknown: evaluate with a stand-in size 7 and put None back
    avals = [jax.ShapeDtypeStruct(tuple(7 if d is None else d for d in v.type.shape), v.dtype) for v in inputs]
    out = jax.eval_shape(fn, *avals)
    shape = tuple(None if (i == 0 and inputs[0].type.shape[0] is None) else d for i, d in enumerate(out.shape))
    op = JAXOp([v.type for v in inputs], [TensorType(str(out.dtype), shape=shape)], lambda *a: (fn(*a),), name=name)
    return op(*inputs)


def conv_lax(dn):
    import jax

    def f(x, w):
        return jax.lax.conv_general_dilated(x, w, (1, 1), "VALID", dimension_numbers=dn)

    return lambda x, w: _jaxop_apply(f, [x, w], "conv")


def _conv_col2im_jax(nhwc):
    """lax conv forward and weight gradient; input gradient as one matmul + col2im (25 shifted adds)."""
    import jax
    import jax.numpy as jnp

    dn = ("NHWC", "HWIO", "NHWC") if nhwc else ("NCHW", "OIHW", "NCHW")

    def fwd_conv(x, w):
        return jax.lax.conv_general_dilated(x, w, (1, 1), "VALID", dimension_numbers=dn)

    @jax.custom_vjp
    def conv(x, w):
        return fwd_conv(x, w)

    def fwd(x, w):
        return fwd_conv(x, w), (x, w)

    def bwd(res, g):
        x, w = res
        gw = jax.vjp(lambda w: fwd_conv(x, w), w)[1](g)[0]
        if not nhwc:
            x, w, g = x.transpose(0, 2, 3, 1), w.transpose(2, 3, 1, 0), g.transpose(0, 2, 3, 1)
        kh, kw, c, k = w.shape
        b, h, wd, _ = x.shape
        oh, ow = h - kh + 1, wd - kw + 1
        cols = (g.reshape(-1, k) @ w.reshape(-1, k).T).reshape(b, oh, ow, kh * kw, c)
        gx = jnp.zeros(x.shape, x.dtype)
        for p in range(kh * kw):
            i, j = divmod(p, kw)
            gx = gx.at[:, i : i + oh, j : j + ow, :].add(cols[:, :, :, p, :])
        if not nhwc:
            gx = gx.transpose(0, 3, 1, 2)
        return gx, gw

    conv.defvjp(fwd, bwd)
    return conv


def conv_col2im(nhwc):
    f = _conv_col2im_jax(nhwc)
    return lambda x, w: _jaxop_apply(f, [x, w], "conv")


def pool_reshape(x, layout="nchw"):
    if layout == "nchw":
        b, c, h, w = x.shape
        return x.reshape((b, c, h // 2, 2, w // 2, 2)).max(axis=(3, 5))
    b, h, w, c = x.shape
    return x.reshape((b, h // 2, 2, w // 2, 2, c)).max(axis=(2, 4))


def pool_max4(x, layout="nchw"):
    _, pt = _pt()
    if layout == "nchw":
        s = [x[:, :, i::2, j::2] for i in range(2) for j in range(2)]
    else:
        s = [x[:, i::2, j::2, :] for i in range(2) for j in range(2)]
    return pt.maximum(pt.maximum(s[0], s[1]), pt.maximum(s[2], s[3]))


def pool_lax(layout="nchw"):
    import jax

    win = (1, 1, 2, 2) if layout == "nchw" else (1, 2, 2, 1)

    def f(x):
        return jax.lax.reduce_window(x, -np.inf, jax.lax.max, win, win, "VALID")

    return lambda x: _jaxop_apply(f, [x], "pool")


def pool_jax(kind, layout="nchw"):
    """Pooling as a JAXOp: 'max4' (max of 4 strided views) or 'reshape' (reshape + max), inside JAX."""
    import jax.numpy as jnp

    def f(x):
        if layout == "nhwc":
            x = x.transpose(0, 3, 1, 2)
        b, c, h, w = x.shape
        if kind == "max4":
            y = jnp.maximum(
                jnp.maximum(x[:, :, 0::2, 0::2], x[:, :, 0::2, 1::2]),
                jnp.maximum(x[:, :, 1::2, 0::2], x[:, :, 1::2, 1::2]),
            )
        else:
            y = x.reshape(b, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))
        return y.transpose(0, 2, 3, 1) if layout == "nhwc" else y

    return lambda x: _jaxop_apply(f, [x], "pool")


def build_pytensor(conv, pool, layout="nchw", mode="JAX", batch=None):
    """Compile one LeNet-5 Adam train step f(x, y) -> loss; x (B,1,28,28) or (B,28,28,1), y int32."""
    pytensor, pt = _pt()
    rng = np.random.default_rng(0)

    def sh(shape, scale):
        v = (rng.standard_normal(shape) * scale).astype("float32")
        return pytensor.shared(v, shape=v.shape)

    if layout in ("nchw", "nhwc_oihw"):
        w1, w2 = sh((20, 1, 5, 5), 0.2), sh((50, 20, 5, 5), 0.045)
    if layout == "nchw":
        x = pt.tensor("x", dtype="float32", shape=(batch, 1, 28, 28))
    elif layout == "nhwc_oihw":
        x = pt.tensor("x", dtype="float32", shape=(batch, 28, 28, 1))
    else:
        w1, w2 = sh((5, 5, 1, 20), 0.2), sh((5, 5, 20, 50), 0.045)
        x = pt.tensor("x", dtype="float32", shape=(batch, 28, 28, 1))
    b1, b2 = sh((20,), 0), sh((50,), 0)
    w3, b3 = sh((800, 500), 0.05), sh((500,), 0)
    w4, b4 = sh((500, 10), 0.06), sh((10,), 0)
    y = pt.ivector("y")
    bias = (lambda b: b.dimshuffle("x", 0, "x", "x")) if layout == "nchw" else (lambda b: b)
    h = pool(pt.maximum(conv(x, w1) + bias(b1), 0))
    h = pool(pt.maximum(conv(h, w2) + bias(b2), 0))
    h = h.reshape((h.shape[0], -1))
    h = pt.maximum(pt.dot(h, w3) + b3, 0)
    logits = pt.dot(h, w4) + b4
    logp = logits - pt.logsumexp(logits, axis=1, keepdims=True)
    loss = -logp[pt.arange(y.shape[0]), y].mean()
    params = [w1, b1, w2, b2, w3, b3, w4, b4]
    grads = pytensor.grad(loss, params)
    lr, b1_, b2_, eps = np.float32(1e-3), np.float32(0.9), np.float32(0.999), np.float32(1e-8)
    t = pytensor.shared(np.float32(0))
    t1 = t + 1
    updates = [(t, t1)]
    for p, g in zip(params, grads):
        m = pytensor.shared(np.zeros_like(p.get_value()))
        v = pytensor.shared(np.zeros_like(p.get_value()))
        m1 = b1_ * m + (1 - b1_) * g
        v1 = b2_ * v + (1 - b2_) * g * g
        step = lr * pt.sqrt(1 - b2_**t1) / (1 - b1_**t1)
        updates += [(m, m1), (v, v1), (p, p - step * m1 / (pt.sqrt(v1) + eps))]
    f = pytensor.function([x, y], loss, updates=updates, mode=mode)
    return f


def conv_module():
    from workers.nn.conv import conv2d

    return conv2d


def pool_module():
    from workers.nn.conv import max_pool

    return max_pool


VARIANTS = {
    # name: (conv factory, pool factory, layout)
    "conv.py": (conv_module, pool_module, "nchw"),
    "conv.py_nhwc": (
        lambda: lambda x, w: conv_module()(x, w, "NHWC"),
        lambda: lambda x: pool_module()(x, 2, "NHWC"),
        "nhwc_oihw",
    ),
    "lax_nchw+reshape": (lambda: conv_lax(("NCHW", "OIHW", "NCHW")), lambda: pool_reshape, "nchw"),
    "lax_nchw+max4": (lambda: conv_lax(("NCHW", "OIHW", "NCHW")), lambda: pool_max4, "nchw"),
    "lax_nhwc+max4": (
        lambda: conv_lax(("NHWC", "HWIO", "NHWC")),
        lambda: lambda x: pool_max4(x, "nhwc"),
        "nhwc",
    ),
    "lax_nhwc+reshape": (
        lambda: conv_lax(("NHWC", "HWIO", "NHWC")),
        lambda: lambda x: pool_reshape(x, "nhwc"),
        "nhwc",
    ),
    "col2im_nchw+reshape": (lambda: conv_col2im(False), lambda: pool_reshape, "nchw"),
    "col2im_nhwc+reshape": (
        lambda: conv_col2im(True),
        lambda: lambda x: pool_reshape(x, "nhwc"),
        "nhwc",
    ),
    "col2im_nchw+max4": (lambda: conv_col2im(False), lambda: pool_max4, "nchw"),
    "col2im_nchw+jaxmax4": (lambda: conv_col2im(False), lambda: pool_jax("max4"), "nchw"),
    "col2im_nchw+jaxreshape": (lambda: conv_col2im(False), lambda: pool_jax("reshape"), "nchw"),
    "lax_nchw+laxpool": (lambda: conv_lax(("NCHW", "OIHW", "NCHW")), lambda: pool_lax(), "nchw"),
    "im2col_last_dot+reshape": (lambda: conv_im2col_nchw, lambda: pool_reshape, "nchw"),
    "im2col_last_einsum+reshape": (
        lambda: lambda x, w: conv_im2col_nchw(x, w, "last", "einsum"),
        lambda: pool_reshape,
        "nchw",
    ),
    "im2col_chan_tensordot+reshape": (
        lambda: lambda x, w: conv_im2col_nchw(x, w, "chan"),
        lambda: pool_reshape,
        "nchw",
    ),
    "im2col_first_tensordot+reshape": (
        lambda: lambda x, w: conv_im2col_nchw(x, w, "first"),
        lambda: pool_reshape,
        "nchw",
    ),
    "im2col_last_dot+max4": (lambda: conv_im2col_nchw, lambda: pool_max4, "nchw"),
    "im2col_nhwc+reshape": (
        lambda: conv_im2col_nhwc,
        lambda: lambda x: pool_reshape(x, "nhwc"),
        "nhwc",
    ),
    "im2col_nhwc+max4": (
        lambda: conv_im2col_nhwc,
        lambda: lambda x: pool_max4(x, "nhwc"),
        "nhwc",
    ),
}


def make_pytensor_step(name, X, Y, mode="JAX"):
    """Compile variant `name`; return (step, compile s).

    Suffixes: '@static' puts the batch size in the graph (needed by the im2col
    variants, whose reshapes JAX cannot trace with a symbolic batch), '@eigen'
    compiles with `workers.nn.jaxmode.jax_mode()` (convolutions by Eigen, not YNNPACK).
    """
    base, *tags = name.split("@")
    conv_f, pool_f, layout = VARIANTS[base]
    if "eigen" in tags:
        from workers.nn.jaxmode import jax_mode

        mode = jax_mode()
    t0 = time.perf_counter()
    f = build_pytensor(conv_f(), pool_f(), layout, mode, BATCH if "static" in tags else None)
    if layout.startswith("nhwc"):
        X = np.ascontiguousarray(X.transpose(0, 2, 3, 1))
    n = len(X) // BATCH

    def step(i):
        i %= n
        return float(f(X[i * BATCH : (i + 1) * BATCH], Y[i * BATCH : (i + 1) * BATCH]))

    step(0)
    return step, time.perf_counter() - t0


# --------------------------------------------------------------------------- PyTorch eager
def make_torch_step(X, Y):
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 20, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(20, 50, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(800, 500), torch.nn.ReLU(), torch.nn.Linear(500, 10),
    )  # fmt: skip
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    lossf = torch.nn.CrossEntropyLoss()
    Xt, Yt = torch.from_numpy(X), torch.from_numpy(Y.astype(np.int64))
    n = len(X) // BATCH

    def step(i):
        i %= n
        opt.zero_grad()
        loss = lossf(net(Xt[i * BATCH : (i + 1) * BATCH]), Yt[i * BATCH : (i + 1) * BATCH])
        loss.backward()
        opt.step()
        return loss.item()

    return step


def _procs_running():
    with open("/proc/stat") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("procs_running"))


def wait_quiet(max_wait=3.0):
    """On a shared machine: wait (at most max_wait s) until no other process is runnable."""
    t0, ok = time.time(), 0
    while time.time() - t0 < max_wait and ok < 3:
        ok = ok + 1 if _procs_running() <= 1 else 0
        time.sleep(0.05)


def time_block(step, steps):
    """Seconds per epoch measured over `steps` train steps (each blocks on the loss)."""
    wait_quiet()
    t0 = time.perf_counter()
    for s in range(steps):
        loss = step(s)
    assert np.isfinite(loss)
    return (time.perf_counter() - t0) / steps * (EPOCH // BATCH)


DEFAULT = (
    "conv.py@eigen,conv.py_nhwc@eigen,conv.py,conv.py_nhwc,"
    "lax_nchw+reshape,lax_nchw+reshape@eigen,lax_nhwc+reshape,lax_nhwc+reshape@eigen,"
    "lax_nchw+max4@eigen,col2im_nchw+max4@eigen,col2im_nchw+jaxmax4@eigen,lax_nchw+laxpool@eigen,"
    "im2col_last_dot+reshape@static,im2col_last_einsum+reshape@static,im2col_chan_tensordot+reshape@static,"
    "im2col_first_tensordot+reshape@static,im2col_last_dot+max4@static,im2col_nhwc+reshape@static,"
    "im2col_nhwc+max4@static"
)


def load_mnist(folder):
    """The IDX training images as (N, 1, 28, 28) float32 in [0, 1] and labels as int32."""
    import gzip
    from pathlib import Path

    with gzip.open(Path(folder) / "train-images-idx3-ubyte.gz") as f:
        X = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)
    with gzip.open(Path(folder) / "train-labels-idx1-ubyte.gz") as f:
        Y = np.frombuffer(f.read(), np.uint8, offset=8)
    return (X / np.float32(255)).astype(np.float32), Y.astype(np.int32)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=6, help="train steps per timed block")
    ap.add_argument("--rounds", type=int, default=30, help="timed blocks per variant, round-robin")
    ap.add_argument("--variants", default=DEFAULT)
    ap.add_argument("--full-epochs", type=int, default=0, help="time this many whole real-MNIST epochs instead")
    ap.add_argument("--mnist", default="/work/shared/data/mnist")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--mode", default="JAX")
    a = ap.parse_args()
    import torch

    torch.set_num_threads(a.threads)
    if a.full_epochs:
        X, Y = load_mnist(a.mnist)
        a.rounds, a.steps = a.full_epochs, len(X) // BATCH
    else:
        rng = np.random.default_rng(0)
        X = rng.random((2400, 1, 28, 28), dtype=np.float32)
        Y = rng.integers(0, 10, 2400).astype(np.int32)
    steps = {"torch eager": make_torch_step(X, Y)}
    compile_s = {"torch eager": 0.0}
    for name in filter(None, a.variants.split(",")):
        steps[name], compile_s[name] = make_pytensor_step(name, X, Y, a.mode)
    times = {k: [] for k in steps}
    for k, st in steps.items():  # warm-up
        time_block(st, 3)
    for _ in range(a.rounds):
        for k, st in steps.items():
            times[k].append(time_block(st, a.steps))
    ref = min(times["torch eager"])
    print(f"{'variant':40s} {'min s/ep':>8s} {'p25':>6s} {'median':>6s} {'vs torch':>8s} {'compile s':>9s}")
    for k, ts in times.items():
        m = min(ts)
        q, med = np.percentile(ts, 25), np.median(ts)
        print(f"{k:40s} {m:8.2f} {q:6.2f} {med:6.2f} {m / ref:8.2f} {compile_s[k]:9.1f}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

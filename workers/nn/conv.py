"""2-D convolution and max pooling for PyTensor graphs, run by XLA's native convolution on the JAX backend."""

from __future__ import annotations

import functools
import warnings

import jax
import jax.numpy as jnp
import pytensor.tensor as pt
from pytensor.compile.mode import JAX, Mode
from pytensor.compile.sharedvalue import SharedVariable
from pytensor.link.jax.linker import JAXLinker
from pytensor.link.jax.ops import JAXOp
from pytensor.scalar import upcast
from pytensor.tensor.type import TensorType

__all__ = ["conv2d", "max_pool", "jax_mode", "XLA_CPU_OPTIONS"]

LAYOUTS = ("NCHW", "NHWC")

# XLA:CPU (jaxlib 0.10) gives convolutions to YNNPACK, single-threaded and slow
# for LeNet shapes (the weight gradient above all).  Leaving YNNPACK only dots
# and reductions sends convolutions to Eigen: LeNet train steps ~1.6x faster.
# The same as XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=-individual_convolution,
# but per compiled function (see `jax_mode`).
XLA_CPU_OPTIONS = {
    "xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_DOT,"
    "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE",
}


def _make_conv(layout):
    """JAX valid cross-correlation, x in `layout`, w (K, C, kh, kw); returns a 1-tuple (for JAXOp).

    Forward and weight gradient are XLA convolutions; the input gradient is one
    matmul with the filters plus a col2im (kh * kw shifted adds), about twice as
    fast on CPU as XLA's transposed convolution.
    """
    dn = (layout, "OIHW", layout)

    def forward(x, w):
        return jax.lax.conv_general_dilated(x, w, (1, 1), "VALID", dimension_numbers=dn)

    @jax.custom_vjp
    def conv(x, w):
        return forward(x, w)

    def conv_fwd(x, w):
        return forward(x, w), (x, w)

    def conv_bwd(res, g):
        x, w = res
        gw = jax.vjp(lambda w_: forward(x, w_), w)[1](g)[0]
        if layout == "NCHW":  # col2im in NHWC: contiguous channel rows
            x, g = x.transpose(0, 2, 3, 1), g.transpose(0, 2, 3, 1)
        k, c, kh, kw = w.shape
        b, oh, ow, _ = g.shape
        w_mat = w.transpose(2, 3, 1, 0).reshape(kh * kw * c, k)
        cols = (g.reshape(-1, k) @ w_mat.T).reshape(b, oh, ow, kh * kw, c)
        gx = jnp.zeros(x.shape, cols.dtype)
        for p in range(kh * kw):
            i, j = divmod(p, kw)
            gx = gx.at[:, i : i + oh, j : j + ow, :].add(cols[:, :, :, p, :])
        if layout == "NCHW":
            gx = gx.transpose(0, 3, 1, 2)
        return gx.astype(x.dtype), gw

    conv.defvjp(conv_fwd, conv_bwd)
    return lambda x, w: (conv(x, w),)


# module-level, so that equal conv2d nodes are equal Ops (PyTensor merges them)
_CONV = {layout: _make_conv(layout) for layout in LAYOUTS}


def _static_kernel(w):
    """`w`, with the static shape of its current value when it is a shared variable without one."""
    if isinstance(w, SharedVariable) and None in w.type.shape:
        return pt.specify_shape(w, w.get_value(borrow=True).shape)
    return pt.as_tensor_variable(w)


def _check_layout(layout):
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")


def conv2d(x, w, layout="NCHW"):
    """Valid 2-D cross-correlation, like ``torch.nn.functional.conv2d`` (no kernel flip).

    A `pytensor.link.jax.ops.JAXOp`: on the JAX backend it is compiled into the
    graph as XLA convolutions; other backends call it through JAX.
    ``pytensor.grad`` works through it.

    Parameters
    ----------
    x : (B, C, H, W) tensor_like, or (B, H, W, C) with ``layout="NHWC"``
        Input maps.
    w : (K, C, kh, kw) tensor_like
        Filters, in this layout whatever `layout` is.  Give it a static shape
        (``pytensor.shared(value, shape=value.shape)``) or pass a shared
        variable, whose current value's shape is then used.
    layout : {"NCHW", "NHWC"}
        Layout of `x` and of the result.  NHWC saves XLA:CPU transposes (~15 %
        of a LeNet step).

    Returns
    -------
    (B, K, H - kh + 1, W - kw + 1) tensor_variable, or (B, H - kh + 1, W - kw + 1, K)
        With a static shape wherever the input shapes are static.
    """
    _check_layout(layout)
    x, w = pt.as_tensor_variable(x), _static_kernel(w)
    if x.type.ndim != 4 or w.type.ndim != 4:
        raise ValueError(f"conv2d wants 4-d x and w (K, C, kh, kw), got ndim {x.type.ndim} and {w.type.ndim}")
    if layout == "NCHW":
        b, c, h, wd = x.type.shape
    else:
        b, h, wd, c = x.type.shape
    k, c_w, kh, kw = w.type.shape
    if None not in (c, c_w) and c != c_w:
        raise ValueError(f"conv2d: x has {c} channels, w expects {c_w}")

    def valid(n, m):
        return None if n is None or m is None else n - m + 1

    oh, ow = valid(h, kh), valid(wd, kw)
    shape = (b, k, oh, ow) if layout == "NCHW" else (b, oh, ow, k)
    out_type = TensorType(upcast(x.dtype, w.dtype), shape=shape)
    return JAXOp([x.type, w.type], [out_type], _CONV[layout], name="conv2d")(x, w)


def max_pool(x, size=2, layout="NCHW"):
    """Non-overlapping ``size x size`` max pooling, like ``torch.nn.MaxPool2d(size)``.

    Rows and columns past the last full window are dropped.  With static H and
    W this is a reshape + max (fastest); otherwise the max of the ``size**2``
    strided views, which needs H and W multiples of `size`.  The gradient goes
    to the maximum of each window (to each of them in case of a tie).

    Parameters
    ----------
    x : (B, C, H, W) tensor_like, or (B, H, W, C) with ``layout="NHWC"``
    size : int
    layout : {"NCHW", "NHWC"}

    Returns
    -------
    (B, C, H // size, W // size) tensor_variable, or (B, H // size, W // size, C)
    """
    _check_layout(layout)
    x = pt.as_tensor_variable(x)
    hw = (2, 3) if layout == "NCHW" else (1, 2)  # the spatial axes
    h, w = (x.type.shape[a] for a in hw)
    if h is None or w is None:
        views = [x[_window(hw, slice(i, None, size), slice(j, None, size))] for i in range(size) for j in range(size)]
        return functools.reduce(pt.maximum, views)
    x = x[_window(hw, slice(h - h % size), slice(w - w % size))]
    shape = list(x.shape)
    shape[hw[1]: hw[1] + 1] = [w // size, size]
    shape[hw[0]: hw[0] + 1] = [h // size, size]
    return x.reshape(shape).max(axis=(hw[0] + 1, hw[1] + 2))


def _window(hw, rows, cols):
    """Index tuple applying slices `rows` and `cols` to the spatial axes `hw` of a 4-d tensor."""
    index = [slice(None)] * 4
    index[hw[0]], index[hw[1]] = rows, cols
    return tuple(index)


class _JAXLinkerWithOptions(JAXLinker):
    """PyTensor's JAX linker, passing `compiler_options` to ``jax.jit``.

    A class attribute, because PyTensor re-creates linkers with ``allow_gc`` only.
    """

    compiler_options: dict = {}

    def jit_compile(self, fn):
        static = self.scalar_shape_inputs
        jit_fn = jax.jit(fn, static_argnums=static, compiler_options=self.compiler_options)
        if not static:
            return jit_fn
        return lambda *args: jit_fn(*(int(a) if i in static else a for i, a in enumerate(args)))


@functools.cache
def _usable(options: frozenset) -> bool:
    """Whether this jaxlib's XLA accepts these options (names and values change between releases)."""
    try:
        jax.jit(lambda a: a + 1, compiler_options=dict(options)).lower(jnp.zeros(1)).compile()
    except Exception as err:  # noqa: BLE001 - XLA reports a bad option as a runtime error
        warnings.warn(f"XLA options {dict(options)} not usable here, compiling without them: {err}")
        return False
    return True


def jax_mode(compiler_options=None) -> Mode:
    """PyTensor's ``mode="JAX"``, but compiling with `XLA_CPU_OPTIONS` (or the given XLA options).

    Use as ``pytensor.function(..., mode=jax_mode())``.  On a GPU, or with a
    jaxlib that rejects the options, this is plain ``mode="JAX"``.
    """
    opts = XLA_CPU_OPTIONS if compiler_options is None else compiler_options
    if jax.default_backend() != "cpu" or not _usable(frozenset(opts.items())):
        opts = {}
    linker = type("JAXLinkerWithOptions", (_JAXLinkerWithOptions,), {"compiler_options": dict(opts)})
    return Mode(linker(), JAX.provided_optimizer)

"""2-D convolution and max pooling for PyTensor graphs, run by XLA's native convolution on the JAX backend."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import pytensor.tensor as pt
from pytensor.compile.sharedvalue import SharedVariable
from pytensor.link.jax.ops import JAXOp
from pytensor.scalar import upcast
from pytensor.tensor.type import TensorType

__all__ = ["conv2d", "max_pool"]

LAYOUTS = ("NCHW", "NHWC")


def _forward(x, w, layout):
    return jax.lax.conv_general_dilated(x, w, (1, 1), "VALID", dimension_numbers=(layout, "OIHW", layout))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _conv(x, w, layout):
    """JAX valid cross-correlation, x in `layout`, w (K, C, kh, kw).

    Forward and weight gradient are XLA convolutions.  On CPU the input gradient
    is one matmul with the filters plus a col2im (kh * kw shifted adds), about
    twice as fast as XLA's transposed convolution; elsewhere it is XLA's.
    """
    return _forward(x, w, layout)


def _conv_fwd(x, w, layout):
    return _forward(x, w, layout), (x, w)


def _conv_bwd(layout, res, g):
    x, w = res
    if jax.default_backend() != "cpu":
        return jax.vjp(lambda x_, w_: _forward(x_, w_, layout), x, w)[1](g)
    gw = jax.vjp(lambda w_: _forward(x, w_, layout), w)[1](g)[0]
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


_conv.defvjp(_conv_fwd, _conv_bwd)


# JAXOp bodies (a tuple out): module-level, so that equal conv2d nodes are equal
# Ops (PyTensor merges them) and backends that pickle Ops (NUMBA) can.
def _conv_nchw(x, w):
    return (_conv(x, w, "NCHW"),)


def _conv_nhwc(x, w):
    return (_conv(x, w, "NHWC"),)


_CONV = {"NCHW": _conv_nchw, "NHWC": _conv_nhwc}


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
        Layout of `x` and of the result.  NHWC saves XLA:CPU the transposes
        around each convolution (~10 % of a LeNet step).

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
    nchw = layout == "NCHW"
    h, w = x.type.shape[2:] if nchw else x.type.shape[1:3]
    if h is None or w is None:
        if not nchw:
            return max_pool(x.dimshuffle(0, 3, 1, 2), size).dimshuffle(0, 2, 3, 1)
        views = [x[:, :, i::size, j::size] for i in range(size) for j in range(size)]
        return functools.reduce(pt.maximum, views)
    ho, wo = h // size, w // size
    if nchw:
        x = x[:, :, : ho * size, : wo * size]
        return x.reshape((x.shape[0], x.shape[1], ho, size, wo, size)).max(axis=(3, 5))
    x = x[:, : ho * size, : wo * size, :]
    return x.reshape((x.shape[0], ho, size, wo, size, x.shape[3])).max(axis=(2, 4))

"""conv2d and max_pool against SciPy/NumPy references: values, shapes, gradients, backends."""

from __future__ import annotations

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from scipy.signal import convolve2d, correlate2d

from workers.nn.conv import conv2d, max_pool
from workers.nn.jaxmode import jax_mode

RNG = np.random.default_rng(1234)
MODES = {"JAX": "JAX", "jax_mode": jax_mode()}
# (layout, mode): both layouts on the JAX backend; the XLA options change speed, not results
CASES = [("NCHW", "JAX"), ("NHWC", "JAX"), ("NCHW", "jax_mode")]


def ref_conv(x, w):
    """(B, C, H, W) x (K, C, kh, kw) -> valid cross-correlation, float64, one SciPy call per map pair."""
    (b, c), k = x.shape[:2], w.shape[0]
    return np.array([[sum(correlate2d(x[i, j], w[n, j], "valid") for j in range(c)) for n in range(k)]
                     for i in range(b)])


def ref_conv_grads(x, w, g):
    """Gradients of sum(conv(x, w) * g) with respect to x and w, float64."""
    (b, c), k = x.shape[:2], w.shape[0]
    gx = np.array([[sum(convolve2d(g[i, n], w[n, j], "full") for n in range(k)) for j in range(c)] for i in range(b)])
    gw = np.array([[sum(correlate2d(x[i, j], g[i, n], "valid") for i in range(b)) for j in range(c)] for n in range(k)])
    return gx, gw


def ref_pool(x, size):
    """(B, C, H, W) -> (B, C, H // size, W // size), remainder dropped."""
    b, c, h, w = x.shape
    x = x[:, :, : h - h % size, : w - w % size]
    return x.reshape(b, c, h // size, size, w // size, size).max(axis=(3, 5))


def to_nhwc(a):
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1))


def to_nchw(a):
    return np.asarray(a).transpose(0, 3, 1, 2)


# (x shape (B, C, H, W), w shape (K, C, kh, kw))
CONV_SHAPES = [
    ((2, 3, 7, 6), (4, 3, 3, 2)),  # C > 1, K > 1, non-square kernel and image
    ((3, 1, 12, 12), (5, 1, 5, 5)),  # LeNet's first layer, small
    ((2, 4, 5, 5), (1, 4, 1, 1)),  # 1x1 kernel, K = 1
    ((1, 2, 4, 3), (3, 2, 4, 3)),  # kernel as large as the image: 1x1 output
]


@pytest.mark.parametrize(
    "xs, ws, layout, mode",
    [(*shapes, *case) for case in CASES for shapes in (CONV_SHAPES if case[1] == "JAX" else CONV_SHAPES[:1])],
)
def test_conv2d_values_and_gradients_match_scipy(xs, ws, layout, mode):
    xv, wv = RNG.standard_normal(xs), RNG.standard_normal(ws)
    out_nchw = (xs[0], ws[0], xs[2] - ws[2] + 1, xs[3] - ws[3] + 1)
    gv = RNG.standard_normal(out_nchw)
    nhwc = layout == "NHWC"
    x = pt.tensor("x", dtype="float32", shape=(None, *(to_nhwc(xv).shape[1:] if nhwc else xs[1:])))
    w = pt.tensor("w", dtype="float32", shape=ws)
    g = pt.tensor("g", dtype="float32", shape=(None, *(to_nhwc(gv).shape[1:] if nhwc else out_nchw[1:])))
    y = conv2d(x, w, layout)
    assert y.type.shape == g.type.shape and y.dtype == "float32"
    gx, gw = pytensor.grad((y * g).sum(), [x, w])
    f = pytensor.function([x, w, g], [y, gx, gw], mode=MODES[mode])
    args = [to_nhwc(xv), wv, to_nhwc(gv)] if nhwc else [xv, wv, gv]
    y_, gx_, gw_ = f(*(a.astype("float32") for a in args))
    if nhwc:
        y_, gx_ = to_nchw(y_), to_nchw(gx_)
    ref_gx, ref_gw = ref_conv_grads(xv, wv, gv)
    np.testing.assert_allclose(y_, ref_conv(xv, wv), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(gx_, ref_gx, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(gw_, ref_gw, rtol=1e-4, atol=1e-4)


def test_conv2d_on_the_default_backend_and_with_a_shared_kernel():
    """A shared kernel without static shape gets its value's shape; the default mode calls JAX from Python."""
    xv, wv = RNG.standard_normal((2, 3, 6, 5)), RNG.standard_normal((2, 3, 2, 3))
    x = pt.tensor("x", dtype="float32", shape=(None, 3, 6, 5))
    w = pytensor.shared(wv.astype("float32"))
    y = conv2d(x, w)
    assert y.type.shape == (None, 2, 5, 3)
    gw = pytensor.grad(y.sum(), w)
    f = pytensor.function([x], [y, gw])
    y_, gw_ = f(xv.astype("float32"))
    np.testing.assert_allclose(y_, ref_conv(xv, wv), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(gw_, ref_conv_grads(xv, wv, np.ones(y_.shape))[1], rtol=1e-4, atol=1e-4)


def test_conv2d_finite_differences():
    rng = np.random.default_rng(2)
    xv, wv = rng.standard_normal((2, 2, 5, 4)), rng.standard_normal((3, 2, 3, 2))
    args = [xv.astype("float32"), wv.astype("float32")]
    tol = dict(eps=1e-2, abs_tol=1e-3, rel_tol=1e-3)  # float32; conv2d is linear in each input: no truncation error
    pytensor.gradient.verify_grad(conv2d, args, rng=np.random.default_rng(0), mode="JAX", **tol)


def test_conv2d_rejects_mismatched_channels_and_bad_layout():
    x = pt.tensor("x", dtype="float32", shape=(None, 3, 8, 8))
    with pytest.raises(ValueError, match="channels"):
        conv2d(x, pt.tensor("w", dtype="float32", shape=(4, 2, 3, 3)))
    with pytest.raises(ValueError, match="layout"):
        conv2d(x, pt.tensor("w", dtype="float32", shape=(4, 3, 3, 3)), layout="CHWN")


@pytest.mark.parametrize("layout, mode", CASES)
@pytest.mark.parametrize("shape, size", [((2, 3, 8, 6), 2), ((2, 2, 7, 9), 2), ((1, 2, 9, 6), 3)])
def test_max_pool_matches_numpy_and_routes_the_gradient_to_the_maximum(shape, size, layout, mode):
    xv = RNG.permutation(np.prod(shape)).reshape(shape).astype("float32")  # distinct values: no ties
    nhwc = layout == "NHWC"
    x = pt.tensor("x", dtype="float32", shape=(None, *(to_nhwc(xv).shape[1:] if nhwc else shape[1:])))
    y = max_pool(x, size, layout)
    g = pt.tensor("g", dtype="float32", shape=y.type.shape)
    f = pytensor.function([x, g], [y, pytensor.grad((y * g).sum(), x)], mode=MODES[mode])
    ref = ref_pool(xv, size)
    gv = RNG.standard_normal(ref.shape).astype("float32")
    y_, gx_ = f(to_nhwc(xv), to_nhwc(gv)) if nhwc else f(xv, gv)
    if nhwc:
        y_, gx_ = to_nchw(y_), to_nchw(gx_)
    np.testing.assert_array_equal(y_, ref)
    # the gradient: g at each window's maximum, 0 elsewhere (and in the dropped remainder)
    expected = np.zeros_like(xv)
    b, c, h, w = ref.shape
    for i, j, r, s in np.ndindex(b, c, h, w):
        win = xv[i, j, r * size : (r + 1) * size, s * size : (s + 1) * size]
        dr, ds = np.unravel_index(win.argmax(), win.shape)
        expected[i, j, r * size + dr, s * size + ds] = gv[i, j, r, s]
    np.testing.assert_array_equal(gx_, expected)


def test_max_pool_without_static_spatial_shape():
    """Strided views, not a reshape (the JAX backend needs static H, W; NUMBA compiles this for minutes)."""
    xv = RNG.standard_normal((2, 3, 6, 4)).astype("float32")
    x = pt.tensor4("x", dtype="float32")
    y = max_pool(x)
    f = pytensor.function([x], [y, pytensor.grad(y.sum(), x)], mode="FAST_COMPILE")
    y_, gx_ = f(xv)
    np.testing.assert_array_equal(y_, ref_pool(xv, 2))
    assert gx_.sum() == y_.size and set(np.unique(gx_)) == {0.0, 1.0}


@pytest.mark.slow  # ~20 s of float64 graph compilation; the fast lane keeps the exact max-pool gradient test
def test_max_pool_finite_differences():
    """In float64 on the Python/C VM (JAX runs float32 here): the gradient graph is PyTensor's, not the backend's."""
    xv = np.random.default_rng(1).permutation(96).reshape(2, 2, 4, 6) / 10
    tol = dict(eps=1e-2, abs_tol=1e-6, rel_tol=1e-6)  # values 0.1 apart: eps never changes a window's maximum
    pytensor.gradient.verify_grad(max_pool, [xv], rng=np.random.default_rng(0), mode="FAST_COMPILE", **tol)


def test_lenet_train_step_stays_float32():
    """conv -> relu -> pool twice, compiled with gradients: no float64 anywhere in the graph."""
    x = pt.tensor("x", dtype="float32", shape=(None, 1, 28, 28))
    w1 = pytensor.shared(RNG.standard_normal((4, 1, 5, 5)).astype("float32"), shape=(4, 1, 5, 5))
    w2 = pytensor.shared(RNG.standard_normal((6, 4, 5, 5)).astype("float32"), shape=(6, 4, 5, 5))
    h = max_pool(pt.maximum(conv2d(x, w1), 0))
    h = max_pool(pt.maximum(conv2d(h, w2), 0))
    assert h.type.shape == (None, 6, 4, 4)
    loss = h.mean()
    updates = [(w, w - np.float32(0.1) * g) for w, g in zip([w1, w2], pytensor.grad(loss, [w1, w2]))]
    f = pytensor.function([x], loss, updates=updates, mode=jax_mode())
    dtypes = {v.type.dtype for v in f.maker.fgraph.variables if hasattr(v.type, "dtype")}
    assert "float64" not in dtypes
    assert np.isfinite(f(RNG.random((3, 1, 28, 28), dtype=np.float32)))
    assert w1.get_value().dtype == np.float32

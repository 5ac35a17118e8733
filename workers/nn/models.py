"""The two built-in networks, MLP and LeNet-5, as implementations of the model contract (nn/model.py).

A layout is a list of ParamSpec (shape, fans, weight or bias); the forward functions take the
matching list of symbolic parameters, so the same graph serves live weights and their moving average.
"""

from __future__ import annotations

import numpy as np

from workers.nn.conv import conv2d, max_pool
from workers.nn.layers import ACTIVATIONS, activation, dense, pad_to
from workers.nn.model import GRAPH, Dropout, Model, ParamSpec, dense_params

LENET_KERNEL = 5
LENET_MIN_SIZE = 16  # smallest image for two 5x5 conv + 2x2 pool stages; smaller images are zero-padded


def mlp_layout(n_in: int, width: int, depth: int, n_out: int, width2: int | None = None) -> list[ParamSpec]:
    """Parameters of an MLP n_in -> width -> (depth - 1) x width2 -> n_out (depth 0: logistic regression;
    width2 defaults to width)."""
    sizes = [n_in] + ([width] + [width2 or width] * (depth - 1) if depth else []) + [n_out]
    return [s for i, (a, b) in enumerate(zip(sizes, sizes[1:])) for s in dense_params(f"dense{i}", a, b)]


def mlp(params, x, activation: str, dropout: Dropout | None = None):
    """MLP forward pass.

    Parameters
    ----------
    params : list of (W, b) pairs flattened, as in `mlp_layout`.
    x : (B, H, W) or (B, n_in) images.
    activation : hidden activation: its name, or the function (workers.nn.layers.activation).
    dropout : the dropout switch (None: off), on the input and after each hidden layer.

    Returns
    -------
    logits (B, n_out).
    """
    act = ACTIVATIONS[activation] if isinstance(activation, str) else activation
    dropout = dropout or Dropout()
    h = x.reshape((x.shape[0], int(np.prod(x.type.shape[1:]))))  # static width: JAX random needs it
    h = dropout.input(h)
    pairs = list(zip(params[0::2], params[1::2]))
    for w, b in pairs[:-1]:
        h = dropout.hidden(act(dense(h, w, b)))
    w, b = pairs[-1]
    return dense(h, w, b)


def _lenet_sizes(image_shape) -> tuple[int, int]:
    size = [max(LENET_MIN_SIZE, s) for s in image_shape]
    after = [((s - LENET_KERNEL + 1) // 2 - LENET_KERNEL + 1) // 2 for s in size]
    return after[0], after[1]


def lenet_layout(image_shape, conv1_maps: int, conv2_maps: int, width: int, n_out: int) -> list[ParamSpec]:
    """Parameters of LeNet-5: conv 5x5, pool, conv 5x5, pool, fully connected `width`, softmax."""
    k2 = LENET_KERNEL * LENET_KERNEL
    h, w = _lenet_sizes(image_shape)
    return [
        ParamSpec("conv1_W", (conv1_maps, 1, LENET_KERNEL, LENET_KERNEL), k2, conv1_maps * k2 // 4, True),
        ParamSpec("conv1_b", (conv1_maps,), k2, conv1_maps * k2 // 4, False),
        ParamSpec("conv2_W", (conv2_maps, conv1_maps, LENET_KERNEL, LENET_KERNEL), conv1_maps * k2,
                  conv2_maps * k2 // 4, True),
        ParamSpec("conv2_b", (conv2_maps,), conv1_maps * k2, conv2_maps * k2 // 4, False),
        *dense_params("fc", conv2_maps * h * w, width),
        *dense_params("out", width, n_out),
    ]


def lenet(params, x, activation: str, dropout: Dropout | None = None):
    """LeNet-5 forward pass; x: (B, H, W) images -> logits (B, n_out).

    Maps are NHWC inside (measured about 10 % faster than NCHW on XLA:CPU); kernels
    stay (K, C, kh, kw). Activation is applied after pooling: the same result for our monotone
    activations, on 4x fewer values. Dropout (when given) acts on the input pixels and on the fully
    connected layer, never on the output.
    """
    act = ACTIVATIONS[activation] if isinstance(activation, str) else activation
    c1w, c1b, c2w, c2b, fw, fb, ow, ob = params
    dropout = dropout or Dropout()
    h = pad_to(x, LENET_MIN_SIZE)
    h = dropout.input(h.reshape((h.shape[0], *h.type.shape[1:], 1)))
    h = act(max_pool(conv2d(h, c1w, layout="NHWC") + c1b, layout="NHWC"))
    h = act(max_pool(conv2d(h, c2w, layout="NHWC") + c2b, layout="NHWC"))
    h = dropout.hidden(act(dense(h.reshape((h.shape[0], int(np.prod(h.type.shape[1:])))), fw, fb)))
    return dense(h, ow, ob)


def _act(config: dict):
    return activation(config["activation"], config["leaky_slope"])


MLP = Model(
    layout=lambda c, shape, k: mlp_layout(int(np.prod(shape)), c["width"], c["depth"], k, c["width2"]),
    forward=lambda params, x, c, dropout: mlp(params, x, _act(c), dropout),
    name="MLP", graph=("width", "depth", "width2", *GRAPH))
LENET = Model(
    layout=lambda c, shape, k: lenet_layout(shape, c["conv1_maps"], c["conv2_maps"], c["width"], k),
    forward=lambda params, x, c, dropout: lenet(params, x, _act(c), dropout),
    name="LeNet-5", graph=("width", "conv1_maps", "conv2_maps", *GRAPH))
BUILT_IN = {"mlp": MLP, "lenet": LENET}

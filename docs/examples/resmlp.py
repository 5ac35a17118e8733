"""A small residual MLP for sweeper: an example of a user's own model (docs/models.md)."""

import numpy as np

from storage.contract.params import Param
from workers.nn.layers import activation, dense
from workers.nn.model import Model, dense_params


def layout(config, image_shape, n_classes):
    """Input projection, `blocks` residual blocks of two dense layers each, output layer."""
    n_in, width = int(np.prod(image_shape)), config["width"]
    params = dense_params("proj", n_in, width)
    for i in range(config["blocks"]):
        params += dense_params(f"block{i}_a", width, width) + dense_params(f"block{i}_b", width, width)
    return params + dense_params("out", width, n_classes)


def forward(params, x, config, dropout):
    """h = act(proj x); each block h = h + scale * b(act(a(h))); logits = out(h)."""
    act = activation(config["activation"], config["leaky_slope"])
    h = dropout.input(x.reshape((x.shape[0], int(np.prod(x.type.shape[1:])))))
    h = act(dense(h, params[0], params[1]))
    for i in range(config["blocks"]):
        wa, ba, wb, bb = params[2 + 4 * i: 6 + 4 * i]
        h = h + config["residual_scale"] * dense(dropout.hidden(act(dense(h, wa, ba))), wb, bb)
        h = act(h)
    return dense(h, params[-2], params[-1])


def model():
    """The entry a study names: model = "resmlp:model"."""
    return Model(layout=layout, forward=forward, name="residual MLP", params=(
        Param("blocks", int, "residual blocks of two dense layers", low=0, high=16, default=2),
        Param("width", int, "units of every hidden layer", low=1, high=4096, default=64),
        Param("residual_scale", float, "what each block's output is multiplied by before it is added",
              low=0, high=1, default=1.0),
    ))

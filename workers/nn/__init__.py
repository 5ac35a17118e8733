"""PyTensor building blocks as plain functions: layers, models, update rules, penalties."""

from workers import runtime

runtime.ensure_configured()  # float32, backend and compile cache before anything imports pytensor

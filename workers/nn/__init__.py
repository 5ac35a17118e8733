"""PyTensor building blocks as plain functions: layers, models, updates, penalties (after runtime.configure())."""

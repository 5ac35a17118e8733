"""PyTensor building blocks as plain functions: layers, models, update rules, penalties (import after workers.runtime.configure())."""

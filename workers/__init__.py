"""sweeper, compute side: data, PyTensor networks, training loop, the worker. Never imports sweeper."""

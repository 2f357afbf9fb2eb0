"""Shared test settings."""

import pytest


@pytest.fixture(autouse=True)
def one_torch_thread():
    """The suite's tensors are tiny: one thread is as fast, and far faster when other processes share the
    cores (two OpenMP threads contending made the gait tests about 15x slower). Subprocesses are unaffected."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a requirement
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

"""Shared test set-up."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """One torch thread: on a shared 2-core machine, tiny tensors run 5-10x slower with two
    (thread contention), and results are then bitwise repeatable across machines."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)

"""Shared test set-up."""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import HealthCheck, settings

# Hypothesis profiles, loaded here (before the test modules build their `settings(...)`, which
# inherit from the loaded profile). "ci" (CI=true, as GitHub Actions and most CI services set)
# draws the same examples on every run, so a red build is reproducible and never flaky, and
# prints the failing example's reproduction blob; "dev" keeps random exploration locally.
# Both derive from Hypothesis's "default" explicitly: with CI set, recent Hypothesis versions
# load their own "ci" profile on import, which a profile registered without a parent inherits.
# Pick one explicitly with `pytest --hypothesis-profile=dev`.
settings.register_profile(
    "ci",
    parent=settings.get_profile("default"),
    derandomize=True,
    print_blob=True,
    database=None,  # derandomised: nothing to replay from a database
    deadline=None,  # shared CI machines stall; wall-clock limits only add flakiness
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", parent=settings.get_profile("default"), deadline=None)
settings.load_profile("ci" if os.environ.get("CI", "").lower() not in ("", "0", "false") else "dev")


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """One torch thread: on a shared 2-core machine, tiny tensors run 5-10x slower with two
    (thread contention), and results are then bitwise repeatable across machines."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(autouse=True, scope="session")
def _agg_backend():
    """Matplotlib's non-interactive Agg backend while the tests run (no windows, the same
    rendering everywhere), and the previous backend back afterwards: no test module calls
    ``matplotlib.use`` at import time, which would leak into everything collected after it."""
    import matplotlib
    import matplotlib.pyplot as plt

    previous = matplotlib.get_backend()
    plt.switch_backend("Agg")
    yield
    plt.close("all")
    plt.switch_backend(previous)


@pytest.fixture
def network_calls(monkeypatch):
    """Every outgoing connection a test attempts, refused and recorded: a test that claims
    "fails fast, without network" asserts this list stays empty (no timing asserts)."""
    import socket

    calls: list[object] = []

    def refuse(_sock, address, *args, **kwargs):
        calls.append(address)
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return calls

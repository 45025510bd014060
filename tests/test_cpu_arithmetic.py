"""The notebooks' pinned CPU arithmetic (tools/cpu_arithmetic.py): set where kernels start, and
honoured by torch, so stored outputs do not depend on the CPU's vendor."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import cpu_arithmetic  # noqa: E402
import run_notebooks  # noqa: E402

X86 = platform.machine().lower() in {"x86_64", "amd64"}


def _has_avx2() -> bool:
    try:
        return " avx2 " in Path("/proc/cpuinfo").read_text().replace("\n", " ")
    except OSError:
        return False


def test_pinned_on_x86_only():
    for machine in ("x86_64", "AMD64"):
        values = cpu_arithmetic.settings(machine)
        assert values.items() >= cpu_arithmetic.PINNED.items()
        assert Path(values["TORCHINDUCTOR_CACHE_DIR"]).name.endswith("_avx2")  # kernels apart
    assert cpu_arithmetic.settings("aarch64") == {}
    assert cpu_arithmetic.PINNED["ATEN_CPU_CAPABILITY"] == "avx2"


@pytest.mark.skipif(not (X86 and _has_avx2()), reason="needs an x86-64 CPU with AVX2")
def test_a_kernel_started_by_pytest_runs_torch_on_avx2():
    """nbval's kernels inherit this process's environment, which the root conftest pinned."""
    code = "import torch; print(torch.backends.cpu.get_cpu_capability())"
    out = subprocess.run([sys.executable, "-c", code], env=dict(os.environ), capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "AVX2"


@pytest.mark.skipif(not X86, reason="nothing is pinned off x86-64")
def test_run_notebooks_pins_before_any_kernel_starts(monkeypatch):
    for name in cpu_arithmetic.PINNED:
        monkeypatch.delenv(name, raising=False)
    seen = []
    monkeypatch.setattr(run_notebooks, "run", lambda path: seen.append(
        {k: os.environ.get(k) for k in cpu_arithmetic.PINNED}) or 0.0)
    assert run_notebooks.main([str(ROOT / "notebooks" / "x.ipynb")]) == 0  # run() is stubbed
    assert seen == [cpu_arithmetic.PINNED]

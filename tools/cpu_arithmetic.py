"""One instruction set for the notebooks' arithmetic, so that stored outputs reproduce across CPUs.

A float32 training run's last digits depend on which kernels did its sums. On x86, torch picks
them by CPU: ATen's own kernels (AVX-512 where the CPU has it), MKL's sgemm (AVX-512 on Intel,
AVX2 on AMD: MKL does not run its AVX-512 code on AMD CPUs) and oneDNN's convolutions. So a
notebook executed on an Intel machine printed other test errors than on an AMD EPYC after a few
hundred steps, and nbval failed there. Pinning all three to AVX2, which every x86-64 CPU of the
last decade has, takes the vendor out of the result:

- ``ATEN_CPU_CAPABILITY=avx2``: ATen's vectorised kernels (softmax, exp, reductions, ...);
- ``MKL_CBWR=AVX2``: MKL's conditional numerical reproducibility branch (matmuls);
- ``ONEDNN_MAX_CPU_ISA=AVX2``: oneDNN's kernels (convolutions).

They are read when torch loads, so they go into the environment of the process that starts the
kernels: ``tools/run_notebooks.py`` (which stores outputs), the root ``conftest.py`` (nbval and
the unit tests) and ``make lab``. On other machines (ARM) nothing is set. Cost on 2 cores: the
small CNN trains about 20% slower; everything else runs at the same speed.

``torch.compile`` gets its own kernel cache as well (``TORCHINDUCTOR_CACHE_DIR``): its cache key
misses ``ATEN_CPU_CAPABILITY``, and a kernel compiled under AVX-512 and loaded under the pinned
AVX2 crashed the process (a segmentation fault, torch 2.13 on an AMD EPYC).

    python tools/cpu_arithmetic.py   # prints NAME=value ... for `env` (empty off x86-64)
"""

from __future__ import annotations

import getpass
import os
import platform
import sys
import tempfile
from collections.abc import MutableMapping
from pathlib import Path

PINNED = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}


def settings(machine: str | None = None) -> dict[str, str]:
    """The variables to set on this machine (``platform.machine()``): :data:`PINNED` and a
    compile cache of its own on x86-64, nothing elsewhere."""
    machine = platform.machine() if machine is None else machine
    if machine.lower() not in {"x86_64", "amd64"}:
        return {}
    cache = Path(tempfile.gettempdir()) / f"torchinductor_{_user()}_{PINNED['ATEN_CPU_CAPABILITY']}"
    return PINNED | {"TORCHINDUCTOR_CACHE_DIR": str(cache)}


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        return str(os.getuid())


def pin(environ: MutableMapping[str, str] = os.environ) -> dict[str, str]:
    """Write :func:`settings` into ``environ`` (overriding what is there); returns them."""
    values = settings()
    environ.update(values)
    return values


if __name__ == "__main__":
    print(" ".join(f"{k}={v}" for k, v in settings().items()))
    sys.exit(0)

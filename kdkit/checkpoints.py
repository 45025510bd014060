"""What makes a long run resumable: every RNG's state, and files written atomically (a crash
mid-write leaves the previous file or none, never a partial one)."""

from __future__ import annotations

import json
import os
import random
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

import numpy as np
import torch

__all__ = [
    "rng_state",
    "set_rng_state",
    "atomic_write",
    "save_checkpoint",
    "load_checkpoint",
    "write_json",
]


def rng_state() -> dict:
    """Every random number generator a training run draws from: Python's, NumPy's, torch's
    CPU generator and each CUDA device's. Restore with :func:`set_rng_state`."""
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Put back the generators saved by :func:`rng_state`."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Write ``path`` atomically: ``write(f)`` fills a temporary file in the same directory,
    which is flushed, fsynced and then ``os.replace``d onto ``path`` (atomic on POSIX and
    Windows). On any error the temporary file is removed and ``path`` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_checkpoint(state: dict, path: str | Path) -> Path:
    """``torch.save(state, path)``, atomically (:func:`atomic_write`)."""
    return atomic_write(path, lambda f: torch.save(state, f))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint written by :func:`save_checkpoint` (our own files: full unpickling,
    since RNG states are NumPy objects; never load checkpoints from untrusted sources)."""
    return torch.load(Path(path), map_location=map_location, weights_only=False)


def write_json(obj: object, path: str | Path) -> Path:
    """``obj`` as indented JSON, atomically (:func:`atomic_write`)."""
    return atomic_write(path, lambda f: f.write(json.dumps(obj, indent=2).encode()))

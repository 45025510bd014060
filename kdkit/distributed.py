"""Several processes training one model: kdkit's own loop under ``torchrun`` (data parallelism).

In the style of nanoGPT's few lines of DDP: every process holds the whole model and reads its
share of each batch; once per optimiser step the gradients are summed over the processes, so
every process takes the same AdamW step and the weights stay identical. Two rules make the
result the single-process one, not an approximation of it:

- each *global* micro-batch (``batch_size × world_size`` examples, the batches one process
  with ``batch_size × world_size`` would see) is dealt out to the processes (:func:`share`),
  and the step's target-token count is summed over the processes before any loss is divided
  by it (:func:`all_reduce_sum`): the loss is the global per-token mean;
- gradients are summed once per optimiser step, after the last micro-batch
  (:func:`sum_gradients`) — what DDP's ``no_sync()`` on the non-final micro-batches does,
  without its overlap of communication and backward.

Generation (evaluation, the teacher's outputs for sequence-level KD) is dealt out the same way
and gathered back in input order (:func:`gather_shares`). Only rank 0 writes files. One
process is the default and the course's path: every function here is a no-op there.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from kdkit.jobs import exit_with_parent

__all__ = [
    "launched_by_torchrun",
    "init_from_env",
    "shutdown",
    "world",
    "is_main",
    "barrier",
    "all_reduce_sum",
    "sum_gradients",
    "broadcast_module",
    "share",
    "gather_shares",
    "gather_objects",
]

Item = TypeVar("Item")
_BUCKET = 1 << 24  # gradient elements per all-reduce: bounds the flat buffer (64 MiB in fp32)


def launched_by_torchrun() -> bool:
    """Whether this process is one of several that ``torchrun`` started (``WORLD_SIZE > 1``)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env(device: str = "auto") -> torch.device | None:
    """Join the process group ``torchrun`` describes in the environment (``RANK``,
    ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``); return this process's
    device, or None when torchrun did not start several processes (nothing to do).

    NCCL with GPU ``LOCAL_RANK`` when ``device`` is ``"auto"`` or ``"cuda"`` and CUDA is
    there; gloo on CPUs. The process exits as soon as its launcher is gone (killed): no rank
    is left behind waiting for peers that will never come.
    """
    if not launched_by_torchrun():
        return None
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but CUDA is not available; use device='cpu'.")
    cuda = device != "cpu" and torch.cuda.is_available()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    here = torch.device("cuda", local) if cuda else torch.device("cpu")
    if not dist.is_initialized():
        if cuda:
            torch.cuda.set_device(here)
        dist.init_process_group("nccl" if cuda else "gloo", device_id=here if cuda else None)
        exit_with_parent()
    return here


def shutdown() -> None:
    """Leave the process group (at the end of a run)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def world() -> tuple[int, int]:
    """``(rank, world_size)``: ``(0, 1)`` in a single process."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    """Whether this process writes files and logs (rank 0, or the only process)."""
    return world()[0] == 0


def barrier() -> None:
    """Wait for every process (after rank 0 wrote what the others read next)."""
    if world()[1] > 1:
        dist.barrier()


def _wire() -> torch.device:
    """Where collectives want their tensors: the GPU under NCCL, the CPU under gloo."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """``t`` summed over the processes (a new tensor on ``t``'s device; ``t`` when alone)."""
    if world()[1] == 1:
        return t
    buffer = t.detach().to(_wire(), copy=True)
    dist.all_reduce(buffer)
    return buffer.to(t.device)


def sum_gradients(params: Sequence[nn.Parameter]) -> None:
    """Replace each gradient by its sum over the processes, flattened into buckets of
    ``2**24`` elements (a few all-reduces per step, not one per tensor).

    A parameter whose gradient is None everywhere stays None (AdamW skips it, as in one
    process); one that has a gradient on some process only (another process's share of a
    short final batch was empty) gets zeros where it had none.
    """
    if world()[1] == 1:
        return
    present = torch.tensor([p.grad is not None for p in params], dtype=torch.int32)
    present = all_reduce_sum(present) > 0  # (n_params,)
    grads = []
    for p, anywhere in zip(params, present.tolist(), strict=True):
        if anywhere and p.grad is None:
            p.grad = torch.zeros_like(p)
        if anywhere:
            grads.append(p.grad)
    for bucket in _buckets(grads):
        flat = torch.cat([g.reshape(-1) for g in bucket])
        flat = all_reduce_sum(flat)
        for g, summed in zip(bucket, flat.split([g.numel() for g in bucket]), strict=True):
            g.copy_(summed.view_as(g))


def _buckets(grads: list[torch.Tensor]) -> list[list[torch.Tensor]]:
    """Consecutive gradients of one dtype, up to :data:`_BUCKET` elements per bucket."""
    buckets: list[list[torch.Tensor]] = []
    size = 0
    for g in grads:
        if not buckets or size + g.numel() > _BUCKET or g.dtype != buckets[-1][0].dtype:
            buckets.append([])
            size = 0
        buckets[-1].append(g)
        size += g.numel()
    return buckets


def broadcast_module(module: nn.Module | None) -> None:
    """Rank 0's parameters and buffers copied into every process's ``module`` (in place), as
    DDP does at construction: the processes start from identical weights."""
    if module is None or world()[1] == 1:
        return
    with torch.no_grad():
        for tensor in module.state_dict().values():
            buffer = tensor.to(_wire(), copy=True)
            dist.broadcast(buffer, src=0)
            tensor.copy_(buffer)


def share(items: Sequence[Item]) -> list[Item]:
    """This process's share of ``items``: every ``world_size``-th one, from its rank
    (``items[rank::world_size]``; empty when there are fewer items than processes)."""
    rank, size = world()
    return list(items[rank::size])


def gather_shares(mine: list[Item], total: int) -> list[Item]:
    """Every process's :func:`share` put back together in the original order (length
    ``total``), on every process."""
    rank, size = world()
    if size == 1:
        return list(mine)
    shares = gather_objects(mine)
    out: list[Any] = [None] * total
    for r, part in enumerate(shares):
        out[r::size] = part
    return out


def gather_objects(obj: Any) -> list[Any]:
    """``obj`` from every process, by rank (picklable objects: RNG states, lists of texts)."""
    size = world()[1]
    if size == 1:
        return [obj]
    objects: list[Any] = [None] * size
    dist.all_gather_object(objects, obj)
    return objects

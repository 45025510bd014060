"""Run under ``torchrun --nproc_per_node 2`` by tests/test_distributed.py: kdkit.distributed's
collectives on gloo, their results written by each rank to ``OUT/rank<r>.json``."""

import json
import sys
from pathlib import Path

import torch

from kdkit import distributed

out = Path(sys.argv[1])
distributed.init_from_env("cpu")
rank, size = distributed.world()
items = list(range(5))
mine = distributed.share(items)  # rank 0: 0, 2, 4; rank 1: 1, 3
one = distributed.share(["only"])  # rank 1's share is empty
weights = [torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(2)),
           torch.nn.Parameter(torch.zeros(1))]
weights[0].grad = torch.full((3,), float(rank + 1))
if rank == 0:  # the second parameter has a gradient on rank 0 only; the third nowhere
    weights[1].grad = torch.ones(2)
distributed.sum_gradients(weights)
module = torch.nn.Linear(2, 1)
torch.nn.init.constant_(module.weight, float(rank))
distributed.broadcast_module(module)
result = {
    "world": [rank, size],
    "mine": mine,
    "gathered": distributed.gather_shares([10 * i for i in mine], len(items)),
    "one": distributed.gather_shares([s.upper() for s in one], 1),
    "grads": [None if w.grad is None else w.grad.tolist() for w in weights],
    "summed": distributed.all_reduce_sum(torch.tensor([rank + 1.0])).tolist(),
    "broadcast": module.weight.flatten().tolist(),
}
(out / f"rank{rank}.json").write_text(json.dumps(result))
distributed.shutdown()

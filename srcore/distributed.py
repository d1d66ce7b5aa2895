"""Data-parallel training with PyTorch DDP under `torchrun`: one process per device, gloo on CPU, NCCL on CUDA.

`torchrun --nproc_per_node=N stages/pretrain.py ...` starts N copies of a stage and tells each its RANK,
WORLD_SIZE and LOCAL_RANK through the environment; with `--nnodes=M --rdzv-backend=c10d --rdzv-endpoint=HOST:PORT`
on each of M machines, the M x N processes form one job. A plain `python stages/pretrain.py ...` is world size
1, where nothing here does anything. The rules the training loops follow:
- every rank draws the same global batch for a step (a pure function of seed and step) and keeps its own
  contiguous slice of it (`Dist.part`), so N processes see exactly the samples one process would;
- DDP averages the gradients, which for a mean loss over equal slices is the gradient of the global batch;
- the loss values that are logged and checked for NaN are averaged over the ranks, so all ranks agree on
  them and stop together;
- one process per storage writes checkpoints, logs and the exported model (`elect_writers`): rank 0, and on a
  machine that has its own copy of the project (not the storage rank 0 writes to), its first process, so each
  machine's DVC finds the stage's outputs. All writers hold the same weights and log the same averaged numbers;
- to resume, each rank looks for the run's checkpoint where it runs, and all resume from the furthest one
  found, sent by the rank that has it (`shared_checkpoint`): a machine that lost its copy rejoins.
"""
from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.distributed as torch_dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class Dist:
    """This process's place in the job: rank in [0, world), local_rank = its device index on the node."""
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1  # processes of the job on this machine
    writes: bool = True  # this process writes checkpoints, logs and outputs (see elect_writers)

    @property
    def main(self) -> bool:
        """Rank 0, which always writes."""
        return self.rank == 0

    @property
    def part(self) -> tuple[int, int]:
        """(rank, world): which slice of every global batch this process trains on."""
        return self.rank, self.world


def init_distributed(device: str) -> tuple[str, Dist]:
    """Join the process group torchrun set up (a no-op for a plain `python` launch).

    device: the `runtime.device` param. Returns the device this rank computes on (cuda:LOCAL_RANK when
    `device` is CUDA, else `device`) and its Dist.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return device, Dist()
    rank = int(os.environ["RANK"])
    dist = Dist(rank=rank, world=world, local_rank=int(os.environ["LOCAL_RANK"]),
                local_world=int(os.environ.get("LOCAL_WORLD_SIZE", "1")), writes=rank == 0)
    if torch.device(device).type == "cuda":
        device = f"cuda:{dist.local_rank}"
        torch.cuda.set_device(device)
        torch_dist.init_process_group("nccl")
    else:
        torch_dist.init_process_group("gloo")
    return device, dist


def elect_writers(dist: Dist, folder: Path) -> Dist:
    """`dist` with `writes` set: rank 0, and the first process (local rank 0) of each machine that does not see
    the files of a lower-ranked writer in `folder` (its storage is its own). A collective: every rank calls it.

    Each first process creates a token file named by a fresh id, then checks for the lower ranks' tokens.
    The names were never looked up before, so no client caches them: on a network file system shared by
    the machines the check asks the server, and machines that share storage elect one writer."""
    if dist.world == 1:
        return dist
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ids: list[Any] = [uuid.uuid4().hex]
    torch_dist.broadcast_object_list(ids, src=0)
    firsts: list[Any] = [None] * dist.world
    torch_dist.all_gather_object(firsts, dist.local_rank == 0)
    def token(rank: int) -> Path:
        return folder / f".writer-{ids[0]}-{rank}"
    if firsts[dist.rank]:
        token(dist.rank).touch()
    torch_dist.barrier()
    writes = firsts[dist.rank] and not any(firsts[r] and token(r).exists() for r in range(dist.rank))
    torch_dist.barrier()
    if firsts[dist.rank]:
        token(dist.rank).unlink()
    return replace(dist, writes=bool(writes))


def shared_checkpoint(local: dict[str, Any] | None, dist: Dist) -> dict[str, Any] | None:
    """The checkpoint every rank resumes from: the one with the most steps that any rank found (`local` is this
    rank's, or None), sent from the lowest rank that holds it when some rank lacks it. A collective."""
    if dist.world == 1:
        return local
    steps: list[Any] = [None] * dist.world
    torch_dist.all_gather_object(steps, None if local is None else local["step"])
    found = [step for step in steps if step is not None]
    if not found:
        return None
    if all(step == max(found) for step in steps):
        return local
    box = [local]
    torch_dist.broadcast_object_list(box, src=steps.index(max(found)))
    return box[0]


def finish_distributed(dist: Dist) -> None:
    """Leave the process group once every rank is done (rank 0 may still be writing its outputs)."""
    if dist.world > 1:
        torch_dist.barrier()
        torch_dist.destroy_process_group()


def check_batch_size(batch_size: int, dist: Dist, where: str) -> None:
    if batch_size % dist.world:
        raise ValueError(f"{where}.batch_size {batch_size} is the global batch; it must split evenly over the "
                         f"{dist.world} processes (a multiple of {dist.world})")


def wrap(model: nn.Module, dist: Dist, unused_parameters: bool = False) -> nn.Module:
    """`model` in DDP when there are several processes (its gradients are averaged over ranks), else itself.
    The EMA, checkpoints and exports keep using the plain `model`, whose parameters DDP shares.

    unused_parameters: some steps leave some parameters without a gradient (MDSR's other scales' heads);
    DDP must then look for them every step, or it stops at the next step waiting for their gradients."""
    if dist.world == 1:
        return model
    device = next(model.parameters()).device
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                   find_unused_parameters=unused_parameters)


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside a DDP wrapper (for a forward whose parameter gradients are not wanted)."""
    return model.module if isinstance(model, DistributedDataParallel) else model


def mean_over_ranks(values: dict[str, float], dist: Dist, device: str) -> dict[str, float]:
    """Each value averaged over all ranks (a collective: every rank must call it at the same step)."""
    if dist.world == 1:
        return values
    # NCCL reduces CUDA tensors only; gloo takes CPU ones.
    device = device if torch.device(device).type == "cuda" else "cpu"
    stacked = torch.tensor(list(values.values()), dtype=torch.float64, device=device)
    torch_dist.all_reduce(stacked)
    return dict(zip(values, (stacked / dist.world).tolist()))

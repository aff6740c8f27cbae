"""torchrun environment -> process group, rank-0 helpers and barriers.

``torchrun --nproc_per_node N -m sr_train.cli --config x4.yaml`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR`` and ``MASTER_PORT``; :func:`init_distributed` reads them and starts NCCL on CUDA devices or gloo on
the CPU. Without those variables everything is a single process and every helper is a no-op.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job."""

    rank: int = 0
    """Global rank."""
    world_size: int = 1
    """Number of processes."""
    local_rank: int = 0
    """Rank on this machine (selects the CUDA device)."""
    backend: str = ""
    """``nccl``, ``gloo`` or ``""`` for a single process."""

    @property
    def is_main(self) -> bool:
        """True on rank 0, the only rank that logs and writes files."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        """True when a process group is running."""
        return self.world_size > 1


def env_dist() -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)`` from the torchrun environment (0, 1, 0 when absent)."""
    return (int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0)))


def select_device(pref: str, local_rank: int = 0) -> torch.device:
    """Resolve ``auto``/``cpu``/``cuda``/``cuda:N``; under torchrun ``auto`` and ``cuda`` pick ``cuda:LOCAL_RANK``.

    Raises:
        ConfigError: CUDA requested but not available.
    """
    from sr_train.errors import ConfigError

    if pref == "cpu":
        return torch.device("cpu")
    if pref == "auto" and not torch.cuda.is_available():
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigError(f"train.device is '{pref}' but no CUDA device is available", "Use train.device=auto or cpu.")
    if pref in ("auto", "cuda"):
        return torch.device("cuda", local_rank % max(torch.cuda.device_count(), 1))
    return torch.device(pref)


def init_distributed(device: torch.device) -> DistInfo:
    """Start the process group when launched by torchrun (NCCL for CUDA, gloo for the CPU)."""
    rank, world, local = env_dist()
    if world <= 1:
        return DistInfo()
    import torch.distributed as dist

    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
    return DistInfo(rank, world, local, backend)


def barrier(info: DistInfo) -> None:
    """Wait for every rank (no-op for a single process)."""
    if info.enabled:
        import torch.distributed as dist

        dist.barrier()


def broadcast_object(info: DistInfo, obj: object) -> object:
    """Rank 0's ``obj`` on every rank."""
    if not info.enabled:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_reduce_mean(info: DistInfo, values: dict[str, float]) -> dict[str, float]:
    """Average scalar metrics over ranks (for logging)."""
    if not info.enabled or not values:
        return values
    import torch.distributed as dist

    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
    if info.backend == "nccl":  # NCCL reduces device tensors only
        t = t.to(torch.device("cuda", torch.cuda.current_device()))
    dist.all_reduce(t)
    t = (t / info.world_size).cpu()
    return {k: float(v) for k, v in zip(keys, t.tolist())}


def cleanup(info: DistInfo) -> None:
    """Destroy the process group."""
    if info.enabled:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def wrap_ddp(module: torch.nn.Module, info: DistInfo, device: torch.device) -> torch.nn.Module:
    """Wrap in DistributedDataParallel when distributed, else return ``module`` unchanged."""
    if not info.enabled or not any(p.requires_grad for p in module.parameters()):
        return module
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids)


def unwrap(module: torch.nn.Module) -> torch.nn.Module:
    """The module inside a DDP wrapper (or the module itself)."""
    return getattr(module, "module", module)

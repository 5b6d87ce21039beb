"""Data-parallel training with torchrun: rank-sharded store batches, DDP, one writer.

`cn train --nproc N` (or `torchrun --nproc-per-node N -m cineneuron.train ...`) starts N ranks.
Every rank builds the same global batches from the store (same shuffle seed), drops the ragged
tail and trains on its own contiguous 1/N slice of each; DistributedDataParallel averages the
gradients in backward, so a step equals one process averaging the N slices' losses over the same
global batch. Only rank 0 validates, writes checkpoints and writes to the catalog.

Seeds: model initialisation and batch shuffling use `train.seed` on every rank (DDP also
broadcasts rank 0's weights at start); dropout draws from `train.seed + rank`, so ranks do not
share masks. In-batch InfoNCE negatives are the rank's own slice (global batch / N); the
router's InfoNCE is over the full training pool on every rank. The Wan stage 2's flow-matching
noise and timesteps draw from `train.seed + rank` (train/stage2_wan.py), and rank 0 alone fills
its VAE latent cache while the others wait (`agree`).
Backends: NCCL on GPU (one GPU per rank, `cuda:LOCAL_RANK`), gloo on CPU.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from cineneuron.errors import CNError


@dataclass(frozen=True)
class Rank:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def from_env() -> Rank:
    """This process's place in a torchrun job (a single process when not launched by torchrun)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return Rank(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))


def init(device: str = "auto") -> Rank:
    """Join the process group when launched by torchrun; returns this rank. Idempotent."""
    import torch
    import torch.distributed as dist

    r = from_env()
    if not r.active or dist.is_initialized():
        return r
    use_cuda = torch.cuda.is_available() and device != "cpu"
    if use_cuda:
        torch.cuda.set_device(r.local_rank)
    dist.init_process_group("nccl" if use_cuda else "gloo")
    return r


def device_for(r: Rank, device: str) -> str:
    """One GPU per rank: 'auto'/'cuda' become cuda:LOCAL_RANK under torchrun."""
    import torch

    if r.active and device in ("auto", "cuda") and torch.cuda.is_available():
        return f"cuda:{r.local_rank}"
    return device


def shutdown() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def agree(r: Rank, ok: bool) -> bool:
    """A barrier that also tells every rank whether all of them got here with ok=True (all_reduce MIN)."""
    if not r.active:
        return ok
    import torch
    import torch.distributed as dist

    dev = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    flag = torch.tensor([1 if ok else 0], dtype=torch.int32, device=dev)
    dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return bool(flag.item())


def shard_batch(batch: dict, r: Rank) -> dict:
    """Rank r's contiguous slice of a global batch (tensors and lists alike; scalars shared)."""
    n = len(batch["clip_id"])
    per = n // r.world
    lo, hi = r.rank * per, (r.rank + 1) * per
    return {k: (v[lo:hi] if hasattr(v, "__getitem__") and not isinstance(v, str) and len(v) == n else v)
            for k, v in batch.items()}


class RankBatches:
    """Wraps a `batches(epoch)` source: only full global batches, each cut to this rank's slice.

    Every rank gets the same number of equal-length batches, so none waits at an all-reduce.
    """

    def __init__(self, batches: Callable[[int], Iterable[dict]], r: Rank, global_batch: int):
        if global_batch % r.world:
            raise CNError(f"train.batch_size {global_batch} must be a multiple of the {r.world} ranks")
        if global_batch // r.world < 2:
            raise CNError(f"train.batch_size {global_batch} gives each of {r.world} ranks fewer than 2 samples; InfoNCE needs negatives")
        self.batches, self.r, self.global_batch = batches, r, global_batch

    def n_batches(self, n_samples: int) -> int:
        return n_samples // self.global_batch

    def __call__(self, epoch: int) -> Iterator[dict]:
        for b in self.batches(epoch):
            if len(b["clip_id"]) == self.global_batch:  # the ragged tail is dropped
                yield shard_batch(b, self.r)


def wrap_trainer(trainer, r: Rank, subject: str | None = None) -> None:
    """Put DistributedDataParallel around the trainer's stage-1 objective; per-rank dropout seeds.

    The objective (train/objective.py) computes the whole loss in its forward, the frame pool
    included, so DDP sees every trained parameter. Parameters stage 1 cannot reach (F's
    projection, switched-off heads, other subjects) stay frozen until `unwrap_trainer`.
    """
    if not r.active:
        return
    from cineneuron.train import objective as ob

    subject = subject if subject is not None else next(iter(trainer.model.cfg.subjects))
    trainer._unfreeze = ob.freeze(ob.stage1_unused(trainer.model, subject, trainer.weights))
    trainer.objective = ob.ddp(trainer.objective, trainer.device)
    # Dropout masks differ per rank (seed + rank); the init and data order do not.
    trainer._rng_cpu, trainer._rng_cuda = trainer._seeded_rng(trainer.cfg.seed + r.rank)


def unwrap_trainer(trainer) -> None:
    """After training: the frozen parameters get back their requires_grad."""
    undo = getattr(trainer, "_unfreeze", None)
    if undo is not None:
        undo()
        trainer._unfreeze = None


# --- launching ------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(nproc: int, train_args: list[str]) -> int:
    """`cn train --nproc N`: run `python -m cineneuron.train ARGS` under torchrun on this machine."""
    if nproc < 2:
        raise CNError("--nproc must be at least 2 (without it training runs in this process)")
    env = dict(os.environ)
    env.setdefault("GLOO_SOCKET_IFNAME", "lo")  # one machine: keep gloo on the loopback
    env.setdefault("OMP_NUM_THREADS", "1")  # N ranks share the cores
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", str(nproc),
           "--master-addr", "127.0.0.1", "--master-port", str(free_port()), "-m", "cineneuron.train", *train_args]
    return subprocess.run(cmd, env=env).returncode

"""Training over several processes: torch's elastic launcher (torchrun) starts them, DDP syncs them.

The launcher side is the ``torch.distributed.run`` command line the train stage runs under: a c10d
rendezvous on 127.0.0.1 with a free port on one machine, or on the endpoint several machines
name. The rank side joins the process group torchrun describes in the environment: one rank, one
device (``cuda:LOCAL_RANK`` with NCCL; the CPU with gloo, where N ranks are N processes).
"""

from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
import sys
from dataclasses import dataclass

LOOPBACK = "127.0.0.1"
# torchrun sets these for every rank it starts; without them a process is a job of one.
TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 just now (the rendezvous binds it a moment later)."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Launch:
    """How many processes train, on how many machines (``smallcomp run --gpus/--nnodes``)."""

    nproc: int = 1  # processes per machine, one device each; on CPU, gloo ranks
    nnodes: int = 1
    node_rank: int = 0  # node 0 hosts the rendezvous (at ``rdzv_endpoint``)
    rdzv_endpoint: str | None = None  # HOST:PORT; default 127.0.0.1 and a free port

    def __post_init__(self) -> None:
        if self.nproc < 1 or self.nnodes < 1 or not 0 <= self.node_rank < self.nnodes:
            raise ValueError(
                f"launch: need nproc >= 1, nnodes >= 1 and 0 <= node_rank < nnodes "
                f"(got {self.nproc}, {self.nnodes}, {self.node_rank})"
            )
        if self.nnodes > 1 and not self.rdzv_endpoint:
            raise ValueError(
                f"--nnodes {self.nnodes} needs --rdzv-endpoint HOST:PORT (node 0's address, "
                "the same on every machine)"
            )

    @property
    def world_size(self) -> int:
        return self.nproc * self.nnodes

    @property
    def distributed(self) -> bool:
        """Whether training needs torchrun; a job of one trains in the calling process."""
        return self.world_size > 1

    def command(self, module: str, args: list[str], run_id: str) -> list[str]:
        """The torchrun command line that runs ``python -m module args`` on every rank."""
        endpoint = self.rdzv_endpoint or f"{LOOPBACK}:{free_port()}"
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            f"--nnodes={self.nnodes}",
            f"--nproc-per-node={self.nproc}",
            "--rdzv-backend=c10d",
            f"--rdzv-endpoint={endpoint}",
            f"--rdzv-id={run_id}",
            "--max-restarts=0",  # a dead rank ends the job; rerunning resumes its checkpoint
        ]
        if self.nnodes > 1:  # the hosting node is named, not guessed from hostnames
            cmd.append(f"--rdzv-conf=is_host={int(self.node_rank == 0)}")
        if is_loopback(endpoint.rsplit(":", 1)[0]):
            cmd.append(f"--local-addr={LOOPBACK}")
        return [*cmd, "-m", module, *args]

    def env(self) -> dict[str, str]:
        """The ranks' environment: the cores shared out among this machine's ranks, and, on one
        machine, the collectives kept on the loopback interface."""
        env = dict(os.environ)
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // self.nproc)))
        host = (self.rdzv_endpoint or LOOPBACK).rsplit(":", 1)[0]
        if is_loopback(host) and "lo" in {name for _, name in socket.if_nameindex()}:
            env.setdefault("GLOO_SOCKET_IFNAME", "lo")
            env.setdefault("NCCL_SOCKET_IFNAME", "lo")
        return env

    def run(self, module: str, args: list[str], run_id: str) -> int:
        """Run the job to its end (the ranks' output goes to this process's); torchrun's exit
        status."""
        return subprocess.run(self.command(module, args, run_id), env=self.env()).returncode


@dataclass(frozen=True)
class Rank:
    """This process's place in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: str = "cpu"
    joined: bool = False  # a process group is up (under torchrun, even a job of one)

    @property
    def writer(self) -> bool:
        """The first rank on each machine writes checkpoints and the model: on one machine that
        is rank 0 alone; machines with their own run stores each get the same files."""
        return self.local_rank == 0


def join(device: str) -> Rank:
    """Under torchrun, join its process group on this rank's device; otherwise a job of one."""
    if not all(k in os.environ for k in TORCHRUN_ENV):
        return Rank(device=device)
    import torch
    import torch.distributed as dist

    rank, world, local = (int(os.environ[k]) for k in TORCHRUN_ENV)
    kind = device.split(":")[0]
    if kind == "cuda":
        device, backend = f"cuda:{local}", "nccl"
        torch.cuda.set_device(local)
    elif kind == "cpu":
        backend = "gloo"
    else:
        raise ValueError(f"device {device!r}: ranks train on cuda (NCCL) or cpu (gloo)")
    dist.init_process_group(backend, device_id=torch.device(device) if kind == "cuda" else None)
    return Rank(rank, world, local, device, joined=True)


def leave(rank: Rank) -> None:
    if rank.joined:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()

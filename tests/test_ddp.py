"""DistributedDataParallel through `fit`: two CPU processes (gloo) on the halves A and B of a global batch
make exactly the update of one process on A ∪ B, even though A and B hold different numbers of answers
(the loss is the sum over answer words divided by the global count, which the processes all-reduce)."""

from __future__ import annotations

import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from babi_dnc.babi_task import answer_loss
from babi_dnc.checkpoint import load_checkpoint
from babi_dnc.models import build_model, preset
from babi_dnc.train import DistEnv, Task, close_distributed, fit, init_distributed

from .conftest import quiet_config

V = 6


def global_batch() -> dict[str, torch.Tensor]:
    """Four stories; rows 0-1 (process 0) have 1 answer each, rows 2-3 (process 1) have 4 each."""
    g = torch.Generator().manual_seed(11)
    ids = torch.randint(0, V, (4, 8), generator=g)
    mask = torch.ones(4, 8, dtype=torch.bool)
    mask[1, 6:] = False
    mask[3, 5:] = False
    targets = torch.full((4, 8), -100)
    targets[0, 7] = 1
    targets[1, 5] = 2
    targets[2, [1, 3, 5, 7]] = torch.tensor([0, 1, 2, 3])
    targets[3, [1, 2, 3, 4]] = torch.tensor([4, 5, 0, 1])
    return {"ids": ids, "mask": mask, "targets": targets}


class FixedTask(Task):
    unit = "stories"

    def next_batch(self, step):
        return global_batch()

    def loss(self, model, batch):
        logits, _ = model(batch["ids"], mask=batch["mask"])
        return answer_loss(logits, batch["targets"])

    def evaluate(self, model):
        return {"error": 0.0}

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


def train_one_step(run_dir):
    torch.manual_seed(0)
    model = build_model(preset("tiny"), V)
    config = quiet_config(optimizer="sgd", lr=1.0, momentum=0.0, max_steps=1, eval_every=0)
    fit(model, FixedTask(), config, run_dir, {"kind": "test"})
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def worker(rank: int, world: int, port: int, tmp: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        weights = train_one_step(f"{tmp}/ddp")
        torch.save(weights, f"{tmp}/rank{rank}.pt")
        close_distributed(DistEnv(rank, world, owned=True))  # the processes meet, then leave the group
    finally:
        if dist.is_initialized():  # an error before the meeting
            dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs gloo")
def test_two_processes_average_gradients_like_one_process_on_the_union(tmp_path):
    mp.spawn(worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    torch.manual_seed(0)
    initial = build_model(preset("tiny"), V).state_dict()
    single = train_one_step(tmp_path / "single")
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    saved = load_checkpoint(tmp_path / "ddp", "latest").weights  # written by process 0 only

    assert any(not torch.equal(single[k], initial[k]) for k in single)  # the step did something
    for k in single:
        torch.testing.assert_close(ranks[0][k], single[k], atol=1e-6, rtol=0)
        torch.testing.assert_close(ranks[1][k], ranks[0][k], atol=0, rtol=0)
        torch.testing.assert_close(saved[k], ranks[0][k], atol=0, rtol=0)

    # The token weighting matters here: the mean of the two halves' mean losses gives another update.
    torch.manual_seed(0)
    model = build_model(preset("tiny"), V)
    batch = global_batch()
    halves = [{k: v[i : i + 2] for k, v in batch.items()} for i in (0, 2)]
    loss = sum(answer_loss(model(h["ids"], mask=h["mask"])[0], h["targets"])[0] for h in halves) / 2
    loss.backward()
    with torch.no_grad():
        naive = {n: p - p.grad for n, p in model.named_parameters()}
    assert any((naive[n] - single[n]).abs().max() > 1e-4 for n in naive)


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs gloo")
def test_close_distributed_destroys_only_the_group_init_distributed_created():
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1)
    try:
        borrowed = init_distributed("cpu")  # a group the caller made is used as is...
        assert not borrowed.owned
        close_distributed(borrowed)
        assert dist.is_initialized()  # ...and left to the caller
        close_distributed(DistEnv(owned=True))
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()

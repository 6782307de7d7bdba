"""The learning-rate schedule and InfoNCE with negatives gathered across DDP processes."""

from __future__ import annotations

import math
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from mixrep.training.contrastive import ContrastiveStyleModule
from mixrep.training.losses import info_nce
from mixrep.training.schedules import warmup_cosine


def test_warmup_rises_linearly_then_cosine_decays_to_the_floor():
    warmup, total, floor = 10, 110, 0.05
    values = [warmup_cosine(step, warmup, total, floor) for step in range(total + 20)]
    assert values[:warmup] == pytest.approx([(s + 1) / warmup for s in range(warmup)])
    assert values[warmup] == pytest.approx(1.0)  # cosine starts at the peak
    assert values[warmup + 50] == pytest.approx(floor + (1 - floor) * 0.5)  # halfway: mid value
    assert values[warmup + 25] == pytest.approx(floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi / 4)))
    assert values[total] == pytest.approx(floor) and values[-1] == pytest.approx(floor)  # stays at the floor
    decay = values[warmup:]
    assert all(a >= b for a, b in zip(decay, decay[1:]))


def test_the_optimizer_follows_the_schedule():
    module = ContrastiveStyleModule(n_mels=32, channels=(4, 8), embedding_dim=8, band_size=8, band_overlap=4,
                                    lr=1e-3, warmup_steps=5, min_lr_ratio=0.1)
    module.trainer = type("Trainer", (), {"estimated_stepping_batches": 60})()
    config = module.configure_optimizers()
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
    seen = []
    for _ in range(60):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert seen == pytest.approx([1e-3 * warmup_cosine(s, 5, 60, 0.1) for s in range(60)])


def _embeddings(module: ContrastiveStyleModule, rows: slice) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(0)
    mel = torch.randn(3, 8, 8, 32, 16, generator=generator)  # (sides, batch 8, channels, mels, frames)
    features = torch.randn(3, 8, module.encoder_config.num_features, generator=generator)
    return tuple(module.encoder(mel[side, rows], features[side, rows]) for side in range(3))


def _tiny_module() -> ContrastiveStyleModule:
    torch.manual_seed(0)
    module = ContrastiveStyleModule(n_mels=32, channels=(4, 8), embedding_dim=8, band_size=8, band_overlap=4)
    return module.eval()  # eval: BatchNorm and dropout treat items independently of the batch split


class _GatherStrategy:
    """What DDP gives LightningModule.all_gather: torch's differentiable all_gather."""

    def all_gather(self, tensor, group=None, sync_grads=False):
        assert sync_grads, "negatives must be gathered with gradients"
        return torch.stack(torch.distributed.nn.functional.all_gather(tensor))


def _ddp_worker(rank: int, world_size: int, port: int, results) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        module = _tiny_module()
        module.trainer = type("Trainer", (), {"world_size": world_size, "strategy": _GatherStrategy()})()
        local = _embeddings(module, slice(4 * rank, 4 * rank + 4))  # this process's half of the batch
        loss = info_nce(*module._gather(*local), temperature=0.1).loss
        loss.backward()
        grads = [p.grad.clone() for p in module.parameters() if p.grad is not None]
        for grad in grads:  # what DDP does with the gradients: average them
            dist.all_reduce(grad)
            grad /= world_size
        results[rank] = (loss.item(), [g.numpy() for g in grads])
    finally:
        dist.destroy_process_group()


def test_ddp_gathered_negatives_give_the_loss_and_gradients_of_one_process_with_the_whole_batch():
    whole = _tiny_module()
    loss = info_nce(*_embeddings(whole, slice(0, 8)), temperature=0.1).loss
    loss.backward()
    expected = [p.grad for p in whole.parameters() if p.grad is not None]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(_ddp_worker, args=(2, port, results), nprocs=2, join=True)
        results = dict(results)
    for rank in (0, 1):
        rank_loss, grads = results[rank]
        assert rank_loss == pytest.approx(loss.item(), rel=1e-6)
        assert len(grads) == len(expected)
        for grad, reference in zip(grads, expected):
            torch.testing.assert_close(torch.from_numpy(grad), reference, rtol=1e-4, atol=1e-6)
    # Without gathering, each process would see only its half: a different (smaller-batch) loss.
    half = info_nce(*_embeddings(_tiny_module(), slice(0, 4)), temperature=0.1).loss
    assert abs(half.item() - loss.item()) > 1e-3

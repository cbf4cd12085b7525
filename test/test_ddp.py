"""Two CPU processes (gloo) train one short epoch with DistributedDataParallel.

After the run both ranks must hold identical weights: gradients are averaged
across ranks every step and the backbone unfreezes on both at the same epoch.
"""
import os
import socket
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

HERE = os.path.dirname(os.path.abspath(__file__))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out_dir: str, freeze: bool) -> None:
    sys.path.insert(0, HERE)
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    from toy_training import ToyPairs, toy_config
    from siam_tracker_ros.train.loop import train

    cfg = toy_config(epochs=2 if freeze else 1, batch_size=2,
                     freeze={"enabled": freeze, "freeze_fraction": 0.5})
    tr = train(cfg, out_dir=out_dir, dataset=ToyPairs(8), device="cpu", rank=rank, world_size=world,
               progress=False, log=lambda m: None)
    torch.save({"state": tr.model.state_dict(), "history": tr.history, "steps": tr.history[-1]["steps"]
                if tr.history else None}, os.path.join(out_dir, f"rank{rank}.pt"))


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed not available in this build")
def test_two_process_gloo_run_keeps_ranks_identical(tmp_path, freeze=True):
    port = _free_port()
    mp.spawn(_worker, args=(2, port, str(tmp_path), freeze), nprocs=2, join=True)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    for k, v in r0["state"].items():
        assert torch.equal(v, r1["state"][k]), k
    # each rank ran its half of the 8 pairs: 4 pairs / batch 2 = 2 steps per epoch;
    # epoch 1 with the backbone frozen, epoch 2 with it trained (DDP rebuilt)
    assert r0["history"][-1]["steps"] == 2
    assert [r["frozen"] for r in r0["history"]] == [1, 0]
    # rank 0 alone writes the checkpoints and the log
    assert (tmp_path / "last.pt").is_file() and (tmp_path / "log.csv").is_file()
    saved = torch.load(tmp_path / "last.pt", weights_only=True)["state_dict"]
    for k, v in r0["state"].items():
        assert torch.equal(saved[k], v), k

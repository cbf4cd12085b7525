"""The generic trainer behind `siam-train`: one loop for every model of the project.

What is generic lives here: data loading (EpochSampler shards, uint8 transfer),
the schedule (warm-up, log decay, backbone freezing), the optimiser, gradient
clipping, skipped non-finite steps, DDP, checkpoints, the CSV/TensorBoard log,
validation (validation.py), time budgets and --resume. What one step does is
the actor's (actors.py, chosen by `train.actor`); the loss is the registry's
(losses.py, `train.loss.type`); the config format is described in config.py,
the distributed plumbing in distributed.py.

Other train keys: samples_per_epoch (default: len(dataset)), time_budget_s (the
first epoch measures the pair rate, later epochs are sized so the run ends in
time; the schedule keeps its shape in epochs), amp (bf16 autocast on CUDA),
grad_clip, checkpoint_every, num_workers, uint8_images ("auto": crops travel
from the loader workers as uint8 when workers > 0), sync_bn, find_unused_parameters
(DDP; default: the actor's), deterministic, tensorboard, device.

What one run writes into --out (default work_dirs/NAME):
    last.pt / epoch_NNN.pt / best.pt   project checkpoints (core/checkpoints): the
                                       model config travels inside, so
                                       build_tracker("last.pt") rebuilds the tracker
    last.state.pt                      optimiser, epoch, RNG states: --resume
    log.csv                            one row per epoch (+ TensorBoard if installed)
    train_config.yaml                  the config as run
"""
from __future__ import annotations

import copy
import csv
import math
import os
import random
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import torch
import yaml
from torch import nn

from ..core.checkpoints import save_checkpoint
from ..core.models import registry
from . import distributed as D
from . import schedule as S
from .actors import actor_name, build_actor
from .config import build_pair_dataset, checkpoint_model_config, init_weights, resolve_model_config
from .losses import build_criterion
from .validation import resolve_sequences_root, validate

IMAGE_KEYS = ("template", "search", "search_appearance")


class Uint8Images(torch.utils.data.Dataset):
    """Hands the crops from the loader workers as uint8 (they are 0..255 integers):
    4x less shared memory and host->device traffic; the trainer turns them back
    into float on the device."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def __getitem__(self, index: int):
        item = dict(self.dataset[index])
        for k in IMAGE_KEYS:
            v = item.get(k)
            if torch.is_tensor(v) and v.is_floating_point():
                item[k] = v.round().clamp_(0, 255).to(torch.uint8)
        return item


def _worker_init(worker_id: int) -> None:
    seed = torch.initial_seed() % (2 ** 32)
    np.random.seed(seed)
    random.seed(seed)
    try:
        import cv2
        cv2.setNumThreads(1)
    except ImportError:  # pragma: no cover
        pass


class Trainer:
    """One training run: build everything from the config, then fit()."""

    def __init__(self, config: Dict[str, Any], out_dir: Optional[str] = None, resume: Optional[str] = None,
                 dataset=None, device: Optional[str] = None, rank: Optional[int] = None,
                 world_size: Optional[int] = None, progress: bool = True, log: Callable[[str], None] = print):
        self.cfg = copy.deepcopy(config)
        self.tcfg: Dict[str, Any] = dict(self.cfg.get("train", {}))
        env_rank, env_world, local = D.dist_env()
        self.rank = env_rank if rank is None else rank
        self.world = env_world if world_size is None else world_size
        self.local_rank = local if rank is None else rank
        self.is_main = self.rank == 0
        self._log = log
        self.progress = progress
        self.out_dir = out_dir or self.cfg.get("out") or os.path.join("work_dirs", self.cfg.get("name", "run"))
        self.seed = int(self.cfg.get("seed", self.tcfg.get("seed", 0)))

        dev = device or self.tcfg.get("device", "auto")
        if dev in (None, "auto"):
            dev = "cuda" if torch.cuda.is_available() else "cpu"
        if str(dev).startswith("cuda") and self.world > 1:
            dev = f"cuda:{self.local_rank}"
        self.device = torch.device(dev)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        self.distributed = self.world > 1
        if self.distributed:
            D.init_process_group(self.device, self.rank, self.world, self.tcfg.get("backend"))
        D.seed_everything(self.seed + self.rank)
        if self.tcfg.get("deterministic", False):
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
        elif self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True     # fixed crop sizes: let cuDNN pick

        self.model_cfg = resolve_model_config(self.cfg["model"])
        self.model = registry.build_model(self.model_cfg["model"])
        self.init_summary = init_weights(self.model, self.model_cfg, self.cfg.get("init"), self.log)
        if self.distributed and self.tcfg.get("sync_bn", False):
            self.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        self.model.to(self.device)

        data_cfg = self.cfg.get("data", {})
        self.dataset = dataset if dataset is not None else build_pair_dataset(data_cfg, self.seed)
        self.epochs = int(self.tcfg.get("epochs", 20))
        opt_cfg = dict(self.tcfg.get("optimizer", {}))
        self.schedule = S.LRSchedule.from_config(opt_cfg, self.epochs)
        self.freeze_cfg = dict(self.tcfg.get("freeze", {}))
        self.backbone_name = self.freeze_cfg.get("backbone_name", "backbone")
        self.freeze_epochs = S.freeze_epochs(self.freeze_cfg, self.epochs) \
            if self.freeze_cfg.get("enabled", True) and hasattr(self.model, self.backbone_name) else 0
        self.optimizer = S.build_optimizer(self.model, opt_cfg, self.backbone_name)
        loss_cfg = dict(self.tcfg.get("loss", {"type": "logistic"}))
        for key, names in (("stride", ("anchor_stride", "stride", "total_stride")),
                           ("anchor_ratios", ("anchor_ratios",)), ("anchor_scales", ("anchor_scales",))):
            if key not in loss_cfg:
                for n in names:
                    if n in self.model_cfg.get("tracker", {}):
                        loss_cfg[key] = self.model_cfg["tracker"][n]
                        break
        self.criterion = build_criterion(loss_cfg, self.model)
        self.grad_clip = self.tcfg.get("grad_clip", 10.0)
        self.amp = self.tcfg.get("amp", False) and self.device.type == "cuda"
        self.actor_name = actor_name(self.cfg)
        self.actor = build_actor(self.actor_name, self.model, self.criterion,
                                 self.tcfg.get(self.actor_name, {}), self.device, self.amp)
        self.batch_size = int(self.tcfg.get("batch_size", 32))
        self.start_epoch = 0
        self._check_recipe(data_cfg)
        self.history: List[Dict[str, Any]] = []
        self.best_auc = -1.0
        self._ddp = None
        self._ddp_key = None
        if resume:
            self.resume(resume)

    # -- utilities -------------------------------------------------------------
    def log(self, msg: str) -> None:
        if self.is_main:
            self._log(msg)

    def _check_recipe(self, data_cfg: Dict[str, Any]) -> None:
        """Refuse configs whose parts contradict each other, say what a run without
        a pretrained backbone means."""
        mode = getattr(self.dataset, "mode", data_cfg.get("mode", "plain"))
        if self.actor.data_mode and mode != self.actor.data_mode:
            raise ValueError(f"train.actor {self.actor_name} needs data.mode: {self.actor.data_mode} "
                             f"(got {mode})")
        need = getattr(self.criterion, "temporal_mode", None)
        sampler = getattr(self.dataset, "sampler", None)
        have = getattr(sampler, "temporal", None)
        if need and have is not None and have != need:
            raise ValueError(f"loss {self.tcfg.get('loss', {}).get('type')} weights pairs by Omega in the "
                             f"loss and needs data.temporal: {need} (got {have}: pairs would be "
                             "weighted twice, once by how they are drawn and once in the loss)")
        if self.freeze_epochs and not self.cfg.get("init"):
            self.log(f"note: no init: the backbone starts from random weights and the first "
                     f"{self.freeze_epochs} epoch(s) keep it frozen, i.e. random features: this does "
                     "not reproduce a paper that starts from an ImageNet backbone (see init: in the config)")

    def _net(self) -> nn.Module:
        """The actor's network (DDP-wrapped when distributed); rebuilt when the set
        of trainable tensors changes."""
        key = tuple(p.requires_grad for p in self.model.parameters())
        if self._ddp is None or key != self._ddp_key:
            net = self.actor.network()
            if self.distributed:
                unused = self.tcfg.get("find_unused_parameters")
                if unused is None:
                    unused = self.actor.find_unused_parameters
                net = D.wrap_ddp(net, self.device, unused)
            self._ddp, self._ddp_key = net, key
        return self._ddp

    def _loader(self, epoch: int):
        samples = self.tcfg.get("samples_per_epoch")
        sampler = D.EpochSampler(len(self.dataset), samples, self.rank, self.world, self.seed)
        sampler.set_epoch(epoch)
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)
        g = torch.Generator().manual_seed(self.seed * 7919 + epoch * 104729 + self.rank)
        workers = int(self.tcfg.get("num_workers", 0))
        dataset = self.dataset
        as_uint8 = self.tcfg.get("uint8_images", "auto")
        if as_uint8 is True or (as_uint8 == "auto" and workers > 0):
            dataset = Uint8Images(dataset)
        per_rank_batch = max(1, self.batch_size // self.world) if self.tcfg.get("global_batch", False) \
            else self.batch_size
        return torch.utils.data.DataLoader(
            dataset, batch_size=per_rank_batch, sampler=sampler, num_workers=workers,
            pin_memory=self.device.type == "cuda", drop_last=True, worker_init_fn=_worker_init,
            generator=g, persistent_workers=False,
            prefetch_factor=int(self.tcfg.get("prefetch_factor", 4)) if workers > 0 else None)

    def _set_phase(self, epoch: int) -> bool:
        frozen = epoch < self.freeze_epochs
        if hasattr(self.model, self.backbone_name):
            S.set_backbone_trainable(self.model, not frozen, self.backbone_name,
                                     self.freeze_cfg.get("train_prefixes"))
        return frozen

    # -- one epoch -------------------------------------------------------------
    def train_epoch(self, epoch: int) -> Dict[str, float]:
        frozen = self._set_phase(epoch)
        self.model.train()
        if frozen or self.freeze_cfg.get("train_prefixes"):
            S.frozen_backbone_eval(self.model, self.backbone_name)
        loader = self._loader(epoch)
        steps = len(loader)
        it = loader
        bar = None
        if self.progress and self.is_main:
            try:
                from tqdm import tqdm
                bar = tqdm(loader, total=steps, desc=f"epoch {epoch + 1}/{self.epochs}",
                           mininterval=2.0, dynamic_ncols=True, file=sys.stderr)
                it = bar
            except ImportError:  # pragma: no cover
                pass
        sums: Dict[str, float] = {}
        count = 0
        t0 = time.time()
        nonfinite = 0
        for step, batch in enumerate(it):
            lr = self.schedule.lr_at(epoch + step / max(steps, 1))
            S.apply_lr(self.optimizer, lr)
            loss, parts = self.actor.loss(self._net(), batch)
            self.optimizer.zero_grad(set_to_none=True)
            if not D.all_finite(loss, self.distributed):   # skip a bad step on every rank, or on none
                nonfinite += 1
                if nonfinite > 10:
                    raise FloatingPointError(f"loss not finite for {nonfinite} steps (epoch {epoch + 1})")
                continue
            loss.backward()
            if self.grad_clip:
                nn.utils.clip_grad_norm_(self.model.parameters(), float(self.grad_clip))
            self.optimizer.step()
            count += 1
            sums["loss"] = sums.get("loss", 0.0) + float(loss.detach())
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + float(v)
            if bar is not None:
                bar.set_postfix(loss=f"{sums['loss'] / count:.4f}", lr=f"{lr:.2e}")
        if bar is not None:
            bar.close()
        means = {k: v / max(count, 1) for k, v in sums.items()}
        if self.distributed:
            D.average_buffers(self.model, self.world)
            means = D.average_scalars(means, self.device, self.world)
        means.update(lr=self.schedule.lr_at(epoch + 1 - 1e-9), frozen=int(frozen), steps=steps,
                     seconds=time.time() - t0)
        return means

    # -- checkpoints -----------------------------------------------------------
    def checkpoint_meta(self, epoch: int, row: Dict[str, Any]) -> Dict[str, Any]:
        return {"epoch": epoch + 1, "epochs": self.epochs, "train_config": self.cfg.get("name"),
                "metrics": {k: v for k, v in row.items() if isinstance(v, (int, float, str))},
                "seed": self.seed, "world_size": self.world,
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}

    def save(self, epoch: int, row: Dict[str, Any]) -> str:
        os.makedirs(self.out_dir, exist_ok=True)
        cfg = checkpoint_model_config(self.model_cfg)
        meta = self.checkpoint_meta(epoch, row)
        last = os.path.join(self.out_dir, "last.pt")
        save_checkpoint(last, self.model, cfg, meta)
        every = int(self.tcfg.get("checkpoint_every", 1))
        if every and (epoch + 1) % every == 0:
            save_checkpoint(os.path.join(self.out_dir, f"epoch_{epoch + 1:03d}.pt"), self.model, cfg, meta)
        auc = row.get("val_auc")
        if isinstance(auc, float) and not math.isnan(auc) and auc > self.best_auc:
            self.best_auc = auc
            save_checkpoint(os.path.join(self.out_dir, "best.pt"), self.model, cfg, meta)
        state = {"epoch": epoch + 1, "optimizer": self.optimizer.state_dict(), "rng": D.rng_state(),
                 "best_auc": self.best_auc, "history": self.history, "checkpoint": "last.pt"}
        tmp = os.path.join(self.out_dir, "last.state.pt.tmp")
        torch.save(state, tmp)
        os.replace(tmp, os.path.join(self.out_dir, "last.state.pt"))
        return last

    def resume(self, path: str) -> None:
        """`path`: an output folder, its last.pt, or a *.state.pt file."""
        from ..core.checkpoints import load_checkpoint
        if os.path.isdir(path):
            state_path = os.path.join(path, "last.state.pt")
        elif path.endswith(".state.pt"):
            state_path = path
        else:
            state_path = os.path.join(os.path.dirname(os.path.abspath(path)), "last.state.pt")
        if not os.path.isfile(state_path):
            raise FileNotFoundError(f"--resume: no training state at {state_path}")
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        ckpt = os.path.join(os.path.dirname(state_path), state.get("checkpoint", "last.pt"))
        _, weights, meta = load_checkpoint(ckpt)
        self.model.load_state_dict(weights)
        # Parameters frozen at save time were in the optimiser too: the state matches.
        self.optimizer.load_state_dict(state["optimizer"])
        self.start_epoch = int(state["epoch"])
        self.best_auc = float(state.get("best_auc", -1.0))
        self.history = list(state.get("history", []))
        D.set_rng_state(state["rng"])
        if self.rank:
            torch.manual_seed(self.seed + self.rank + 7 * self.start_epoch)
        self.log(f"resumed from {ckpt}: {self.start_epoch} epoch(s) done, continuing at epoch "
                 f"{self.start_epoch + 1}/{self.epochs}")

    # -- the run ---------------------------------------------------------------
    def _validate(self, epoch: int) -> Tuple[float, str]:
        vcfg = dict(self.cfg.get("val", {}))
        every = int(vcfg.get("every", 1))
        if every <= 0 or ((epoch + 1) % every and epoch + 1 != self.epochs):
            return float("nan"), "not this epoch"
        root, reason = resolve_sequences_root(vcfg)
        if root is None:
            return float("nan"), reason
        dev = torch.device(vcfg.get("device", str(self.device)))
        res = validate(self.model, self.model_cfg, root, dev, vcfg.get("max_frames"), vcfg.get("names"))
        self.model.to(self.device)
        self.log(f"val (OPE AUC, {res['source']}): {res['auc']:.4f}  " +
                 " ".join(f"{k}={v:.3f}" for k, v in res["per_sequence"].items()))
        return res["auc"], ""

    def fit(self) -> List[Dict[str, Any]]:
        if self.is_main:
            os.makedirs(self.out_dir, exist_ok=True)
            with open(os.path.join(self.out_dir, "train_config.yaml"), "w") as f:
                yaml.safe_dump({k: v for k, v in self.cfg.items() if not k.startswith("_")}, f, sort_keys=False)
        tb = self._tensorboard()
        self.log(f"training {self.model_cfg.get('name')} on {self.device} x{self.world}: "
                 f"{self.epochs} epochs, {len(self.dataset)} pairs/epoch available, batch {self.batch_size}, "
                 f"backbone frozen for {self.freeze_epochs} epoch(s), warm-up {self.schedule.warmup_epochs:g}")
        skipped_reason_said = False
        budget = self.tcfg.get("time_budget_s")
        t_start = time.time()
        for epoch in range(self.start_epoch, self.epochs):
            row: Dict[str, Any] = {"epoch": epoch + 1}
            row.update(self.train_epoch(epoch))
            row["samples"] = row["steps"] * self.batch_size * self.world
            if self.is_main:
                auc, reason = self._validate(epoch)
                if reason and reason != "not this epoch" and not skipped_reason_said:
                    self.log(f"validation skipped: {reason}")
                    skipped_reason_said = True
                row["val_auc"] = auc
                self.history.append(row)
                self.save(epoch, row)
                self._write_csv(row)
                if tb is not None:
                    for k, v in row.items():
                        if isinstance(v, (int, float)) and k != "epoch" and not math.isnan(float(v)):
                            tb.add_scalar(k, v, epoch + 1)
                self.log(f"epoch {epoch + 1}/{self.epochs}: " +
                         " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                  for k, v in row.items() if k != "epoch"))
            if budget and epoch + 1 < self.epochs:
                self._fit_budget(float(budget), time.time() - t_start, epoch, row)
            if self.distributed:
                torch.distributed.barrier()
        if tb is not None:
            tb.close()
        return self.history

    def _fit_budget(self, budget: float, elapsed: float, epoch: int, row: Dict[str, Any]) -> None:
        """train.time_budget_s: size the remaining epochs so that the run ends in time.

        The schedule stays in epochs (warm-up, freeze, decay keep their shape); the
        number of pairs per epoch is set from the measured rate of the epoch just
        run (its validation/checkpoint time included). Every rank gets the same
        number from rank 0."""
        remaining = budget - elapsed
        left = self.epochs - (epoch + 1)
        rate = row.get("samples", 1) / max(row.get("seconds", 1e-3), 1e-3)      # training pairs / s
        overhead = max(0.0, elapsed / max(epoch + 1 - self.start_epoch, 1) - row.get("seconds", 0.0))
        per_epoch = max(0.0, remaining / left - overhead)
        samples = int(per_epoch * rate * float(self.tcfg.get("budget_safety", 0.9)))
        unit = self.batch_size * self.world
        samples = max(unit, samples - samples % unit)
        if self.distributed:
            samples = D.broadcast_int(samples, self.device)
        self.tcfg["samples_per_epoch"] = samples
        self.log(f"time budget {budget:.0f}s: {elapsed:.0f}s used, {left} epoch(s) left at "
                 f"{rate:.0f} pairs/s -> {samples} pairs per epoch")

    def _write_csv(self, row: Dict[str, Any]) -> None:
        path = os.path.join(self.out_dir, "log.csv")
        fields = ["epoch", "loss", "cls", "loc", "lr", "frozen", "val_auc", "steps", "seconds"]
        fields += sorted(k for k in row if k not in fields)
        exists = os.path.isfile(path)
        if exists:
            with open(path) as f:
                header = f.readline().strip().split(",")
            fields = header + [k for k in fields if k not in header]
            if set(fields) != set(header):   # a new column appeared: rewrite with the wider header
                with open(path) as f:
                    rows = list(csv.DictReader(f))
                with open(path, "w", newline="") as f:
                    w = csv.DictWriter(f, fieldnames=fields)
                    w.writeheader()
                    w.writerows(rows)
        with open(path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields)
            if not exists:
                w.writeheader()
            w.writerow({k: row.get(k, "") for k in fields})

    def _tensorboard(self):
        if not self.is_main or self.tcfg.get("tensorboard", True) is False:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except Exception:   # tensorboard not installed: the CSV log is enough
            return None
        return SummaryWriter(os.path.join(self.out_dir, "tb"))

    def close(self) -> None:
        if self.distributed and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def train(config: Dict[str, Any], out_dir: Optional[str] = None, resume: Optional[str] = None,
          **kwargs) -> Trainer:
    """Run a whole training; returns the Trainer (history, model, out_dir)."""
    trainer = Trainer(config, out_dir=out_dir, resume=resume, **kwargs)
    try:
        trainer.fit()
    finally:
        trainer.close()
    return trainer

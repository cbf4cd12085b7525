"""The trainer behind `siam-train`: one loop for every model of the project.

A training config (config/train/NAME.yaml) names the model, the data and the
recipe:

    name: nanotrack_light
    model: nanotrack                  # config/models NAME, a YAML path, or an inline {name, model, tracker}
    init:                             # optional: start from (part of) a weights file
      path: ../shared/weights/nanotrack_v2/nanotrackv2.pth
      format: nanotrack_v2            # registry weights_format ("native" = project checkpoint)
      only: [backbone]                # keep only these top-level modules' weights
    data:                             # siam_tracker_ros.train.sampler.PairDataset
      datasets: [{type: otb, root: data/train}]   # train.datasets.build_dataset(type, **rest)
      mode: plain                     # or two_stage (Ta-ASiam)
      length: 20000                   # pairs per epoch
    train:
      epochs: 20
      batch_size: 32
      num_workers: 4
      loss: {type: ban}               # losses.build_criterion
      optimizer: {lr: 0.005, warmup_lr: 0.001, end_lr: 0.00005, backbone_lr_mult: 0.1}
      freeze: {freeze_fraction: 0.5}  # backbone frozen for the first half
      two_stage: {fused_weight: 1.0}  # Ta-ASiam only (see below)
    val: {sequences: ../shared/data/sequences, max_frames: null, every: 1}
    seed: 0

Other train keys: samples_per_epoch (default: len(dataset)), time_budget_s (the
first epoch measures the pair rate, later epochs are sized so the run ends in
time; the schedule keeps its shape in epochs), amp (bf16 autocast on CUDA),
grad_clip, checkpoint_every, num_workers, uint8_images ("auto": crops travel
from the loader workers as uint8 when workers > 0), sync_bn, find_unused_parameters
(DDP; default: only in two-stage mode), deterministic, tensorboard, device.

What one run writes into --out (default work_dirs/NAME):
    last.pt / epoch_NNN.pt / best.pt   project checkpoints (core/checkpoints): the
                                       model config travels inside, so
                                       build_tracker("last.pt") rebuilds the tracker
    last.state.pt                      optimiser, epoch, RNG states: --resume
    log.csv                            one row per epoch (+ TensorBoard if installed)
    train_config.yaml                  the config as run

Distributed: started with torchrun (WORLD_SIZE > 1) every process trains on its
shard (DistributedSampler-style: a seeded permutation per epoch, split by rank)
through DistributedDataParallel (nccl on CUDA, gloo on CPU); rank 0 validates,
logs and writes checkpoints. `train(..., rank=, world_size=)` does the same
from torch.multiprocessing (the tests).

Ta-ASiam two-stage aware training (data.mode: two_stage): every item carries a
position-aware `search` and an appearance-aware `search_appearance` crop of the
same frame. One forward pass runs both (batch concatenated, so DDP sees one
forward per backward); the layer-3 branch loss is taken on the position-aware
half, the layer-4 branch loss on the appearance-aware half, and they are summed.
`fused_weight` (default 1.0, our addition) adds the loss of the fused output
on the position-aware half: the paper does not say how the learned fusion
weights get trained, and without such a term they receive no gradient.
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
import torch.distributed as dist
import yaml
from torch import nn

from ..core.checkpoints import save_checkpoint
from ..core.models import registry
from . import schedule as S
from .losses import build_criterion

# ---------------------------------------------------------------------------
# Config


def load_train_config(path: str) -> Dict[str, Any]:
    with open(path) as f:
        cfg = yaml.safe_load(f)
    if not isinstance(cfg, dict) or "model" not in cfg:
        raise ValueError(f"{path}: a training config needs at least a 'model' entry")
    cfg.setdefault("name", os.path.splitext(os.path.basename(path))[0])
    cfg["_source"] = os.path.abspath(path)
    return cfg


def resolve_model_config(model: Any) -> Dict[str, Any]:
    """config/models NAME, a YAML path, or an inline dict with model + tracker."""
    if isinstance(model, dict):
        cfg = copy.deepcopy(model)
        if "model" not in cfg or "tracker" not in cfg:
            raise ValueError("an inline model config needs 'model' and 'tracker' sections")
        cfg.setdefault("name", cfg["model"].get("type", "model"))
        return cfg
    return registry.load_model_config(str(model))


def checkpoint_model_config(model_cfg: Dict[str, Any]) -> Dict[str, Any]:
    """What goes into a checkpoint: the weights are the checkpoint's own."""
    cfg = {k: copy.deepcopy(v) for k, v in model_cfg.items() if not k.startswith("_")}
    cfg["weights"] = None
    cfg.pop("weights_format", None)
    cfg.pop("weights_strict", None)
    return cfg


def build_pair_dataset(data_cfg: Dict[str, Any], seed: int = 0):
    """PairDataset from the `data` section (F1's sampler/datasets modules)."""
    from .datasets import build_dataset
    from .sampler import PairDataset
    cfg = copy.deepcopy(data_cfg)
    specs = cfg.pop("datasets", None)
    if not specs:
        raise ValueError("data.datasets must list at least one dataset ({type: ..., root: ...})")
    datasets, weights = [], []
    for spec in specs:
        spec = dict(spec)
        kind = spec.pop("type")
        weights.append(float(spec.pop("weight", 1.0)))
        datasets.append(build_dataset(kind, **spec))
    cfg.setdefault("seed", seed)
    return PairDataset(datasets, weights=weights, **cfg)


# ---------------------------------------------------------------------------
# Model helpers


class TrainWrapper(nn.Module):
    """forward(template, search[, search2]) -> outputs (or both halves' outputs).

    The models are stateless (template(z) / track(state, x)); DDP needs one
    nn.Module whose forward runs the whole step, which this is.
    """

    def __init__(self, model: nn.Module, branches: bool = False):
        super().__init__()
        self.model = model
        self.branches = branches

    def forward(self, template: torch.Tensor, search: torch.Tensor,
                search2: Optional[torch.Tensor] = None):
        state = self.model.template(template)
        kw = {"return_branches": True} if self.branches else {}
        if search2 is None:
            return self.model.track(state, search, **kw)
        b = search.shape[0]
        out = self.model.track(_tree_map(lambda t: torch.cat([t, t]), state),
                               torch.cat([search, search2]), **kw)
        return (_tree_map(lambda t: t[:b] if t.dim() and t.shape[0] == 2 * b else t, out),
                _tree_map(lambda t: t[b:] if t.dim() and t.shape[0] == 2 * b else t, out))


def _tree_map(fn: Callable, obj):
    if torch.is_tensor(obj):
        return fn(obj)
    if isinstance(obj, dict):
        return {k: _tree_map(fn, v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_tree_map(fn, v) for v in obj)
    return obj


def init_weights(model: nn.Module, model_cfg: Dict[str, Any], init_cfg: Optional[Dict[str, Any]],
                 log: Callable[[str], None] = print) -> None:
    """Load (part of) a weights file into the fresh model, non-strictly, and say what was kept."""
    if not init_cfg:
        return
    path = init_cfg["path"]
    fmt = init_cfg.get("format", "native")
    cfg = dict(model_cfg)
    cfg["weights_format"] = fmt
    cfg["weights_strict"] = False
    state = registry.load_weights_file(path, cfg)
    only = init_cfg.get("only")
    if only:
        state = {k: v for k, v in state.items() if k.split(".")[0] in set(only)}
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(usable, strict=False)
    log(f"init: {len(usable)}/{len(own)} tensors from {path} (format {fmt}"
        f"{', only ' + ','.join(only) if only else ''}; {len(state) - len(usable)} skipped)")


# ---------------------------------------------------------------------------
# Distributed / determinism


def _dist_env() -> Tuple[int, int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    return rank, world, local


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


def rng_state() -> Dict[str, Any]:
    np_state = np.random.get_state(legacy=False)
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             "numpy": {"key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
                       "pos": int(np_state["state"]["pos"]), "has_gauss": int(np_state["has_gauss"]),
                       "gauss": float(np_state["gauss"])}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state({"bit_generator": "MT19937",
                         "state": {"key": n["key"].numpy().astype(np.uint32), "pos": n["pos"]},
                         "has_gauss": n["has_gauss"], "gauss": n["gauss"]})
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class EpochSampler(torch.utils.data.Sampler):
    """DistributedSampler with an epoch size: a permutation seeded by (seed, epoch),
    cut to `samples` items, split between ranks in equal parts (every rank runs the
    same number of steps, so DDP stays in lockstep)."""

    def __init__(self, n: int, samples: Optional[int] = None, rank: int = 0, world: int = 1,
                 seed: int = 0):
        self.n, self.rank, self.world, self.seed = int(n), rank, world, seed
        total = int(samples) if samples else self.n
        self.per_rank = total // world
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        need = self.per_rank * self.world
        reps = max(1, math.ceil(need / max(self.n, 1)))
        order = torch.cat([torch.randperm(self.n, generator=g) for _ in range(reps)])[:need]
        return iter(order[self.rank::self.world].tolist())

    def __len__(self) -> int:
        return self.per_rank


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


# ---------------------------------------------------------------------------
# Validation


def validate(model: nn.Module, model_cfg: Dict[str, Any], root: str, device: torch.device,
             max_frames: Optional[int] = None, names: Optional[List[str]] = None) -> Dict[str, Any]:
    """OPE success AUC (21 IoU thresholds, IoU > t, frame 0 included, sequences
    weighted equally) of `model` on the sequences under `root`."""
    try:
        from ..evaluation import datasets as ED
        from ..evaluation import metrics as EM
        sequences = ED.load_shared(root)
        seqs = [(s.name, s.frame_paths, s.gt) for s in sequences]
        success = lambda pred, gt: EM.success_curve(pred, gt)          # noqa: E731
        source = "siam_tracker_ros.evaluation"
    except ImportError:
        seqs = _local_sequences(root)
        success = _local_success_curve
        source = "local OPE"
    if names:
        seqs = [s for s in seqs if s[0] in set(names)]
    import cv2
    from ..core.tracking.loading import build_tracker_from_config
    tracker = build_tracker_from_config(model_cfg, model=model, device=str(device))
    per = {}
    for name, frames, gt in seqs:
        n = len(frames) if not max_frames else min(len(frames), int(max_frames))
        pred = np.zeros((n, 4))
        for i in range(n):
            img = cv2.imread(frames[i], cv2.IMREAD_COLOR)
            if i == 0:
                tracker.init(img, gt[0])
                pred[0] = gt[0]
            else:
                pred[i] = tracker.track(img).box
        per[name] = float(np.mean(success(pred, gt[:n])))
    return {"auc": float(np.mean(list(per.values()))) if per else float("nan"),
            "per_sequence": per, "source": source}


def _local_sequences(root: str):
    out = []
    for name in sorted(os.listdir(root)):
        d = os.path.join(root, name)
        gt_path = os.path.join(d, "groundtruth.txt")
        if not os.path.isfile(gt_path):
            continue
        gt = np.array([[float(v) for v in line.replace("\t", ",").replace(" ", ",").split(",") if v][:4]
                       for line in open(gt_path) if line.strip()])
        img_dir = os.path.join(d, "img")
        frames = sorted(os.path.join(img_dir, f) for f in os.listdir(img_dir)
                        if f.lower().endswith((".jpg", ".jpeg", ".png")))
        out.append((name, frames[:len(gt)], gt))
    return out


def _local_success_curve(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    from ..core import geometry
    ious = geometry.iou(pred, gt)
    valid = np.all(np.isfinite(gt), axis=1) & (gt[:, 2] > 0) & (gt[:, 3] > 0)
    ious = ious[valid]
    return np.array([(ious > t).mean() if len(ious) else 0.0 for t in np.linspace(0, 1, 21)])


def resolve_sequences_root(val_cfg: Dict[str, Any]) -> Tuple[Optional[str], str]:
    """(root or None, reason when None)."""
    if val_cfg.get("enabled", True) is False:
        return None, "validation disabled in the config (val.enabled: false)"
    root = val_cfg.get("sequences", "../shared/data/sequences")
    if root and os.path.isdir(root):
        return root, ""
    env = os.environ.get("SIAM_TRACKER_SEQUENCES")
    if env and os.path.isdir(env):
        return env, ""
    return None, f"no validation sequences at '{root}' (set val.sequences or SIAM_TRACKER_SEQUENCES)"


# ---------------------------------------------------------------------------
# The trainer


class Trainer:
    def __init__(self, config: Dict[str, Any], out_dir: Optional[str] = None, resume: Optional[str] = None,
                 dataset=None, device: Optional[str] = None, rank: Optional[int] = None,
                 world_size: Optional[int] = None, progress: bool = True, log: Callable[[str], None] = print):
        self.cfg = copy.deepcopy(config)
        self.tcfg: Dict[str, Any] = dict(self.cfg.get("train", {}))
        env_rank, env_world, local = _dist_env()
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
        if self.distributed and not dist.is_initialized():
            backend = self.tcfg.get("backend") or ("nccl" if self.device.type == "cuda" else "gloo")
            dist.init_process_group(backend, rank=self.rank, world_size=self.world)
        seed_everything(self.seed + self.rank)
        if self.tcfg.get("deterministic", False):
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
        elif self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True     # fixed crop sizes: let cuDNN pick

        self.model_cfg = resolve_model_config(self.cfg["model"])
        self.model = registry.build_model(self.model_cfg["model"])
        init_weights(self.model, self.model_cfg, self.cfg.get("init"), self.log)
        if self.distributed and self.tcfg.get("sync_bn", False):
            self.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        self.model.to(self.device)

        data_cfg = self.cfg.get("data", {})
        self.two_stage = data_cfg.get("mode") == "two_stage" or bool(self.tcfg.get("two_stage_enabled", False))
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
        self.ts_cfg = dict(self.tcfg.get("two_stage", {}))
        self.grad_clip = self.tcfg.get("grad_clip", 10.0)
        self.amp = self.tcfg.get("amp", False) and self.device.type == "cuda"
        self.batch_size = int(self.tcfg.get("batch_size", 32))
        self.start_epoch = 0
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

    def _net(self) -> nn.Module:
        """The (DDP-wrapped) TrainWrapper; rebuilt when the set of trainable tensors changes."""
        key = tuple(p.requires_grad for p in self.model.parameters())
        if self._ddp is None or key != self._ddp_key:
            wrapper = TrainWrapper(self.model, branches=self.two_stage)
            if self.distributed:
                unused = self.tcfg.get("find_unused_parameters")
                if unused is None:     # two-stage: a branch may see no loss term
                    unused = self.two_stage
                ids = [self.device.index] if self.device.type == "cuda" else None
                wrapper = nn.parallel.DistributedDataParallel(
                    wrapper, device_ids=ids,
                    find_unused_parameters=bool(unused))
            self._ddp, self._ddp_key = wrapper, key
        return self._ddp

    def _loader(self, epoch: int):
        samples = self.tcfg.get("samples_per_epoch")
        sampler = EpochSampler(len(self.dataset), samples, self.rank, self.world, self.seed)
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

    # -- one step --------------------------------------------------------------
    def _loss(self, batch: Dict[str, Any]) -> Tuple[torch.Tensor, Dict[str, float]]:
        dev = self.device
        z = batch["template"].to(dev, non_blocking=True).float()
        x = batch["search"].to(dev, non_blocking=True).float()
        boxes = batch["search_box"].to(dev, non_blocking=True)
        neg = torch.as_tensor(batch.get("negative", torch.zeros(len(boxes), dtype=torch.bool))).to(dev)
        net = self._net()
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bool(self.amp)):
            if not self.two_stage:
                out = net(z, x)
                return self.criterion(out, boxes, neg, batch)
            xa = batch["search_appearance"].to(dev, non_blocking=True).float()
            boxes_a = batch["search_appearance_box"].to(dev, non_blocking=True)
            out_p, out_a = net(z, x, xa)
        parts: Dict[str, torch.Tensor] = {}
        br_p, br_a = out_p["branches"], out_a["branches"]
        pos_level = int(self.ts_cfg.get("position_level", br_p[0]["level"]))
        app_level = int(self.ts_cfg.get("appearance_level", br_a[-1]["level"]))
        bp = next(b for b in br_p if int(b["level"]) == pos_level)
        ba = next(b for b in br_a if int(b["level"]) == app_level)
        lp, pp = self.criterion(bp, boxes, neg, batch)
        la, pa = self.criterion(ba, boxes_a, neg, batch)
        loss = lp + la
        parts.update({f"pos_{k}": v for k, v in pp.items()})
        parts.update({f"app_{k}": v for k, v in pa.items()})
        fw = float(self.ts_cfg.get("fused_weight", 1.0))
        if fw > 0:
            lf, _ = self.criterion(out_p, boxes, neg, batch)
            loss = loss + fw * lf
            parts["fused"] = lf.detach()
        return loss, parts

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
            loss, parts = self._loss(batch)
            self.optimizer.zero_grad(set_to_none=True)
            finite = torch.isfinite(loss.detach()).float()
            if self.distributed:          # skip a bad step on every rank, or on none
                dist.all_reduce(finite, op=dist.ReduceOp.MIN)
            if finite.item() < 1:
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
            self._average_buffers()
            keys = sorted(means)
            t = torch.tensor([means[k] for k in keys], device=self.device, dtype=torch.float64)
            dist.all_reduce(t)
            means = {k: float(v) / self.world for k, v in zip(keys, t.tolist())}
        means.update(lr=self.schedule.lr_at(epoch + 1 - 1e-9), frozen=int(frozen), steps=steps,
                     seconds=time.time() - t0)
        return means

    def _average_buffers(self) -> None:
        """BatchNorm running statistics are per rank (DDP only broadcasts them at each
        forward): average them at the end of an epoch so every rank, the checkpoint
        and the validation see the same model."""
        with torch.no_grad():
            for name, buf in self.model.named_buffers():
                if buf.is_floating_point():
                    dist.all_reduce(buf)
                    buf.div_(self.world)
                elif name.endswith("num_batches_tracked"):
                    dist.broadcast(buf, 0)

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
        state = {"epoch": epoch + 1, "optimizer": self.optimizer.state_dict(), "rng": rng_state(),
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
        set_rng_state(state["rng"])
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
                dist.barrier()
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
            t = torch.tensor([samples], device=self.device)
            dist.broadcast(t, 0)
            samples = int(t.item())
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
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()


def train(config: Dict[str, Any], out_dir: Optional[str] = None, resume: Optional[str] = None,
          **kwargs) -> Trainer:
    """Run a whole training; returns the Trainer (history, model, out_dir)."""
    trainer = Trainer(config, out_dir=out_dir, resume=resume, **kwargs)
    try:
        trainer.fit()
    finally:
        trainer.close()
    return trainer

"""`siam-train`'s entry points, kept here for callers of the former single module.

The trainer is split by concern:

    config.py        training configs, the model they name, build_pair_dataset, init:
    distributed.py   torchrun / DDP plumbing, EpochSampler, RNG state
    validation.py    OPE AUC on labelled sequences during training
    actors.py        per-method training steps (plain, two_stage, ...), chosen by train.actor
    losses.py        the loss registry (train.loss.type)
    trainer.py       the generic Trainer and train()
"""
from __future__ import annotations

from .actors import ACTORS, PlainActor, TwoStageActor, build_actor, register_actor  # noqa: F401
from .config import (build_pair_dataset, checkpoint_model_config, init_weights,  # noqa: F401
                     load_train_config, resolve_model_config)
from .distributed import EpochSampler, rng_state, seed_everything, set_rng_state  # noqa: F401
from .trainer import Trainer, Uint8Images, train  # noqa: F401
from .validation import resolve_sequences_root, validate  # noqa: F401

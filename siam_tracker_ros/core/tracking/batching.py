"""Batching primitives: several searches through ONE network call.

Below the trackers' users (MultiTargetTracker for several targets, the Tracker's
own probe for a LOST target's search crops) and above nothing but torch: this
module imports no other tracking module, the trackers come in as arguments and
are used through their public three-step API (`track_prepare`, `run_network`,
`track_finish`, core/tracking/base.py).

- `concat_states` / `slice_output`: template states of several searches -> one
  batched state (a state of batch 1 repeated over a search's K crops, e.g.
  SiamFC's scale pyramid), and each search's rows of the batched output;
- `batched_network`: one model call for many prepared searches;
- `track_batch`: `[t.track(image) for t in trackers]` with one network call
  per shared model, a failing target isolated when `errors` is given.

On the CPU every registered model gives bit-identical per-search results
batched and alone (test/test_multi.py); on CUDA expect float rounding.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
import torch


def _rows(leaf) -> int:
    return int(leaf.shape[0])


def concat_states(states: Sequence[Any], rows: Sequence[int]):
    """Template states of several targets -> one batched state (dim 0).

    states[i] is target i's state (tensor, numpy array, None, or a tuple / list
    / dict of those, the same structure for every target); rows[i] how many
    search crops target i contributes. A leaf with batch 1 is repeated rows[i]
    times; a leaf with batch rows[i] is taken as is.
    """
    first = states[0]
    if first is None:
        if any(s is not None for s in states):
            raise ValueError("template states differ in structure (None vs a value)")
        return None
    if isinstance(first, dict):
        return {k: concat_states([s[k] for s in states], rows) for k in first}
    if isinstance(first, (tuple, list)):
        if any(len(s) != len(first) for s in states):
            raise ValueError("template states differ in length")
        parts = [concat_states([s[i] for s in states], rows) for i in range(len(first))]
        return type(first)(parts) if isinstance(first, list) else tuple(parts)
    if isinstance(first, (torch.Tensor, np.ndarray)):
        is_tensor = isinstance(first, torch.Tensor)
        parts = []
        for s, k in zip(states, rows):
            n = _rows(s)
            if n == 1 and k != 1:
                s = s.expand(k, *s.shape[1:]) if is_tensor else np.repeat(s, k, axis=0)
            elif n != k:
                raise ValueError(f"template state batch {n} does not fit {k} search crop(s)")
            parts.append(s)
        return torch.cat(parts, 0) if is_tensor else np.concatenate(parts, 0)
    raise TypeError(f"cannot batch template states of type {type(first).__name__}")


def slice_output(out: Dict[str, Any], start: int, stop: int, total: int) -> Dict[str, Any]:
    """One target's rows [start, stop) of a batched model output (tensors whose
    dim 0 is the batch; anything else is passed through)."""
    part = {}
    for k, v in out.items():
        if isinstance(v, (torch.Tensor, np.ndarray)) and v.ndim > 0 and v.shape[0] == total:
            part[k] = v[start:stop]
        else:
            part[k] = v
    return part


def supports_target_batch(model) -> bool:
    return bool(getattr(model, "supports_target_batch", True))


def track_batch(trackers: Sequence[Any], image: np.ndarray,
                errors: Optional[Dict[int, Exception]] = None) -> List[Optional[Any]]:
    """`[t.track(image) for t in trackers]` with one network call per shared model.

    Trackers on the same model object and device are batched; a group of one,
    or a model that cannot batch targets, runs `tracker.track(image)`.

    errors None: the first exception of any target propagates (the others'
    results are lost). errors a dict: a target whose work raises gets
    `errors[index] = exception` and None in the returned list, the others go
    on; a batched network call that raises is run again per target.
    """
    results: List[Optional[Any]] = [None] * len(trackers)
    groups: Dict[Any, List[int]] = {}
    for i, t in enumerate(trackers):
        groups.setdefault((id(t.model), str(t.device)), []).append(i)
    for idx in groups.values():
        members = [trackers[i] for i in idx]
        if len(members) == 1 or not supports_target_batch(members[0].model):
            for i, t in zip(idx, members):
                results[i] = _guarded(errors, i, lambda t=t: t.track(image))
            continue
        local: Optional[Dict[int, Exception]] = None if errors is None else {}
        for i, r in zip(idx, _track_group(members, image, local)):
            results[i] = r
        for j, exc in (local or {}).items():
            errors[idx[j]] = exc
    return results


def _guarded(errors: Optional[Dict[int, Exception]], j: int, fn: Callable[[], Any]):
    """fn(); with `errors`, an exception goes to errors[j] and None is returned."""
    if errors is None:
        return fn()
    try:
        return fn()
    except Exception as exc:
        errors[j] = exc
        return None


def batched_network(trackers: Sequence[Any], prepared: Sequence[Any]):
    """ONE model call for every prepared search (trackers[i]'s template state with
    prepared[i]'s crops; one tracker may appear several times) -> (each one's rows of
    the output, seconds of the call)."""
    rows = [_rows(p.x) for p in prepared]
    lead = trackers[0]
    with torch.inference_mode():
        state = concat_states([t.template_state for t in trackers], rows)
        x = torch.cat([p.x for p in prepared], 0)
        cuda = lead.device.type == "cuda"
        if cuda:
            torch.cuda.synchronize(lead.device)
        t0 = time.perf_counter()
        out = lead.run_network(state, x)
        if cuda:
            torch.cuda.synchronize(lead.device)
        elapsed = time.perf_counter() - t0
    total, start, parts = int(sum(rows)), 0, []
    for k in rows:
        parts.append(slice_output(out, start, start + k, total))
        start += k
    return parts, elapsed


def _track_group(trackers: Sequence[Any], image: np.ndarray,
                 errors: Optional[Dict[int, Exception]] = None) -> List[Optional[Any]]:
    """Prepare every target, one network call, finish every target. With `errors`
    ({index in trackers: exception}), failing targets are skipped (None) and a
    failing batched call is run again per target (track_batch)."""
    results: List[Optional[Any]] = [None] * len(trackers)
    prepared: List[Optional[Any]] = [
        _guarded(errors, j, lambda t=t: t.track_prepare(image)) for j, t in enumerate(trackers)]
    live = [j for j, p in enumerate(prepared) if p is not None]
    if not live:
        return results
    group = [trackers[j] for j in live]
    outs: Dict[int, Any] = {}          # index -> (its output, its network seconds, batched seconds)
    try:
        parts, elapsed = batched_network(group, [prepared[j] for j in live])
    except Exception:
        if errors is None:
            raise
        for j in live:                 # find the culprit: one call per target
            own = _guarded(errors, j, lambda j=j: batched_network([trackers[j]], [prepared[j]]))
            if own is not None:
                outs[j] = (own[0][0], own[1], None)
    else:
        for j, part in zip(live, parts):
            outs[j] = (part, elapsed / len(group), elapsed)
    for j, (part, share, batched) in outs.items():
        t, p = trackers[j], prepared[j]
        r = _guarded(errors, j, lambda t=t, p=p, part=part, share=share:
                     t.track_finish(p, part, network_time=share))
        if r is not None and batched is not None:
            r.timing["network_batched"] = batched
        results[j] = r
    return results

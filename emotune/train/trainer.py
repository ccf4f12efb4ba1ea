"""The training loop on `accelerate`: one code path for this CPU and for `accelerate launch` on GPUs.

`fit(net, task, cfg, out_dir, seed)` trains `net` (an nn.Module whose forward(batch) returns the loss)
on batches the task builds, with AdamW, linear warmup + cosine decay, gradient accumulation and
clipping, a validation pass each epoch with early stopping on `task.monitor` (UA), and checkpoints
that resume exactly after a kill.

Exact resumption without replaying anything: every source of randomness is a function of
(seed, epoch, micro-batch index) — the epoch's sample order, the batch's template and modality-dropout
draws (a generator passed to the task), and LoRA dropout (the global torch RNG, reseeded per
micro-batch). A checkpoint therefore only needs the weights, the optimizer, the scheduler and the
position; a resumed run takes the same steps as an uninterrupted one.

With several processes (`torchrun --nproc_per_node N` or `accelerate launch` on GPUs) each takes every
`world`-th sample of a global micro-batch; `batch_size` is per process. Validation runs on every
process (no communication needed, identical results); only the main process writes files.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import sys
import time
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from emotune.errors import EmotuneError
from emotune.identity import describe_difference, digest
from emotune.train.checkpoint import load_latest, load_tensors, save_checkpoint, save_tensors, set_rng_state
from emotune.train.config import TrainConfig

BEST_FILE = "best.safetensors"

class Task(Protocol):
    n_train: int
    targets: np.ndarray  # [N] class index or [N, C]: for the balanced sampler
    monitor: str  # validation metric to maximise ("ua")
    lengths: np.ndarray | None  # [N] approximate cost of each training sample (tokens), or None

    def make_batch(self, index: np.ndarray, generator: torch.Generator): ...

    def validate(self) -> dict: ...


def _mix(*parts: int) -> int:
    """A seed for one (seed, epoch, micro-batch) triple; distinct triples give unrelated streams."""
    h = 1469598103934665603
    for p in parts:
        h = ((h ^ (int(p) & 0xFFFFFFFF)) * 1099511628211) % (1 << 63)
    return h


def schedule(warmup_steps: int, total_steps: int):
    def lr_factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return lr_factor


GROUP_WINDOW = 50  # batches per window that length grouping sorts within


def group_by_length(order: np.ndarray, lengths: np.ndarray, batch: int, g: torch.Generator) -> np.ndarray:
    """`order` rearranged so each run of `batch` samples has similar lengths.

    Windows of GROUP_WINDOW batches along the shuffled order are sorted by length and cut into batches;
    the batches are then shuffled, so an epoch does not run from short to long. Still a permutation of
    `order`, and a function of (order, generator) only, so a resumed epoch rebuilds the same batches.
    """
    window = batch * GROUP_WINDOW
    batches = []
    for k in range(0, len(order), window):
        part = order[k: k + window]
        part = part[np.argsort(-lengths[part], kind="stable")]
        batches += [part[j: j + batch] for j in range(0, len(part), batch)]
    # The short remainder batch (if any) stays last: every other batch keeps its full size.
    full = [b for b in batches if len(b) == batch]
    rest = [b for b in batches if len(b) != batch]
    perm = torch.randperm(len(full), generator=g).tolist()
    return np.concatenate([full[i] for i in perm] + rest) if batches else order


def epoch_order(task: Task, cfg: TrainConfig, seed: int, epoch: int, world: int = 1) -> np.ndarray:
    if cfg.imbalance == "balanced_sampler":
        from emotune.train.sampling import balanced_sampler

        order = np.fromiter(iter(balanced_sampler(task.targets, seed=_mix(seed, epoch))), dtype=np.int64)
    else:
        g = torch.Generator().manual_seed(_mix(seed, epoch))
        order = torch.randperm(task.n_train, generator=g).numpy()
    if cfg.group_by_length and task.lengths is not None:
        order = group_by_length(order, np.asarray(task.lengths), cfg.batch_size * world,
                                torch.Generator().manual_seed(_mix(seed, epoch, 1)))
    return order


def update_average(averaged: dict[str, torch.Tensor], current: dict[str, torch.Tensor], decay: float, step: int) -> None:
    """One step of the weights' exponential moving average; the decay warms up so early weights fade fast."""
    d = min(decay, (1 + step) / (10 + step))
    with torch.no_grad():
        for name, value in current.items():
            averaged[name].mul_(d).add_(value.detach().float(), alpha=1 - d)


def run_identity(net: torch.nn.Module, task: Task, cfg: TrainConfig, seed: int, run_hash: str) -> dict:
    """What a checkpoint must have been trained under to be resumed: every setting that changes a step."""
    keys = {f"train.{f.name}": getattr(cfg, f.name) for f in dataclasses.fields(cfg)
            if f.name not in ("progress", "checkpoint_every", "refit", "inner_folds")}  # later stages, not steps
    if not cfg.ema:
        del keys["train.ema"]  # checkpoints written before weight averaging existed stay resumable
    shapes = [(n, tuple(p.shape)) for n, p in net.named_parameters() if p.requires_grad]
    keys.update({"seed": seed, "n_train": task.n_train, "trainable": digest(shapes), "run": run_hash})
    return keys


def fit(net: torch.nn.Module, task: Task, cfg: TrainConfig, out_dir: Path, seed: int = 0, run_hash: str = "") -> dict:
    from accelerate import Accelerator, DistributedDataParallelKwargs
    from tqdm.auto import tqdm

    out_dir = Path(out_dir)
    # find_unused_parameters: a batch where one modality is missing everywhere leaves its projector unused.
    acc = Accelerator(cpu=not torch.cuda.is_available(),
                      kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
    net.to(acc.device)
    params = [p for p in net.parameters() if p.requires_grad]
    if not params:
        raise EmotuneError("nothing to train: no feature inputs and LoRA disabled (set model.lm.lora.enabled=true)")
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    world, rank = acc.num_processes, acc.process_index
    per_micro = cfg.batch_size * world
    n_micro = math.ceil(task.n_train / per_micro)
    accum = max(1, cfg.grad_accum)
    steps_per_epoch = math.ceil(n_micro / accum)
    total = steps_per_epoch * cfg.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule(int(round(cfg.warmup * total)), total))
    model, optimizer = acc.prepare(net, optimizer)
    raw = acc.unwrap_model(model)

    quiet = bool(os.environ.get("EMOTUNE_QUIET"))

    def log(msg: str) -> None:
        if acc.is_main_process and not quiet:
            print(msg, file=sys.stderr, flush=True)

    ckpt_root = out_dir / "checkpoints"
    identity = run_identity(raw, task, cfg, seed, run_hash)
    progress = {"epoch": 0, "micro": 0, "step": 0, "epoch_losses": [], "history": [], "best": None, "best_epoch": None, "bad_epochs": 0,
                "stopped_early": False, "identity": identity}
    # The weights' moving average (train.ema), kept in fp32 beside the live weights.
    averaged = {k: v.detach().float().clone() for k, v in raw.trainable_state().items()} if cfg.ema else None
    saved = load_latest(ckpt_root)
    if saved is not None:
        # Resuming weights trained under other settings would give a run that matches no config.
        old = saved["progress"].get("identity")
        if old != identity:
            what = describe_difference({"config": old}, {"config": identity}) if old else "it records no settings"
            raise EmotuneError(f"{ckpt_root}: checkpoint was written under other settings ({what}); "
                               f"delete {ckpt_root} to train from scratch, or use another run_dir")
        raw.load_trainable_state(saved["weights"])
        if cfg.ema:
            averaged = saved["ema"]
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        set_rng_state(saved["rng"])
        progress = saved["progress"]
        log(f"resuming from {ckpt_root} at epoch {progress['epoch'] + 1}, step {progress['step']}")

    def checkpoint() -> None:
        if acc.is_main_process:
            save_checkpoint(ckpt_root, progress["step"], raw.trainable_state(), optimizer.state_dict(),
                            scheduler.state_dict(), progress, ema=averaged)
        acc.wait_for_everyone()

    done = progress["stopped_early"]
    while not done and progress["epoch"] < cfg.epochs:
        epoch = progress["epoch"]
        order = epoch_order(task, cfg, seed, epoch, world)
        micro = [order[k: k + per_micro] for k in range(0, len(order), per_micro)]
        model.train()
        bar = tqdm(total=len(micro), initial=progress["micro"], desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False,
                   disable=quiet or not (cfg.progress and acc.is_main_process), dynamic_ncols=True)
        losses, seen, t0 = progress["epoch_losses"], 0, time.time()  # losses survive a mid-epoch resume
        for mi in range(progress["micro"], len(micro)):
            group_end = min((mi // accum + 1) * accum, len(micro))
            group_len = group_end - (mi // accum) * accum
            index = micro[mi][rank::world]
            if len(index) == 0:  # a short last micro-batch: every process must still take part
                index = micro[mi][-1:]
            mixed = _mix(seed, epoch, mi)
            torch.manual_seed(mixed)  # dropout inside the model
            batch = task.make_batch(index, torch.Generator().manual_seed(mixed + 1))
            sync = mi == group_end - 1
            with contextlib.nullcontext() if sync else acc.no_sync(model):
                loss = model(batch)
                acc.backward(loss / group_len)
            losses.append(float(loss.detach()))
            seen += len(micro[mi])
            if sync:
                if cfg.clip > 0:
                    acc.clip_grad_norm_(params, cfg.clip)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                progress["step"] += 1
                if averaged is not None:
                    update_average(averaged, raw.trainable_state(), cfg.ema, progress["step"])
                progress["micro"] = mi + 1
                if cfg.checkpoint_every and progress["step"] % cfg.checkpoint_every == 0 and mi + 1 < len(micro):
                    checkpoint()
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}", samples_s=f"{seen / max(time.time() - t0, 1e-9):.1f}")
        bar.close()

        model.eval()
        live = None
        if averaged is not None:  # validate (and keep, if best) the averaged weights
            live = {k: v.clone() for k, v in raw.trainable_state().items()}
            raw.load_trainable_state(averaged)
        metrics = task.validate()
        train_loss = float(np.mean(losses)) if losses else None
        if world > 1 and train_loss is not None:  # each process saw its share of every batch: report the mean
            train_loss = float(acc.reduce(torch.tensor(train_loss, device=acc.device), reduction="mean"))
        record = {"epoch": epoch + 1, "step": progress["step"], "train_loss": train_loss,
                  "lr": scheduler.get_last_lr()[0], "seconds": round(time.time() - t0, 2), **{f"val_{k}": v for k, v in metrics.items()}}
        progress["history"].append(record)
        value = metrics.get(task.monitor)
        if value is not None:
            if progress["best"] is None or value > progress["best"]:
                progress["best"], progress["best_epoch"], progress["bad_epochs"] = value, epoch + 1, 0
                if acc.is_main_process:
                    save_tensors(raw.trainable_state(), out_dir / BEST_FILE)
            else:
                progress["bad_epochs"] += 1
            if cfg.patience and progress["bad_epochs"] >= cfg.patience:
                progress["stopped_early"] = done = True
        if live is not None:
            raw.load_trainable_state(live)  # training goes on from the live weights
        log(f"epoch {epoch + 1}: " + ", ".join(f"{k} {v:.4f}" for k, v in record.items()
                                                      if isinstance(v, float) and k != "lr"))
        progress["epoch"], progress["micro"], progress["epoch_losses"] = epoch + 1, 0, []
        checkpoint()

    if progress["best"] is not None and (out_dir / BEST_FILE).exists():
        raw.load_trainable_state(load_tensors(out_dir / BEST_FILE))  # early stopping keeps the best epoch
    elif averaged is not None:
        raw.load_trainable_state(averaged)  # no validation: the average is the model
    raw.eval()
    return {"history": progress["history"], "best_epoch": progress["best_epoch"], f"best_val_{task.monitor}": progress["best"],
            "stopped_early": progress["stopped_early"], "steps": progress["step"]}

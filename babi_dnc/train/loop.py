"""`fit`: the training loop, a short loop over named phases (see the package docstring for the contract).

    setup       device, threads, optimiser and schedule, resume or seed, run files, compile, DDP
    step        forward and backward of one global batch, one host sync, the update if it is finite
    non-finite  a skipped update is logged; after `nonfinite_patience` in a row, reload the last checkpoint
    logging     metrics.jsonl, TensorBoard and the progress line every `log_every` steps
    evaluation  every `eval_every` steps: validation on process 0, "best" checkpoint, early stop
    saving      "latest" at evaluations, every `checkpoint_every` steps and every `checkpoint_minutes`
    finish      a last save and evaluation, the summary
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from ..checkpoint import has_checkpoint, load_checkpoint, save_checkpoint, unwrap, write_run_files
from ..dnc import compile_model
from ..malloc import retain_freed_memory
from .config import TrainConfig
from .distributed import DistEnv, batch_rows, init_distributed, resolve_device, shard_batch, to_device
from .log import MetricsLog
from .optim import LRSchedule, make_optimizer
from .progress import ProgressDisplay
from .rng import rng_state, seed_everything, set_rng_state
from .signals import StopFlag


@runtime_checkable
class Task(Protocol):
    """What `fit` trains on (see the package docstring)."""

    def next_batch(self, step: int) -> dict[str, Tensor]: ...

    def loss(self, model: nn.Module, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]: ...

    def evaluate(self, model: nn.Module) -> dict[str, float]: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


def _call_optional(task, name: str, *args, default=None):
    """task.name(*args) if the task has that optional hook, else `default`."""
    fn = getattr(task, name, None)
    return fn(*args) if callable(fn) else default


def _params_finite(model: nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


@dataclass
class StepResult:
    """What one training step reports (read in its one host sync)."""

    loss: float
    grad_norm: float
    finite: bool  # loss and gradient norm finite: the update was taken
    want_stop: bool  # a signal or the time limit (agreed by every process)
    want_save: bool  # checkpoint_minutes have passed since the last save (agreed by every process)


@dataclass
class Window:
    """The running sums of the current logging window."""

    loss: float = 0.0
    norm: float = 0.0
    steps: int = 0  # updates taken
    batches: int = 0  # steps, updates taken or not
    rows: int = 0  # stories or sequences
    t: float = field(default_factory=time.perf_counter)  # start; moved on by the pauses for evaluation
    stats: dict[str, Tensor] = field(default_factory=dict)  # the task's stats summed on the device


class Trainer:
    """The state of one `fit` call and its phases; `fit` drives it."""

    # ------------------------------------------------------------------------------------------ setup

    def __init__(self, model: nn.Module, task: Task, cfg: TrainConfig, run_dir: Path, config_to_save: dict,
                 vocab: Any, resume: bool):  # fmt: skip
        self.task, self.cfg, self.run_dir = task, cfg, run_dir
        self.env: DistEnv = init_distributed(cfg.device)
        self.device = resolve_device(cfg.device, self.env)
        self.threads_before = torch.get_num_threads()
        if cfg.threads:
            torch.set_num_threads(cfg.threads)  # restored by close()
        if self.device.type == "cpu":
            retain_freed_memory()  # no page faults through fresh link matrices every step (malloc.py)
        self.amp = cfg.amp and self.device.type == "cuda"
        self.raw = unwrap(model).to(self.device)
        self.raw.train()
        self.optimizer = make_optimizer(self.raw.parameters(), cfg)
        self.schedule = LRSchedule(cfg)
        self.counters = {"nonfinite": 0, "streak": 0, "reloads": 0, "evals": 0, "best_error": math.inf,
                         "best_step": -1, "elapsed": 0.0}  # fmt: skip
        self.step, self.last_metrics = 0, {}
        self.resumed = resume and has_checkpoint(run_dir, "latest")
        if self.resumed:
            self._restore()
        else:
            seed_everything(cfg.seed)
        if self.env.is_main:  # on resume too: config.json then holds the settings the run continues with
            write_run_files(run_dir, config_to_save, vocab)
        if cfg.compile:  # the model's time step, not the unrolled loop (see dnc.compile_model)
            compile_model(self.raw)
        self.forward_model: nn.Module = self.raw
        if self.env.active:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.forward_model = DistributedDataParallel(self.raw, device_ids=device_ids)
        self.log = MetricsLog(run_dir, self.env.is_main, cfg.tensorboard, self.step if self.resumed else None)
        self.unit = getattr(task, "unit", "sequences")
        self.display = ProgressDisplay(cfg.progress and self.env.is_main, cfg.max_steps, self.step, self.unit)
        self.params = [p for p in self.raw.parameters() if p.requires_grad]
        self.last_save = time.perf_counter()
        self.t_start, self.elapsed_before = time.perf_counter(), self.counters["elapsed"]
        self.window = Window()
        self.evaluated_at = self.saved_at = -1

    def _restore(self) -> None:
        """Continue from RUN/checkpoints/latest: weights, optimiser, schedule, RNG, task, counters."""
        ckpt = load_checkpoint(self.run_dir, "latest", model=self.raw, map_location="cpu")
        trainer = ckpt.trainer
        self.optimizer.load_state_dict(trainer["optimizer"])
        self.schedule.load_state_dict(trainer["scheduler"])
        set_rng_state(trainer["rng"])
        self.task.load_state_dict(trainer["task"])
        self.counters.update(trainer["counters"])
        self.step, self.last_metrics = int(trainer["step"]), dict(ckpt.meta.get("metrics", {}))

    def begin(self) -> None:
        """The start line of the log and the first "latest" checkpoint of a fresh run."""
        parameters = sum(p.numel() for p in self.params)
        if self.env.is_main and not self.resumed:
            self.log.log(0, "start", parameters=parameters, device=str(self.device), world_size=self.env.world_size)
        if not self.resumed:
            self.save("latest")  # the last good checkpoint for the non-finite guard, and a loadable run at once
        self.display.line(
            f"{'resuming' if self.resumed else 'training'} {self.run_dir} at step {self.step}/{self.cfg.max_steps} "
            f"on {self.device}" + (f" x{self.env.world_size}" if self.env.active else "")
            + f" ({parameters:,} parameters)"
        )
        self.window = Window()  # the speed counts from here

    def elapsed(self) -> float:
        """Training time of the run so far, all sessions."""
        return self.elapsed_before + time.perf_counter() - self.t_start

    # ------------------------------------------------------------------------------------------- step

    def train_step(self, stop_flag: StopFlag) -> StepResult:
        """Forward and backward of the global batch `step` (this process's rows), then the update if the
        loss and gradient norm are finite. Under DDP one collective weights every process by its answer
        tokens and agrees on non-finite losses and on stop and save requests."""
        cfg, env = self.cfg, self.env
        global_batch = self.task.next_batch(self.step)
        rows = batch_rows(global_batch)
        batch = to_device(shard_batch(global_batch, env), self.device)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            loss, stats = self.task.loss(self.forward_model, batch)
        loss = loss.float()
        want_stop = stop_flag.requested or (cfg.max_minutes is not None and self.elapsed() > 60 * cfg.max_minutes)
        since_save = time.perf_counter() - self.last_save
        want_save = cfg.checkpoint_minutes is not None and since_save > 60 * cfg.checkpoint_minutes
        backward_loss, loss_finite = loss, torch.isfinite(loss)
        if env.active:
            tokens = stats.get("tokens")
            local = (tokens if tokens is not None else torch.ones((), device=self.device)).float().reshape(())
            flags = torch.tensor([float(want_stop), float(want_save)], device=self.device)
            shared = torch.cat([local.view(1), (~loss_finite).float().view(1), flags])
            dist.all_reduce(shared)
            backward_loss = loss * (env.world_size * local / shared[0].clamp(min=1.0))
            loss_finite = shared[1] == 0
        backward_loss.backward()
        max_norm = cfg.clip_grad_norm if cfg.clip_grad_norm else math.inf
        norm = torch.nn.utils.clip_grad_norm_(self.params, max_norm) if self.params else torch.zeros(())
        checks = [loss.detach(), norm.float().to(loss.device), loss_finite.float()]
        if env.active:
            checks += [shared[2], shared[3]]
        values = torch.stack(checks).tolist()  # the one host sync per step
        if env.active:  # every process stops at the same step
            want_stop, want_save = values[3] > 0, values[4] > 0
        else:
            want_stop = want_stop or stop_flag.requested
        result = StepResult(values[0], values[1], values[2] > 0 and math.isfinite(values[1]), want_stop, want_save)
        if result.finite:
            self.optimizer.step()
            self.counters["streak"] = 0
            self._add_to_window(result, stats)
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        self.window.rows += rows
        self.window.batches += 1
        return result

    def _add_to_window(self, result: StepResult, stats: dict[str, Tensor]) -> None:
        w = self.window
        w.loss += result.loss
        w.norm += result.grad_norm
        w.steps += 1
        for key, value in stats.items():
            value = value.detach().float()
            w.stats[key] = w.stats[key] + value if key in w.stats else value

    # ------------------------------------------------------------------------------------- non-finite

    def skip_nonfinite(self, result: StepResult) -> None:
        """Log a skipped update; after `nonfinite_patience` in a row, reload the model and optimiser from
        the last good checkpoint and lower the learning rate by `lr_backoff`."""
        c, step = self.counters, self.step
        c["nonfinite"] += 1
        c["streak"] += 1
        self.log.log(step, "nonfinite", loss=result.loss, grad_norm=result.grad_norm, count=c["nonfinite"],
                     streak=c["streak"])  # fmt: skip
        self.display.line(f"[yellow]step {step}: non-finite loss or gradient, update skipped "
                          f"({c['streak']} in a row, {c['nonfinite']} in all)")  # fmt: skip
        if c["streak"] < self.cfg.nonfinite_patience:
            return
        ckpt = load_checkpoint(self.run_dir, "latest", model=self.raw, map_location="cpu")
        self.optimizer.load_state_dict(ckpt.trainer["optimizer"])
        self.schedule.lr_scale *= self.cfg.lr_backoff
        c["streak"] = 0
        c["reloads"] += 1
        self.log.log(step, "reload", from_step=ckpt.step, lr_scale=self.schedule.lr_scale)
        self.display.line(f"[yellow]step {step}: reloaded the checkpoint of step {ckpt.step}, "
                          f"learning rate x{self.schedule.lr_scale:g}")  # fmt: skip

    # ---------------------------------------------------------------------------------------- logging

    def log_progress(self, lr: float) -> None:
        """Every `log_every` steps (and at the last): the window's means to metrics.jsonl and TensorBoard,
        and the progress line; in between, the running figures on a live progress bar."""
        if self.step % self.cfg.log_every == 0 or self.step == self.cfg.max_steps:
            self._log_window(lr)
        elif self.display.live:
            w = self.window
            speed = w.rows / max(time.perf_counter() - w.t, 1e-9)
            loss_text = f"{w.loss / w.steps:.4f}" if w.steps else self.display.fields["loss"]
            self.display.update(self.step, loss=loss_text, speed=f"{speed:.1f} {self.unit}/s",
                                extra=self._task_fields())  # fmt: skip

    def _log_window(self, lr: float) -> None:
        w, unit, step = self.window, self.unit, self.step
        now = time.perf_counter()
        speed = w.rows / max(now - w.t, 1e-9)
        n = max(w.steps, 1)
        values = {"loss": w.loss / n, "grad_norm": w.norm / n, "lr": lr, f"{unit}_per_s": speed}
        sums = {k: v.item() for k, v in w.stats.items()}
        if "correct" in sums and sums.get("tokens"):
            values["accuracy"] = sums["correct"] / sums["tokens"]
        values.update({k: v / n for k, v in sums.items() if k not in ("correct", "tokens")})
        self.log.log(step, "train", **values, nonfinite=self.counters["nonfinite"], elapsed_s=round(self.elapsed(), 2))
        self.display.update(step, loss=f"{values['loss']:.4f}" if w.steps else "n/a",
                            speed=f"{speed:.1f} {unit}/s", extra=self._task_fields())  # fmt: skip
        if not self.display.live and self.display.enabled:
            eta = (self.cfg.max_steps - step) * (now - w.t) / max(w.batches, 1)
            self.display.line(f"step {step}/{self.cfg.max_steps} loss {values['loss']:.4f} {speed:.1f} {unit}/s "
                              f"val {self.display.fields['val']} ETA {eta / 60:.1f} min")  # fmt: skip
        self.window = Window(t=now)

    def _task_fields(self) -> str:
        fields = _call_optional(self.task, "progress_fields", default={}) or {}
        return " ".join(f"{k} {v}" for k, v in fields.items())

    # ------------------------------------------------------------------------------------- evaluation

    def evaluate(self) -> dict:
        """Validation on process 0, metrics shared with every process; updates "best"."""
        metrics: dict = {}
        if self.env.is_main:
            self.raw.eval()
            with torch.no_grad(), torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                metrics = {k: float(v) for k, v in self.task.evaluate(self.raw).items()}
            self.raw.train()
        if self.env.active:
            box = [metrics]
            dist.broadcast_object_list(box, src=0)
            metrics = box[0]
        if "error" not in metrics:
            raise ValueError("task.evaluate() must return a dict with an 'error' entry")
        c, step = self.counters, self.step
        self.last_metrics = metrics
        self.evaluated_at = step
        c["evals"] += 1
        _call_optional(self.task, "on_evaluate", metrics)
        previous_best = c["best_error"], c["best_step"]
        is_best = metrics["error"] < c["best_error"]  # False for NaN
        if is_best:
            c["best_error"], c["best_step"] = metrics["error"], step
        self.log.log(step, "eval", **metrics, best_error=c["best_error"])
        summary = _call_optional(self.task, "summary", metrics, default=f"error {metrics['error']:.2%}")
        self.display.line(f"step {step}: {summary}" + ("  [green](best)" if is_best else ""))
        self.display.update(step, val=f"{metrics['error']:.2%} (best {c['best_error']:.2%})")
        if self.env.is_main and self.cfg.image_every and c["evals"] % self.cfg.image_every == 1 % self.cfg.image_every:
            self._log_memory_image()
        if is_best and not self.save("best"):
            c["best_error"], c["best_step"] = previous_best
        return metrics

    def _log_memory_image(self) -> None:
        self.raw.eval()
        with torch.no_grad():
            image = _call_optional(self.task, "memory_image", self.raw)
        self.raw.train()
        if image is not None:
            self.log.image("memory", image, self.step)

    def evaluate_if_due(self) -> bool:
        """Evaluate every `eval_every` steps; True when the task then asks to stop (solved)."""
        if not (self.cfg.eval_every and self.step % self.cfg.eval_every == 0):
            return False
        return bool(_call_optional(self.task, "should_stop", self.evaluate(), default=False))

    # ----------------------------------------------------------------------------------------- saving

    def save(self, tag: str) -> bool:
        """Save checkpoint `tag` on process 0 unless the weights are not finite; all processes wait."""
        ok = True
        if tag == "latest":
            self.last_save = time.perf_counter()
        if self.env.is_main:
            if _params_finite(self.raw):
                self.counters["elapsed"] = self.elapsed()
                meta = {"step": self.step, "metrics": self.last_metrics, "elapsed_s": self.counters["elapsed"]}
                save_checkpoint(self.run_dir, tag, self.raw, self.trainer_state(), meta)
            else:
                ok = False
                self.log.log(self.step, "refused_save", tag=tag, reason="non-finite weights")
                self.display.line(f"[red]step {self.step}: weights are not finite, checkpoint '{tag}' not saved")
        if self.env.active:
            dist.barrier()
        return ok

    def trainer_state(self) -> dict:
        """Everything besides the weights that resuming needs (trainer.pt)."""
        return {
            "step": self.step,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.schedule.state_dict(),
            "rng": rng_state(),
            "task": self.task.state_dict(),
            "counters": dict(self.counters),
        }

    def save_if_due(self, want_save: bool) -> None:
        """"latest" every `checkpoint_every` steps, after every evaluation and when the clock asks."""
        every = self.cfg.checkpoint_every and self.step % self.cfg.checkpoint_every == 0
        if (every or self.evaluated_at == self.step or want_save) and self.save("latest"):
            self.saved_at = self.step

    # ----------------------------------------------------------------------------------------- finish

    def finish(self, interrupted: bool) -> None:
        """Save the final state (before the final evaluation, so it is that of an unbroken run) and
        evaluate it, unless that already happened at this step or a signal asked to stop."""
        if self.saved_at != self.step:
            self.save("latest")
        if self.evaluated_at != self.step and not interrupted:
            self.evaluate()

    def close(self, stopped: bool, stop_reason: str) -> dict:
        """Log how the run ended, release the log and the display, restore the threads; the summary."""
        self.counters["elapsed"] = self.elapsed()
        if stopped:
            self.log.log(self.step, "stopped", reason=stop_reason)
            self.display.line(f"stopped at step {self.step} ({stop_reason}); resume with --resume")
        self.display.close()
        self.log.close()
        torch.set_num_threads(self.threads_before)
        c = self.counters
        return {"run_dir": str(self.run_dir), "step": self.step, "best_error": c["best_error"],
                "best_step": c["best_step"], "metrics": self.last_metrics, "stopped": stopped,
                "stop_reason": stop_reason, "nonfinite": c["nonfinite"], "reloads": c["reloads"],
                "elapsed_s": c["elapsed"]}  # fmt: skip


def fit(
    model: nn.Module,
    task: Task,
    train_config: TrainConfig,
    run_dir: str | Path,
    config_to_save: dict,
    vocab: Any = None,
    resume: bool = False,
) -> dict:
    """Train `model` on `task`; see the package docstring for the protocol, the files and the summary."""
    run = Trainer(model, task, train_config, Path(run_dir), config_to_save, vocab, resume)  # setup
    run.begin()
    stopped, stop_reason = False, ""
    with StopFlag() as stop_flag:
        while run.step < train_config.max_steps:
            lr = run.schedule.apply(run.optimizer, run.step)
            result = run.train_step(stop_flag)  # step
            if not result.finite:
                run.skip_nonfinite(result)  # non-finite
            run.log_progress(lr)  # logging
            t_pause = time.perf_counter()
            solved = run.evaluate_if_due()  # evaluation
            run.save_if_due(result.want_save)  # saving
            run.window.t += time.perf_counter() - t_pause  # the speed counts training time only
            if result.want_stop:
                stopped, stop_reason = True, stop_flag.reason or "time limit"
                break
            if solved:  # an early stop the task asked for: the run is complete, not interrupted
                stop_reason = "solved"
                run.log.log(run.step, "solved")
                run.display.line(f"step {run.step}: solved, stopping early")
                break
        run.finish(interrupted=stop_flag.requested)  # finish
    return run.close(stopped, stop_reason)

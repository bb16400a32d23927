"""`fit`: the training loop, a short loop over named phases (see the package docstring for the contract).

    setup       device, threads, optimiser and schedule, resume or seed, run files, compile, DDP
    step        forward and backward of one global batch, one host sync, the update if it is finite
    non-finite  a skipped update is logged; after `nonfinite_patience` in a row, reload the last checkpoint;
                after `nonfinite_reloads` reloads in a row without progress, give up (TrainingDiverged)
    logging     metrics.jsonl, TensorBoard and the progress line every `log_every` steps
    evaluation  every `eval_every` steps: validation on process 0, "best" checkpoint, early stop
    saving      "latest" at evaluations, every `checkpoint_every` steps and every `checkpoint_minutes`
    finish      a last save and evaluation, the summary
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from rich.text import Text
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from ..checkpoint import Checkpoint, load_weights, save_checkpoint, unwrap, write_run_files
from ..cuda_graphs import install_cuda_graphs
from ..dnc import compile_model
from ..errors import CheckpointError, TrainingDiverged, UserError
from ..malloc import retain_freed_memory
from ..run_folder import open_run_folder, resume_checkpoint
from .config import TrainConfig
from .distributed import DistEnv, batch_rows, init_distributed, resolve_device, shard_batch, to_device
from .log import MetricsLog
from .optim import LRSchedule, make_optimizer
from .progress import ProgressDisplay, slow_start_note
from .rng import rng_state, seed_everything, set_rng_state
from .signals import StopFlag
from .task import Task


def _weights_norm(model: nn.Module) -> float:
    """The global L2 norm of the parameters, in float64 (no overflow of finite weights); NaN when one is
    not finite."""
    if not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
        return math.nan
    return math.sqrt(sum(float(p.detach().double().square().sum()) for p in model.parameters()))


@dataclass
class StepResult:
    """What one training step reports (read in its one host sync)."""

    loss: float
    grad_norm: float
    finite: bool  # loss and gradient norm finite: the update was taken
    want_stop: bool  # a signal or the time limit (agreed by every process)
    want_save: bool  # checkpoint_minutes have passed since the last save (agreed by every process)


@dataclass
class Counters:
    """The Trainer's running counts; saved in trainer.pt as a dict under these names."""

    nonfinite: int = 0  # updates skipped for a non-finite loss or gradient, all told
    streak: int = 0  # ... in a row
    reloads: int = 0  # reloads of the last good checkpoint after `nonfinite_patience` in a row
    reloads_in_a_row: int = 0  # ... without a checkpoint saved in between
    evals: int = 0
    best_error: float = math.inf
    best_step: int = -1
    elapsed: float = 0.0  # seconds of training, resumed sessions included

    @classmethod
    def from_dict(cls, saved: dict) -> Counters:
        return cls(**{f.name: saved[f.name] for f in dataclasses.fields(cls) if f.name in saved})


@dataclass
class Agreement:
    """What the processes of a DDP run sum in the one all_reduce of a step: the answer tokens (to weight each
    process's loss), the non-finite losses and the requests to stop and to save."""

    tokens: Tensor
    nonfinite: Tensor
    want_stop: Tensor
    want_save: Tensor

    def all_reduce(self) -> Agreement:
        packed = torch.stack([self.tokens, self.nonfinite, self.want_stop, self.want_save])
        dist.all_reduce(packed)
        return Agreement(*packed.unbind())


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
                 checkpoint: Checkpoint | None, notes: list[str]):
        self.task, self.cfg, self.run_dir, self.notes = task, cfg, run_dir, notes
        self.env: DistEnv = init_distributed(cfg.device)
        self.device = resolve_device(cfg.device, self.env)
        self.threads_before = torch.get_num_threads()
        if self.device.type == "cpu":
            retain_freed_memory()  # no page faults through fresh link matrices every step (malloc.py)
        self.amp = cfg.amp and self.device.type == "cuda"
        self.raw = unwrap(model).to(self.device)
        self.raw.train()
        self.optimizer = make_optimizer(self.raw.parameters(), cfg)
        self.schedule = LRSchedule(cfg)
        self.counters = Counters()
        self.step, self.last_metrics = 0, {}
        self.saved_norm: float | None = None  # the weights' norm at the last save (exploded weights are refused)
        self.updated_since_reload = False
        self.resumed = checkpoint is not None
        if checkpoint is not None:
            self._restore(checkpoint)
            if self.step > cfg.max_steps:  # before config.json is rewritten with the smaller number
                raise UserError(f"{run_dir} is at step {self.step} already, past --max-steps {cfg.max_steps}: pass "
                                f"a --max-steps of {self.step} or more to resume it, or leave --max-steps out.")
        else:
            seed_everything(cfg.seed)
        if self.env.is_main:  # on resume too: config.json then holds the settings the run continues with
            write_run_files(run_dir, config_to_save, task.run_files())
        if cfg.compile:  # the model's time step, not the unrolled loop (see dnc.compile_model)
            compile_model(self.raw)
        self.graphs = install_cuda_graphs(self.raw) if cfg.cuda_graphs else None  # None off a single GPU
        self.forward_model: nn.Module = self.raw
        if self.env.active:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.forward_model = DistributedDataParallel(self.raw, device_ids=device_ids)
        self.log = MetricsLog(run_dir, self.env.is_main, cfg.tensorboard, self.step if self.resumed else None)
        if self.log.note:  # what resuming dropped from the log, shown by begin()
            self.notes.append(self.log.note)
        self.unit = task.unit
        self.display = ProgressDisplay(cfg.progress, cfg.max_steps, self.step, self.unit, main=self.env.is_main)
        self.params = [p for p in self.raw.parameters() if p.requires_grad]
        self.last_save = time.perf_counter()
        self.t_start, self.elapsed_before = time.perf_counter(), self.counters.elapsed
        self.window = Window()
        self.evaluated_at = self.saved_at = -1
        self.released = False

    def _restore(self, ckpt: Checkpoint) -> None:
        """Continue from a checkpoint (open_run_folder chose it): weights, optimiser, schedule, RNG, task,
        counters; CheckpointError when it does not fit this model, optimiser or task."""
        try:
            trainer = ckpt.trainer or {}
            load_weights(self.raw, ckpt.weights, source=ckpt.path)
            self.optimizer.load_state_dict(trainer["optimizer"])
            self.schedule.load_state_dict(trainer["scheduler"])
            set_rng_state(trainer["rng"])
            self.task.load_state_dict(trainer["task"])
            self.counters = Counters.from_dict(trainer["counters"])
            self.step, self.last_metrics = int(trainer["step"]), dict(ckpt.meta.get("metrics", {}))
        except (KeyError, ValueError, TypeError, IndexError, RuntimeError) as e:
            raise CheckpointError(f"checkpoint {ckpt.path} does not fit this run ({type(e).__name__}: "
                                  f"{str(e)[:120]}): pass --restart to start over.") from None
        self.saved_norm = _weights_norm(self.raw)

    def begin(self) -> None:
        """The first "latest" checkpoint of a fresh run, the start line of the log, the notes of
        open_run_folder and where the run starts."""
        if self.cfg.threads:
            torch.set_num_threads(self.cfg.threads)  # restored by release()
        parameters = sum(p.numel() for p in self.params)
        if not self.resumed:
            self.save("latest")  # the last good checkpoint for the non-finite guard, and a loadable run at once
            if self.env.is_main:
                self.log.log(0, "start", parameters=parameters, device=str(self.device),
                             world_size=self.env.world_size)
        for note in self.notes:
            self.display.note(note)
        where = (f" {self.run_dir} at step {self.step}/{self.cfg.max_steps} on {self.device}"
                 + (f" x{self.env.world_size}" if self.env.active else "") + f" ({parameters:,} parameters)")
        if self.resumed:
            self.display.note("resuming" + where, style="")
        else:
            self.display.line("training" + where)
        slow = slow_start_note(self.raw, self.cfg.compile, self.device)
        if slow:
            self.display.line(slow)
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
            flag = lambda on: torch.tensor(float(on), device=self.device)  # noqa: E731
            agreed = Agreement(local, (~loss_finite).float(), flag(want_stop), flag(want_save)).all_reduce()
            backward_loss = loss * (env.world_size * local / agreed.tokens.clamp(min=1.0))
            loss_finite = agreed.nonfinite == 0
        backward_loss.backward()
        max_norm = cfg.clip_grad_norm if cfg.clip_grad_norm else math.inf
        norm = torch.nn.utils.clip_grad_norm_(self.params, max_norm) if self.params else torch.zeros(())
        checks = {"loss": loss.detach(), "norm": norm.float().to(loss.device), "finite": loss_finite.float()}
        if env.active:
            checks |= {"want_stop": agreed.want_stop, "want_save": agreed.want_save}
        synced = dict(zip(checks, torch.stack(list(checks.values())).tolist(), strict=True))  # the one host sync
        if env.active:  # every process stops at the same step
            want_stop, want_save = synced["want_stop"] > 0, synced["want_save"] > 0
        else:
            want_stop = want_stop or stop_flag.requested
        finite = synced["finite"] > 0 and math.isfinite(synced["norm"])
        result = StepResult(synced["loss"], synced["norm"], finite, want_stop, want_save)
        if result.finite:
            self.optimizer.step()
            self.counters.streak = 0
            self.updated_since_reload = True
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
        the last good checkpoint and lower the learning rate by `lr_backoff`; after `nonfinite_reloads`
        such reloads with no checkpoint saved from a taken update in between, give up."""
        c, step, patience = self.counters, self.step, self.cfg.nonfinite_patience
        c.nonfinite += 1
        c.streak += 1
        self.log.log(step, "nonfinite", loss=result.loss, grad_norm=result.grad_norm, count=c.nonfinite,
                     streak=c.streak)
        if c.streak == 1:
            self.display.note(f"step {step}: non-finite loss or gradient, update skipped ({c.nonfinite} in all; "
                              f"after {patience} in a row the last checkpoint is reloaded)")
        if c.streak < patience:
            return
        if c.reloads_in_a_row >= self.cfg.nonfinite_reloads:
            self._give_up()
        ckpt, _ = resume_checkpoint(self.run_dir)  # latest, else best (latest is missing after a resume from best)
        load_weights(self.raw, ckpt.weights, source=ckpt.path)
        self.optimizer.load_state_dict(ckpt.trainer["optimizer"])
        self.schedule.lr_scale *= self.cfg.lr_backoff
        self.saved_norm = _weights_norm(self.raw)
        c.streak = 0
        c.reloads += 1
        c.reloads_in_a_row += 1
        self.updated_since_reload = False
        self.log.log(step, "reload", from_step=ckpt.step, lr_scale=self.schedule.lr_scale)
        self.display.note(f"step {step}: {patience} non-finite steps in a row: reloaded the checkpoint of step "
                          f"{ckpt.step}, learning rate x{self.schedule.lr_scale:g} (reload {c.reloads_in_a_row} "
                          f"of {self.cfg.nonfinite_reloads} before giving up)")

    def _give_up(self) -> None:
        """The guard's last word: log it and raise TrainingDiverged (the last good checkpoint stays)."""
        c, lr = self.counters, self.cfg.lr * self.schedule.lr_scale
        self.log.log(self.step, "diverged", reloads=c.reloads_in_a_row, lr=lr)
        raise TrainingDiverged(
            f"training diverged at step {self.step}: the loss or gradient stayed non-finite after "
            f"{c.reloads_in_a_row} reloads of the last good checkpoint (learning rate lowered to {lr:.3g}), "
            f"so lower --lr (it is {self.cfg.lr:g}) or set --clip-norm and continue with --resume from the "
            "checkpoint kept in checkpoints/latest."
        )

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
                                extra=self._task_fields())

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
        if not w.steps:  # every update of the window was skipped: no loss to report
            values = {"lr": lr, f"{unit}_per_s": speed}
        values["skipped"] = w.batches - w.steps
        self.log.log(step, "train", **values, nonfinite=self.counters.nonfinite, elapsed_s=round(self.elapsed(), 2))
        self.display.update(step, loss=f"{values['loss']:.4f}" if w.steps else "n/a",
                            speed=f"{speed:.1f} {unit}/s", extra=self._task_fields())
        if not self.display.live and self.display.enabled:
            eta = (self.cfg.max_steps - step) * (now - w.t) / max(w.batches, 1)
            if self.cfg.max_minutes:  # the time limit comes first
                eta = max(min(eta, self.cfg.max_minutes * 60 - self.elapsed()), 0.0)
            loss = f"{values['loss']:.4f}" if w.steps else "n/a (all updates skipped)"
            self.display.line(f"step {step}/{self.cfg.max_steps} loss {loss} {speed:.1f} {unit}/s "
                              f"val {self.display.fields['val']} ETA {eta / 60:.1f} min")
        self.window = Window(t=now)

    def _task_fields(self) -> str:
        fields = self.task.progress_fields()
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
        c.evals += 1
        self.task.on_evaluate(metrics)
        previous_best = c.best_error, c.best_step
        is_best = metrics["error"] < c.best_error  # False for NaN
        if is_best:
            c.best_error, c.best_step = metrics["error"], step
        self.log.log(step, "eval", **metrics, best_error=c.best_error)
        summary = self.task.summary(metrics)
        self.display.line(Text.assemble(f"step {step}: {summary}", ("  (best)" if is_best else "", "green")))
        now, best = (self.task.format_error(e) for e in (metrics["error"], c.best_error))
        self.display.update(step, val=f"{now} (best {best})")
        if self.env.is_main and self.cfg.image_every and c.evals % self.cfg.image_every == 1 % self.cfg.image_every:
            self._log_memory_image()
        if is_best and not self.save("best"):
            c.best_error, c.best_step = previous_best
        return metrics

    def _log_memory_image(self) -> None:
        self.raw.eval()
        with torch.no_grad():
            image = self.task.memory_image(self.raw)
        self.raw.train()
        if image is not None:
            self.log.image("memory", image, self.step)

    def evaluate_if_due(self) -> bool:
        """Evaluate every `eval_every` steps; True when the task then asks to stop (solved)."""
        if not (self.cfg.eval_every and self.step % self.cfg.eval_every == 0):
            return False
        return bool(self.task.should_stop(self.evaluate()))

    # ----------------------------------------------------------------------------------------- saving

    def save(self, tag: str) -> bool:
        """Save checkpoint `tag` on process 0 unless the weights went bad (not finite, or their norm grew
        more than `max_weight_growth` times since the last save); all processes wait. True if saved."""
        if tag == "latest":
            self.last_save = time.perf_counter()
        norm = _weights_norm(self.raw)
        problem = self._weights_problem(norm)
        if problem is not None:
            self.log.log(self.step, "refused_save", tag=tag, reason=problem)
            self.display.note(f"step {self.step}: {problem}: checkpoint '{tag}' not saved", style="red")
        else:
            self.saved_norm = norm
            if tag == "latest" and self.updated_since_reload:
                self.counters.reloads_in_a_row = 0  # training moved on from the last reload
        if problem is None and self.env.is_main:
            self.counters.elapsed = self.elapsed()
            meta = {"step": self.step, "metrics": self.last_metrics, "elapsed_s": self.counters.elapsed}
            save_checkpoint(self.run_dir, tag, self.raw, self.trainer_state(), meta)
        if self.env.active:
            dist.barrier()
        return problem is None

    def _weights_problem(self, norm: float) -> str | None:
        """Why weights of global norm `norm` may not be saved, or None."""
        if not math.isfinite(norm):
            return "weights are not finite"
        growth, before = self.cfg.max_weight_growth, self.saved_norm
        if growth and before and norm > growth * before:
            return f"weights exploded (norm {norm:.3g}, {norm / before:.3g} times that of the last checkpoint)"
        return None

    def trainer_state(self) -> dict:
        """Everything besides the weights that resuming needs (trainer.pt)."""
        return {
            "step": self.step,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.schedule.state_dict(),
            "rng": rng_state(),
            "task": self.task.state_dict(),
            "counters": dataclasses.asdict(self.counters),
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
        self.counters.elapsed = self.elapsed()
        interrupted = stopped and stop_reason != "time limit"
        if self.graphs is not None:  # how the training steps ran: replayed graphs, or eager and why
            self.log.log(self.step, "cuda_graphs", **self.graphs.stats, failed=self.graphs.failed)
        if stopped:
            self.log.log(self.step, "stopped", reason=stop_reason)
        if interrupted:
            self.display.note(f"stopped by {stop_reason} at step {self.step}, saved: continue with --resume")
        elif stopped:
            self.display.note(f"time limit of {self.cfg.max_minutes:g} minutes reached at step {self.step}, saved: "
                              "--resume with a larger --max-minutes trains on", style="")
        if self.env.active:
            dist.barrier()  # no process leaves while another still exchanges gradients or checkpoints
        self.release()
        c = self.counters
        return {"run_dir": str(self.run_dir), "step": self.step, "best_error": c.best_error,
                "best_step": c.best_step, "metrics": self.last_metrics, "stopped": stopped,
                "interrupted": interrupted, "stop_reason": stop_reason, "nonfinite": c.nonfinite,
                "reloads": c.reloads, "elapsed_s": c.elapsed,
                "cuda_graphs": dict(self.graphs.stats) if self.graphs else None}

    def release(self) -> None:
        """Close the display and the log, restore the threads (once; also after an error)."""
        if self.released:
            return
        self.released = True
        self.forward_model = self.raw  # the DDP wrapper goes now, while its process group is alive
        self.display.close()
        self.log.close()
        torch.set_num_threads(self.threads_before)


def fit(
    model: nn.Module,
    task: Task,
    train_config: TrainConfig,
    run_dir: str | Path,
    config_to_save: dict,
    resume: bool = False,
    restart: bool = False,
) -> dict:
    """Train `model` on `task`; see the package docstring for the protocol, the files and the summary.

    The run folder is this call's alone while it runs (run_folder.py): resume continues from its newest
    checkpoint that loads, restart deletes the run it holds, neither refuses a folder that holds a run.
    """
    if not isinstance(task, Task):
        raise TypeError(f"fit trains on a train.Task, not {type(task).__name__}")
    train_config.check()
    run_dir = Path(run_dir)
    env = init_distributed(train_config.device)
    barrier = dist.barrier if env.active else (lambda: None)
    with open_run_folder(run_dir, resume, restart, env.is_main, barrier) as (checkpoint, notes):
        run = Trainer(model, task, train_config, run_dir, config_to_save, checkpoint, notes)  # setup
        try:
            return _train(run)
        finally:
            run.release()


def _train(run: Trainer) -> dict:
    """The loop over the phases, from `begin` to `close`."""
    run.begin()
    stopped, stop_reason, max_steps = False, "", run.cfg.max_steps
    with StopFlag() as stop_flag:
        while run.step < max_steps:
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

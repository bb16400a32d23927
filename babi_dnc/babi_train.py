"""`babi-dnc train` for bAbI: the runs (one, or seed-N), how each starts in its folder (fresh, resume, restart)
and with which settings, its data loaded once per setting, then `fit`.

    summaries = train_babi(models.preset("small"), DataConfig(tasks="1"), TRAIN_PRESETS["small"], "runs/dnc",
                           task_config=TASK_PRESETS["small"])

On resume a run keeps its saved settings: those declared `option(..., fixed=True)` (the model, the data, the
seed) refuse another value; the others given again (e.g. --max-steps, --eval-stories) replace the saved ones.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch.distributed as dist

from .babi_task import BabiTaskConfig
from .checkpoint import CONFIG, VOCAB, config_section, read_config
from .config import fixed_flags, flags
from .data import parse_task_spec
from .data.config import DataConfig, load_data
from .errors import CheckpointError, UserError
from .models import ModelConfig, build_model
from .run_folder import check_seeds_folder, start_mode
from .runs import read_vocab
from .train import TrainConfig, close_distributed, fit, init_distributed, seed_everything

SECTIONS = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig, "task": BabiTaskConfig}
QUIET_ON_RESUME = {"progress", "data_dir", "threads", "device"}  # how to run, not what: no note when they change


class ResumeNote(UserWarning):
    """A resumed run takes settings given anew (e.g. --max-steps): which, and what they were."""


def run_config(model: ModelConfig, data: DataConfig, train: TrainConfig, task: BabiTaskConfig,
               training_data: list[str]) -> dict:
    """What fit writes to config.json for a bAbI run; training_data: how its training stories differ from the
    set's own files (BabiData.training_changes), so that chat and reports can say it without the data."""
    return {"kind": "babi", "model": model.to_dict(), "data": data.to_dict(), "train": train.to_dict(),
            "task": task.to_dict(), "training_data": list(training_data)}


@dataclass
class RunPlan:
    """One run of `train_babi`: its folder, how it starts (run_folder.start_mode) and its configs."""

    run_dir: Path
    mode: str
    model: ModelConfig
    data: DataConfig
    train: TrainConfig
    task: BabiTaskConfig


def saved_configs(run_dir: Path) -> tuple[ModelConfig, DataConfig, TrainConfig, BabiTaskConfig]:
    """The configs a bAbI run was trained with (CheckpointError if unreadable)."""
    if not (run_dir / CONFIG).is_file():
        raise CheckpointError(f"{run_dir / CONFIG} is missing, so the run cannot be resumed: restore it, or pass "
                              "--restart to start over.")
    saved = read_config(run_dir)
    return (config_section(saved, "model", ModelConfig, run_dir), config_section(saved, "data", DataConfig, run_dir),
            config_section(saved, "train", TrainConfig, run_dir), BabiTaskConfig.from_saved(saved, run_dir))


def _check_fixed(plan: RunPlan, given: dict) -> None:
    """UserError when an option given for a resumed run differs from a setting the run keeps."""
    saved, names = {}, {}
    for section, cls in SECTIONS.items():
        for field, flag in fixed_flags(cls).items():
            saved[field], names[field] = getattr(getattr(plan, section), field), flag
    same = {"tasks": lambda a, b: parse_task_spec(a) == parse_task_spec(b)}
    differ = [k for k in names
              if given.get(k) is not None and not same.get(k, str.__eq__)(str(given[k]), str(saved[k]))]
    if differ:
        was = " ".join(f"{names[k]} {'(none)' if saved[k] is None else saved[k]}" for k in differ)
        now = " ".join(f"{names[k]} {given[k]}" for k in differ)
        raise UserError(f"{plan.run_dir} was trained with {was}, not {now}: leave {now} out to resume it as it is, "
                        "or pass --restart to start over with it.")


def _check_preset(plan: RunPlan, given: dict, preset_model: ModelConfig) -> None:
    """UserError when --preset is given for a resumed run whose model is not the preset's (with the model
    options given): the preset would otherwise be silently ignored."""
    ours, theirs = plan.model.to_dict(), preset_model.to_dict()
    if given.get("preset") and ours != theirs:
        differ = [f"{k} {ours.get(k)}, not {theirs.get(k)}" for k in sorted(set(ours) | set(theirs))
                  if ours.get(k) != theirs.get(k)]
        shown = "; ".join(differ[:3]) + ("; ..." if len(differ) > 3 else "")
        raise UserError(f"{plan.run_dir} was trained with another model than --preset {given['preset']}'s ({shown}): "
                        "leave --preset out to resume it as it is, or pass --restart to start over with it.")


def _check_saved_vocab(data, run_dir: Path) -> None:
    """CheckpointError when a resumed run's vocab.json lacks words of its training files (it was changed, or
    the data is other than the run's): its weights would be read against the wrong words."""
    unknown = data.unknown.get("train")
    if unknown:
        shown = ", ".join(unknown[:5]) + (", ..." if len(unknown) > 5 else "")
        raise CheckpointError(f"{len(unknown)} words of the training stories ({shown}) are not in {run_dir / VOCAB}, "
                              "so it does not match the run's checkpoint and data: restore vocab.json, pass the "
                              "--data-dir the run was trained on, or pass --restart to start over.")


def _replacing(given: dict, cls) -> dict:
    """The options given for `cls`'s settings that replace a resumed run's saved values."""
    fixed = fixed_flags(cls)
    return {k: given[k] for k in flags(cls) if k not in fixed and given.get(k) is not None}


def plan_run(run_dir: Path, n: int, configs: tuple, resume: bool, restart: bool, given: dict) -> RunPlan:
    """How run `n` starts and with which configs: on resume its saved ones, with the options `given` that may
    replace them; refusals before any data is loaded."""
    mc, dc, tc, kc = configs
    plan = RunPlan(run_dir, start_mode(run_dir, resume, restart), mc, dc, dataclasses.replace(tc, seed=tc.seed + n),
                   kc)
    if plan.mode == "resume":
        plan.model, plan.data, plan.train, plan.task = saved_configs(run_dir)
        _check_fixed(plan, {**given, "seed": given["seed"] + n} if given.get("seed") is not None else given)
        _check_preset(plan, given, mc)
        changed = []
        for section, cls in SECTIONS.items():
            saved, replacing = getattr(plan, section), _replacing(given, cls)
            changed += [f"{flags(cls)[k]} {v} (was {getattr(saved, k)})" for k, v in replacing.items()
                        if v != getattr(saved, k) and k not in QUIET_ON_RESUME]
            setattr(plan, section, dataclasses.replace(saved, **replacing))
        if changed:
            warnings.warn(f"{run_dir} resumes with {', '.join(changed)}.", ResumeNote, stacklevel=2)
    plan.model.check()
    plan.train.check()
    plan.task.check()
    return plan


def train_babi(
    model_config: ModelConfig,
    data_config: DataConfig,
    train_config: TrainConfig,
    out: str | Path,
    seeds: int = 1,
    resume: bool = False,
    restart: bool = False,
    given: dict | None = None,
    task_config: BabiTaskConfig | None = None,
) -> list[dict]:
    """Train `seeds` runs (RUN, or RUN/seed-N with seed = train_config.seed + N when seeds > 1).

    How each run folder may be used is run_folder.py's rule: a folder that holds a run is refused unless
    resume (continue it with its saved configs) or restart (delete it, start afresh). given: the options given
    explicitly, by field name; on resume a fixed setting given with another value is refused and the others
    replace the saved ones. Returns fit's summaries (it stops after an interrupted one).
    """
    out = Path(out)
    env = init_distributed(train_config.device)
    if seeds < 1:
        raise UserError("--seeds must be at least 1.")
    runs = [out] if seeds == 1 else [out / f"seed-{n}" for n in range(seeds)]
    if seeds > 1:
        check_seeds_folder(out, restart=restart and env.is_main, keep=seeds)
    configs = (model_config, data_config, train_config, task_config or BabiTaskConfig())
    plans = [plan_run(run_dir, n, configs, resume, restart, given or {}) for n, run_dir in enumerate(runs)]
    if env.active:
        dist.barrier()  # every process checked `out` before process 0 writes to it

    data_cache: dict[tuple, Any] = {}
    summaries = []
    for plan in plans:
        data = _plan_data(plan, data_cache, env)
        seed_everything(plan.train.seed)
        model = build_model(plan.model, data.vocab.size, data.vocab.answer_id)
        task = plan.task.build(data, plan.train)
        config = run_config(plan.model, plan.data, plan.train, plan.task, data.training_changes())
        summary = fit(model, task, plan.train, plan.run_dir, config, resume=resume, restart=restart)
        summaries.append(summary)
        if summary["interrupted"]:
            break
    close_distributed(env)
    return summaries


def _plan_data(plan: RunPlan, cache: dict[tuple, Any], env):
    """The bAbI data of a run (with its saved vocabulary on resume), loaded once per data config."""
    saved_vocab = read_vocab(plan.run_dir) if plan.mode == "resume" else None
    key = plan.data.loading_key()
    if key not in cache:
        if env.active and not env.is_main:
            dist.barrier()  # process 0 fills the dataset cache first
        cache[key] = load_data(plan.data, saved_vocab)
        if env.active and env.is_main:
            dist.barrier()
    if saved_vocab is not None:
        _check_saved_vocab(cache[key], plan.run_dir)
    return cache[key]


__all__ = ["run_config", "saved_configs", "plan_run", "train_babi"]

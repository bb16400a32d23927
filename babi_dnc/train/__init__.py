"""The training loop shared by bAbI and the copy tasks: it knows nothing about either.

    from babi_dnc.train import TrainConfig, fit
    summary = fit(model, task, TrainConfig(...), run_dir, config_to_save={"kind": "babi", ...})

    config.py       TrainConfig (saved as config.json["train"])
    task.py         Task: the base class of what fit trains on, its hooks' defaults
    loop.py         fit, as named phases: setup, step, non-finite handling, logging, evaluation, saving
    optim.py        the optimiser and the learning-rate schedule
    rng.py          seeding and the RNG state of a checkpoint
    distributed.py  the device, torchrun's process group, each process's rows of a batch
    log.py          RUN/metrics.jsonl and TensorBoard
    progress.py     the progress bar or lines on the terminal
    signals.py      SIGINT / SIGTERM: finish the step, save, stop
(checkpoint.py, beside this package, writes and reads the run directory and its checkpoints; the bAbI task
for this loop is babi_task.py, the copy tasks' is copytasks/train.py.)

The Task
--------
`fit` knows nothing about bAbI or copying; a task (a subclass of task.Task) supplies the data, the loss
and the metric:

    next_batch(step: int) -> dict[str, Tensor]
        The global batch for `step`. Deterministic: the task owns its RNG (e.g. a torch.Generator or a
        seed + epoch), so that the same state yields the same batches. Tensors are batch-first: under DDP
        every tensor with a batch dimension is split along dim 0 and each process gets its own rows.
    loss(model, batch) -> (loss: Tensor scalar, stats: dict[str, Tensor])
        `batch` is on the training device. Return the mean loss over this batch's loss terms. No .item()
        (no host sync). If stats["tokens"] is the number of terms the loss averages over (e.g. answer
        words), DDP weights every process by it, so the update is exactly the one for the whole batch;
        stats["correct"] with "tokens" gives a logged accuracy. Other stats are logged as per-step means.
    evaluate(model) -> dict[str, float]
        Validation metrics; must contain "error" (lower is better; picks the "best" checkpoint). Called
        under torch.no_grad() and model.eval(), on the unwrapped model, on process 0 only. Must not use
        the global RNG (use a private generator) so that resuming is exact.
    state_dict() -> dict  /  load_state_dict(d)
        Everything needed to continue the batch stream exactly (RNG, epoch, curriculum level); only
        numbers, strings, lists, dicts and tensors (it is read back with torch.load(weights_only=True)).
    Hooks (task.Task has their defaults):
    run_files() -> dict[str, object]      files written beside config.json, e.g. {"vocab.json": ...}
    on_evaluate(metrics) -> None          after each evaluation, on every process (curriculum hook)
    should_stop(metrics) -> bool          after on_evaluate, on every process: True ends training early
                                          (stop_reason "solved"; the copy tasks once solved)
    progress_fields() -> dict[str, str]   shown in the progress line, e.g. {"epoch": "3.2"}
    summary(metrics) -> str               one line describing an evaluation, for the log
    format_error(error) -> str            the validation error in its unit for the progress (default: a
                                          percentage; the copy tasks: bit errors per sequence)
    memory_image(model) -> ndarray | None an [H, W, 3] uint8 picture of the memory for TensorBoard
    unit: str                             what a batch row is ("stories", "sequences") for the speed

`fit(model, task, train_config, run_dir, config_to_save, resume=False, restart=False) -> dict`
    Trains for `train_config.max_steps` steps (a step is one batch, whether or not the update was taken),
    evaluates every `eval_every` steps (and at the end), and keeps RUN/checkpoints/best (lowest validation
    error) and RUN/checkpoints/latest (written at step 0, at every evaluation, every `checkpoint_every`
    steps, every `checkpoint_minutes` of training and at the end; see checkpoint.py for the layout). The
    run folder is the call's alone while it runs (RUN/.lock; run_folder.py): a folder that holds a run is
    refused unless resume=True, which continues from its newest checkpoint that loads (latest, else best)
    with the saved optimiser, scheduler, RNG and task state (on CPU with a fixed seed the weights are
    bit-identical to those of an unbroken run), or restart=True, which deletes it first. The training
    settings are checked first (TrainConfig.check). Returns a summary dict: run_dir, step, best_error,
    best_step, metrics (last evaluation), stopped (by a signal or the time limit), interrupted (by a
    signal), stop_reason, nonfinite (skipped updates), reloads, elapsed_s (training time, all sessions).

Safety nets
-----------
- Non-finite loss or gradient norm: the update is skipped and logged ({"kind": "nonfinite"} in
  metrics.jsonl). After `nonfinite_patience` in a row, the model and optimiser are reloaded from the last
  good checkpoint and the learning rate is multiplied by `lr_backoff` ({"kind": "reload"}). After
  `nonfinite_reloads` reloads with no checkpoint saved from a taken update in between, fit gives up
  ({"kind": "diverged"}, TrainingDiverged). Weights that are not finite, or whose norm grew more than
  `max_weight_growth` times since the last save, are never saved ({"kind": "refused_save"}). A logging
  window whose updates were all skipped logs no loss. One host sync per step reads the loss and the
  gradient norm. Warnings go to the terminal with or without the progress display.
- SIGINT / SIGTERM: the current step finishes, "latest" is saved and fit returns (stopped=True,
  interrupted=True). A second Ctrl-C interrupts at once. A failed write (a full disk) raises
  CheckpointError and leaves the previous checkpoint as it was.
- Gradient clipping: the paper's clip of the controller activations' gradients to [-10, 10] is a model
  option (ModelConfig.clip_activation_grad); `clip_grad_norm` adds global norm clipping.

Devices and several processes
-----------------------------
`device` "auto" picks CUDA when present. `amp` runs the forward pass under bfloat16 autocast on CUDA (the
memory itself stays in float32). `compile` compiles the DNC's time step with torch.compile
(dnc.compile_model). Under torchrun, every process trains on its share of each global batch with
DistributedDataParallel (NCCL on CUDA, gloo on CPU); process 0 alone evaluates and writes checkpoints and
logs:

    torchrun --standalone --nproc_per_node=4 -m app train --preset paper --batch-size 64 --out runs/p
    # several machines: torchrun --nnodes=2 --node_rank=0|1 --nproc_per_node=8 \\
    #     --rdzv_backend=c10d --rdzv_endpoint=HOST:29500 -m app train ...

`--batch-size` is the global batch; each of the W processes gets batch_size / W stories of it, so the
result does not depend on W (up to floating-point rounding).
"""


from .config import TrainConfig
from .distributed import (
    DistEnv,
    batch_rows,
    close_distributed,
    init_distributed,
    resolve_device,
    shard_batch,
    to_device,
)
from .loop import fit
from .optim import LRSchedule, make_optimizer
from .rng import rng_state, seed_everything, set_rng_state
from .task import Task

__all__ = [
    "TrainConfig", "Task", "fit", "DistEnv", "init_distributed", "close_distributed", "resolve_device", "shard_batch",
    "batch_rows", "to_device", "LRSchedule", "make_optimizer", "seed_everything", "rng_state", "set_rng_state",
]

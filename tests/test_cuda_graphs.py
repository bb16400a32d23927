"""CUDA-graph training steps (babi_dnc/cuda_graphs.py): the padding to fixed shapes, which graph serves which
batch, and the eager fallbacks. The capture itself needs a GPU (scripts/gpu_kernels_check.py); here a
stand-in capture returns the callable unchanged, so a "replay" is the eager forward of the padded batch."""

import json
import warnings

import pytest
import torch

from babi_dnc import cuda_graphs
from babi_dnc.cuda_graphs import GraphedForward, install_cuda_graphs, pad_batch, padded_length
from babi_dnc.models import build_model, preset

V = 7


def test_padded_lengths():
    assert cuda_graphs.LENGTHS[:7] == (16, 24, 32, 48, 64, 96, 128)
    assert [padded_length(t) for t in (1, 16, 17, 72, 96, 97, 250, 820)] == [16, 16, 24, 96, 96, 128, 256, 1024]
    assert padded_length(10**6) is None
    ratios = [b / a for a, b in zip(cuda_graphs.LENGTHS, cuda_graphs.LENGTHS[1:])]
    assert max(ratios) <= 1.5  # at most half of a padded batch is padding


def test_pad_batch():
    ids = torch.tensor([[1, 2, 3], [4, 5, 0]])
    mask = torch.tensor([[True, True, True], [True, True, False]])
    padded_ids, padded_mask = pad_batch(ids, mask, 3, 5)
    assert padded_ids.tolist() == [[1, 2, 3, 0, 0], [4, 5, 0, 0, 0], [0] * 5]
    assert padded_mask.tolist() == [[True] * 3 + [False] * 2, [True, True] + [False] * 3, [False] * 5]
    assert pad_batch(ids, mask, 2, 3)[0] is ids  # already the graph's shape: no copy


def _model(seed=0):
    torch.manual_seed(seed)
    model = build_model(preset("tiny"), V)
    model.train()
    return model


def _batch(B, T, seed=1):
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, V, (B, T), generator=gen)
    lengths = torch.randint(T // 2, T + 1, (B,), generator=gen)
    return ids, torch.arange(T) < lengths.unsqueeze(1)


@pytest.fixture
def stand_in_capture(monkeypatch):
    """make_graphed_callables without a GPU: records the sample shapes and returns the callable itself."""
    shapes = []

    def capture(callable_, sample_args, num_warmup_iters=3, allow_unused_input=False, pool=None):
        shapes.append(tuple(sample_args[0].shape))
        return callable_

    monkeypatch.setattr(torch.cuda, "make_graphed_callables", capture)
    monkeypatch.setattr(torch.cuda, "graph_pool_handle", lambda: object())
    return shapes


def _install_on_cpu(model) -> GraphedForward:
    graphed = GraphedForward(model, model.forward)
    graphed.devices = ("cpu",)
    model.forward = graphed
    return graphed


def test_a_padded_replay_gives_the_eager_logits_and_gradients(stand_in_capture):
    """The premise of the graphs: a batch padded in length and in rows computes the same logits and the
    same parameter gradients as the batch itself."""
    ids, mask = _batch(3, 13)
    model = _model()
    eager, _ = model(ids, mask=mask)
    eager_grads = torch.autograd.grad(eager[mask].square().sum(), list(model.parameters()))
    graphed = _install_on_cpu(model)
    graphed.graphs[(5, 16, cuda_graphs._autocast_state())] = cuda_graphs._Logits(model, graphed.eager_forward)
    replayed, state = model(ids, mask=mask)  # served by the 5 x 16 "graph": two padded rows, three steps
    assert state is None and replayed.shape == eager.shape
    assert graphed.stats == {"captures": 0, "replays": 1, "eager": 0}
    grads = torch.autograd.grad(replayed[mask].square().sum(), list(model.parameters()))
    torch.testing.assert_close(replayed, eager, atol=1e-6, rtol=1e-5)
    for g, e in zip(grads, eager_grads):
        torch.testing.assert_close(g, e, atol=1e-6, rtol=1e-5)


def test_one_capture_per_padded_shape(stand_in_capture):
    model = _model()
    graphed = _install_on_cpu(model)
    for B, T in [(4, 10), (4, 16), (3, 12), (4, 20), (6, 20), (2, 20)]:
        ids, mask = _batch(B, T)
        model(ids, mask=mask)
    # 10, 16 and 12 share the 4 x 16 graph (3 rows padded to 4); 20 -> 24: 4 rows, then 6 (more rows than
    # any 24-step graph), and the batch of 2 uses the smallest that fits, 4
    assert stand_in_capture == [(4, 16), (4, 24), (6, 24)]
    assert graphed.stats == {"captures": 3, "replays": 6, "eager": 0}


def test_eager_where_a_graph_cannot_serve(stand_in_capture):
    model = _model()
    graphed = _install_on_cpu(model)
    ids, mask = _batch(2, 9)
    long_ids, long_mask = _batch(2, cuda_graphs.MAX_LENGTH + 1)
    model(long_ids, mask=long_mask)  # too long for a graph
    model(ids, mask=mask, state=model.initial_state(2))  # a given state
    model.trace(ids, mask=mask)  # a trace: its own, eager path, never a graph
    with torch.no_grad():
        model(ids, mask=mask)  # no gradients
    model.eval()
    model(ids, mask=mask)  # evaluation
    assert stand_in_capture == [] and graphed.stats["eager"] == 4


def test_a_failed_capture_warns_once_and_trains_eagerly(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("operation not permitted when stream is capturing")

    monkeypatch.setattr(torch.cuda, "make_graphed_callables", broken)
    monkeypatch.setattr(torch.cuda, "graph_pool_handle", lambda: object())
    model = _model()
    ids, mask = _batch(2, 9)
    eager, _ = model(ids, mask=mask)
    graphed = _install_on_cpu(model)
    with pytest.warns(UserWarning, match="CUDA graph capture of the training step failed"):
        first, _ = model(ids, mask=mask)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        other_ids, other_mask = _batch(2, 40)
        model(other_ids, mask=other_mask)  # another shape: no second attempt, no second warning
    torch.testing.assert_close(first, eager)
    assert graphed.stats == {"captures": 0, "replays": 0, "eager": 2}
    assert "not permitted when stream is capturing" in graphed.failed


def test_install_leaves_a_cpu_model_alone(monkeypatch):
    model = _model()
    assert install_cuda_graphs(model) is None
    assert not isinstance(model.forward, GraphedForward)
    assert "forward" not in vars(model)  # the class's forward, untouched


def test_install_leaves_a_model_with_think_steps_alone():
    model = build_model(preset("tiny", think_steps=1), 6, answer_id=1)
    with pytest.warns(UserWarning, match="think steps .* runs eagerly"):
        assert install_cuda_graphs(model, devices=("cpu",)) is None
    assert "forward" not in vars(model)


def test_bench_refuses_graphs_without_a_gpu():
    from babi_dnc.bench import BenchConfig, measure
    from babi_dnc.errors import UserError

    with pytest.raises(UserError, match="--cuda-graph needs --device cuda"):
        measure(BenchConfig(preset="tiny", batch_size=2, seq_len=4, steps=1, warmup=0, cuda_graph=True))


def test_pad_batch_of_input_vectors():
    inputs, mask = torch.ones(2, 3, 4), torch.tensor([[True, True, True], [True, False, False]])
    padded, padded_mask = pad_batch(inputs, mask, 3, 5)
    assert padded.shape == (3, 5, 4) and padded[:2, :3].eq(1).all() and padded[2:].eq(0).all()
    assert padded[:, 3:].eq(0).all() and padded_mask.sum() == mask.sum()


def _fit_toy(run_dir, **changes):
    from babi_dnc.train import fit

    from .conftest import ToyTask, quiet_config

    torch.manual_seed(0)
    model = build_model(preset("tiny"), 6)
    config = quiet_config(optimizer="adam", lr=1e-2, max_steps=6, eval_every=3, **changes)
    return fit(model, ToyTask(seed=5), config, run_dir, {"kind": "toy"}), model


def test_training_replays_graphs_and_learns_as_the_eager_step(tmp_path, monkeypatch, stand_in_capture):
    """fit installs the graphs (here on a CPU, with a stand-in capture): every training step is a replay of
    the 4 x 16 graph, evaluation runs eagerly, and the weights end as those of the eager training."""
    import functools

    import babi_dnc.train.loop as loop

    eager_summary, eager = _fit_toy(tmp_path / "eager", cuda_graphs=False)
    assert eager_summary["cuda_graphs"] is None
    monkeypatch.setattr(loop, "install_cuda_graphs", functools.partial(install_cuda_graphs, devices=("cpu",)))
    summary, graphed = _fit_toy(tmp_path / "graphed")
    assert stand_in_capture == [(4, 16)]  # ToyTask's 4 x 7 batches, padded to the first length >= 7
    assert summary["cuda_graphs"] == {"captures": 1, "replays": 6, "eager": 2}  # 6 steps; 2 evaluations
    for (name, a), b in zip(graphed.state_dict().items(), eager.state_dict().values()):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4, msg=name)
    assert summary["best_error"] == eager_summary["best_error"]
    rows = [json.loads(line) for line in (tmp_path / "graphed" / "metrics.jsonl").read_text().splitlines()]
    assert [r["replays"] for r in rows if r["kind"] == "cuda_graphs"] == [6]  # in the log, for GPU runs

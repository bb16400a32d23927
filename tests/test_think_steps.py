"""Think steps (ModelConfig.think_steps): empty input steps before each question's answer slots, inserted
inside BabiModel so that data, loss, validation and chat see the story's own steps only."""

import pytest
import torch

from babi_dnc.errors import UserError
from babi_dnc.models import ModelConfig, build_model, describe_model, insert_think_steps, preset, take_steps

A = 1  # the answer slot's id in these tests


def test_insert_by_hand():
    ids = torch.tensor([[5, 6, A, 7, A, A, 9], [5, A, 3, 3, 3, 0, 0]])
    mask = torch.tensor([[1] * 7, [1] * 5 + [0, 0]], dtype=torch.bool)
    new, new_mask, think, positions = insert_think_steps(ids, mask, A, 2)
    assert new.tolist() == [[5, 6, 0, 0, A, 7, 0, 0, A, A, 9], [5, 0, 0, A, 3, 3, 3, 0, 0, 0, 0]]
    assert think.int().tolist() == [[0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 0], [0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0]]
    assert new_mask.int().tolist() == [[1] * 11, [1] * 7 + [0] * 4]
    assert positions.tolist() == [[0, 1, 4, 5, 8, 9, 10], [0, 3, 4, 5, 6, 7, 8]]
    assert torch.equal(take_steps(new, positions), ids)  # take_steps undoes the insertion


def test_without_a_mask_a_row_with_fewer_questions_ends_where_it_did():
    ids = torch.tensor([[A, 2, A], [2, 2, A]])
    new, new_mask, think, _ = insert_think_steps(ids, None, A, 1)
    assert new_mask.int().tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]]
    assert think.int().tolist() == [[1, 0, 0, 1, 0], [0, 0, 1, 0, 0]]


def test_no_answer_slot_and_empty_story_insert_nothing():
    ids = torch.tensor([[2, 3, 4]])
    new, _, think, positions = insert_think_steps(ids, torch.ones(1, 3, dtype=torch.bool), A, 3)
    assert torch.equal(new, ids) and not think.any() and positions.tolist() == [[0, 1, 2]]
    empty = torch.zeros(2, 0, dtype=torch.long)
    assert insert_think_steps(empty, None, A, 2)[0].shape == (2, 0)


def _story_batch(V=9, B=3, T=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(2, V, (B, T), generator=g)
    ids[:, [4, 9, 10]] = A  # two questions: one with one answer word, one with two
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[2, 8:] = False
    return ids, mask


@pytest.mark.parametrize("kind", ["dnc", "lstm"])
def test_model_with_think_steps_equals_the_core_run_on_the_expanded_story(kind):
    config = preset("tiny", model=kind, think_steps=2, embedding=4)
    model = build_model(config, 9, answer_id=A)
    ids, mask = _story_batch()
    logits, _ = model(ids, mask=mask)
    assert logits.shape == (3, 12, 9)
    new, new_mask, think, positions = insert_think_steps(ids, mask, A, 2)
    assert new.shape[1] == 12 + 2 * 2
    x = model.embed(new).masked_fill(think.unsqueeze(-1), 0.0)  # zero input at the think steps
    expected, _ = model.core(x, mask=new_mask)
    torch.testing.assert_close(logits, take_steps(expected, positions))
    assert (logits[2, 8:] == 0).all()  # padding still outputs zeros
    logits.logsumexp(-1).sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_think_steps_change_the_answers_but_not_the_other_steps():
    """The steps before the first answer slot see the same inputs with or without thinking."""
    plain = build_model(preset("tiny"), 9)
    thinking = build_model(preset("tiny", think_steps=1), 9, answer_id=A)
    thinking.load_state_dict(plain.state_dict())  # think steps add no parameters
    ids, mask = _story_batch()
    a, _ = plain(ids, mask=mask)
    b, _ = thinking(ids, mask=mask)
    torch.testing.assert_close(a[:, :4], b[:, :4])
    assert not torch.allclose(a[:, 4], b[:, 4])


def test_the_trace_comes_back_at_the_story_steps():
    model = build_model(preset("tiny", think_steps=3), 9, answer_id=A)
    ids, mask = _story_batch()
    _, _, trace = model.trace(ids, mask=mask)
    assert trace["write_weights"].shape[:2] == (3, 12)


def test_think_steps_config_checks_and_description():
    with pytest.raises(UserError, match="--think-steps must be 0 or more, not -1"):
        ModelConfig(think_steps=-1).check()
    with pytest.raises(ValueError, match="answer_id"):
        build_model(preset("tiny", think_steps=1), 9)
    assert "2 think steps" in describe_model(preset("tiny", think_steps=2), details=True)

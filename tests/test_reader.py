"""The backward reader (reader.py): segments by hand, the reader against an LSTM run backwards over each
segment one at a time, and the rule every shipped model keeps: an answer depends only on the story up to its
question, so feeding a story question by question gives the numbers of feeding it whole. The whole-story
reader (scope "story", a comparison only) breaks that rule by design, and chat refuses it."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from babi_dnc.errors import UserError
from babi_dnc.models import PRESETS, build_model
from babi_dnc.reader import BackwardReader, question_segments, reverse_segments, story_segments

SLOT = 9  # the answer slot's id in these tests


def test_segments_end_at_each_questions_last_slot():
    ids = torch.tensor([[5, 6, 9, 9, 5, 7, 9, 5, 5],
                        [5, 9, 6, 6, 9, 0, 0, 0, 0]])
    mask = torch.tensor([[True] * 9, [True] * 5 + [False] * 4])
    segment, back = question_segments(ids, SLOT, mask)
    assert segment.tolist() == [[0, 0, 0, 0, 1, 1, 1, 2, 2],
                                [0, 0, 1, 1, 1, 2, 2, 2, 2]]
    assert back.tolist() == [[3, 2, 1, 0, 2, 1, 0, 1, 0],
                             [1, 0, 2, 1, 0, 3, 2, 1, 0]]
    masked_slot = torch.tensor([[5, 9, 6]])  # a '-' outside the mask ends nothing
    assert question_segments(masked_slot, SLOT, torch.tensor([[True, False, True]]))[0].tolist() == [[0, 0, 0]]


def test_reversing_every_segment_in_place():
    ids = torch.tensor([[5, 6, 9, 9, 5, 7, 9, 5, 5]])
    source, first = reverse_segments(*question_segments(ids, SLOT))
    assert source.tolist() == [[3, 2, 1, 0, 6, 5, 4, 8, 7]]
    assert first.tolist() == [[True, False, False, False, True, False, False, True, False]]
    assert source.gather(1, source).tolist() == [list(range(9))]  # reversing twice: the identity


def test_the_reader_is_an_lstm_run_backwards_over_each_segment_from_a_zero_state():
    torch.manual_seed(0)
    reader = BackwardReader(input_size=4, hidden_size=3, answer_id=SLOT)
    ids = torch.tensor([[5, 6, 9, 9, 5, 7, 9, 5, 5], [5, 9, 6, 6, 9, 6, 9, 5, 6]])
    x = torch.randn(2, 9, 4)
    out = reader(x, ids)
    lstm = torch.nn.LSTM(4, 3, batch_first=True)  # the same weights, run on one segment at a time
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(lstm, f"{name}_l0").copy_(getattr(reader.cell, name))
    for b, segments in enumerate(([(0, 4), (4, 7), (7, 9)], [(0, 2), (2, 5), (5, 7), (7, 9)])):
        for start, end in segments:
            expected, _ = lstm(x[b : b + 1, start:end].flip(1))  # [1, L, H]
            torch.testing.assert_close(out[b, start:end], expected[0].flip(0))


def test_what_comes_after_a_question_never_reaches_its_answer():
    torch.manual_seed(0)
    config = dataclasses.replace(PRESETS["tiny"], backward_reader=5)
    model = build_model(config, vocab_size=12, answer_id=SLOT).eval()
    ids = torch.tensor([[1, 2, 3, 4, 9, 5, 6, 7, 8, 9]])
    later = ids.clone()
    later[0, 5:8] = torch.tensor([2, 2, 2])
    with torch.no_grad():
        y, _ = model(ids)
        y_later, _ = model(later)
    torch.testing.assert_close(y[0, :5], y_later[0, :5])  # the first question's answer: unchanged
    assert not torch.allclose(y[0, 5:], y_later[0, 5:])  # the second one reads its own segment


@pytest.mark.parametrize("think_steps", [0, 2])
def test_question_by_question_feeding_gives_the_whole_storys_numbers(think_steps):
    torch.manual_seed(1)
    config = dataclasses.replace(PRESETS["tiny"], backward_reader=5, think_steps=think_steps)
    model = build_model(config, vocab_size=12, answer_id=SLOT).eval()
    ids = torch.tensor([[1, 2, 3, 9, 4, 5, 6, 7, 9, 9, 8, 9]])
    with torch.no_grad():
        whole, _ = model(ids)
        parts, state = [], None
        for start, end in ((0, 4), (4, 10), (10, 12)):
            y, state = model(ids[:, start:end], state=state)
            parts.append(y)
    torch.testing.assert_close(torch.cat(parts, 1), whole, atol=1e-5, rtol=1e-5)


def test_a_reader_needs_the_answer_slots_id():
    with pytest.raises(ValueError, match="answer_id"):
        build_model(dataclasses.replace(PRESETS["tiny"], backward_reader=4), vocab_size=12)


def test_the_whole_story_reader_reads_each_story_back_from_its_last_step():
    ids = torch.tensor([[5, 6, 9, 9, 5, 7], [5, 9, 6, 9, 0, 0]])
    mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    segment, back = story_segments(ids, mask)
    assert segment.tolist() == [[0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 1, 1]]
    assert back.tolist() == [[5, 4, 3, 2, 1, 0], [3, 2, 1, 0, 1, 0]]
    source, first = reverse_segments(segment, back)
    assert source.tolist() == [[5, 4, 3, 2, 1, 0], [3, 2, 1, 0, 5, 4]]
    assert first.tolist() == [[True, False, False, False, False, False], [True, False, False, False, True, False]]
    torch.manual_seed(0)
    reader = BackwardReader(input_size=4, hidden_size=3, answer_id=SLOT, scope="story")
    x = torch.randn(2, 6, 4)
    lstm = torch.nn.LSTM(4, 3, batch_first=True)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(lstm, f"{name}_l0").copy_(getattr(reader.cell, name))
        out = reader(x, ids, mask)
        for b, end in ((0, 6), (1, 4)):
            expected, _ = lstm(x[b : b + 1, :end].flip(1))  # the story, last step first, from a zero state
            torch.testing.assert_close(out[b, :end], expected[0].flip(0))


def test_the_whole_story_reader_lets_later_sentences_reach_an_answer_and_chat_refuses_it():
    from babi_dnc.chat.session import StorySession
    from babi_dnc.data import Vocabulary

    torch.manual_seed(0)
    config = dataclasses.replace(PRESETS["tiny"], backward_reader=5, reader_scope="story")
    model = build_model(config, vocab_size=12, answer_id=SLOT).eval()
    ids = torch.tensor([[1, 2, 3, 4, 9, 5, 6, 7, 8, 9]])
    later = ids.clone()
    later[0, 5:8] = torch.tensor([2, 2, 2])
    with torch.no_grad():
        assert not torch.allclose(model(ids)[0][0, :5], model(later)[0][0, :5])  # the first answer sees them
    with pytest.raises(UserError, match="reads each story from its end"):
        StorySession(model, Vocabulary([str(i) for i in range(12)]))


def test_a_whole_story_scope_needs_a_reader():
    with pytest.raises(UserError, match="give --backward-reader N as well"):
        build_model(dataclasses.replace(PRESETS["tiny"], reader_scope="story"), 12, answer_id=9)
    with pytest.raises(UserError, match="--reader-scope must be question or story, not 'whole'"):
        dataclasses.replace(PRESETS["tiny"], backward_reader=4, reader_scope="whole").check()
    dataclasses.replace(PRESETS["tiny"], backward_reader=4, reader_scope="story").check()

"""The chat: ChatSession driven directly, `babi-dnc chat` through stdin and through a pseudo-terminal,
and a property-based test of random text and commands.

Answers are checked two ways: `Task1Oracle`, a hand-written model that tracks who is where through its
recurrent state, must answer every task-1 question right (so lines, slots, state carrying, resets, story
files and examples are plumbed correctly); and the tiny DNC trained by the `tiny_run` fixture must give,
line by line, exactly the probabilities of the whole story fed at once (what training and evaluation see).
"""

from __future__ import annotations

import os
import sys
import warnings

import pexpect
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from babi_dnc.chat import (
    COMMANDS,
    ChatSession,
    Reply,
    StoryScore,
    answer_slots,
    story_file_replies,
    story_lines,
    suggest,
)
from babi_dnc.data import Vocabulary, encode_story, parse_babi_file, tokenize

from .conftest import NAMES, PLACES, quiet_config

TASK1_TEST = "tasks_1-20_v1-2/en-10k/qa1_single-supporting-fact_test.txt"
TASK8_TEST = "tasks_1-20_v1-2/en-10k/qa8_lists-sets_test.txt"
CLI = [sys.executable, "-c", "from app import main; main()"]
PROMPT = r">(\x1b\[0m)? "  # rich's prompt, bold even with NO_COLOR


class Task1Oracle(nn.Module):
    """A bAbI model that answers task 1 by rule: it remembers, in its state, where each person last went
    and answers "where is X ?" at the '-' with X's place (logit 10, else 0). Same call shape as
    models.BabiModel; state = (place of every word id [B, V+1], subject [B], asked person [B])."""

    def __init__(self, vocab: Vocabulary):
        super().__init__()
        self.vocab = vocab
        self.people = {vocab.index[n.lower()] for n in NAMES}
        self.places = {vocab.index[p] for p in PLACES}
        self.unused = nn.Parameter(torch.zeros(1))  # the chat asks for the model's device

    has_memory = False

    def forward(self, ids, state=None, mask=None):
        B, T = ids.shape
        V = self.vocab.size
        if state is None:
            state = (torch.zeros(B, V + 1, dtype=torch.long), torch.full((B,), -1), torch.full((B,), -1))
        place, subject, asked = (s.clone() for s in state)
        logits = torch.zeros(B, T, V)
        where, slot = self.vocab.index["where"], self.vocab.answer_id
        for b in range(B):
            question = False
            for t, i in enumerate(ids[b].tolist()):
                if i == where:
                    question = True
                elif i in self.people:
                    if question:
                        asked[b] = i
                    else:
                        subject[b] = i
                elif i in self.places and subject[b] >= 0:
                    place[b, subject[b]] = i
                elif i == slot:
                    logits[b, t, place[b, asked[b]]] = 10.0
                    question = False
        y = logits * (1.0 if mask is None else mask.unsqueeze(-1).float())
        return y, (place, subject, asked)


# ---------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def vocab(tiny_data) -> Vocabulary:
    return tiny_data.vocab


@pytest.fixture
def oracle(vocab, tiny_babi_dir) -> ChatSession:
    return ChatSession(Task1Oracle(vocab), vocab, tasks=[1], data_dir=tiny_babi_dir, seed=0)


@pytest.fixture(scope="module")
def dnc(tiny_run, tiny_babi_dir):
    """A factory of fresh sessions on the tiny DNC run (the model is loaded once)."""
    session = ChatSession.from_run(tiny_run, data_dir=tiny_babi_dir, seed=0)
    return lambda: ChatSession(session.model, session.vocab, tasks=[1, 8], data_dir=tiny_babi_dir, seed=0)


@pytest.fixture(scope="module")
def lstm_run(tiny_babi_dir, tmp_path_factory):
    """A tiny LSTM-baseline run (two training steps)."""
    from babi_dnc.babi_train import train_babi
    from babi_dnc.data.config import DataConfig
    from babi_dnc.models import preset

    out = tmp_path_factory.mktemp("runs") / "lstm-tiny"
    data_config = DataConfig(set_name="en-10k", tasks="1,8", data_dir=str(tiny_babi_dir), valid_fraction=0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train_babi(preset("tiny", model="lstm"), data_config, quiet_config(max_steps=2, eval_every=2), out)
    return out


def answers_of(session: ChatSession, lines: list[str]) -> list[str]:
    """Feed lines; the answers given, as bAbI writes them."""
    return [a.text for line in lines for a in session.handle(line).answers]


# ---------------------------------------------------------------------------------------------- answers


def test_the_oracle_answers_a_story_typed_line_by_line(oracle):
    story = ["Mary moved to the bathroom.", "John went to the hallway.", "Where is Mary?",
             "Mary travelled to the garden.", "Where is Mary?", "Where is John?"]
    assert answers_of(oracle, story) == ["bathroom", "garden", "hallway"]
    reply = oracle.handle("Where is Mary?")
    assert reply.kind == "answer" and reply.answers[0].top[0][0] == ("garden", pytest.approx(1.0, abs=0.01))
    assert len(reply.answers[0].top) == 1 and len(reply.answers[0].top[0]) == 3  # 1 slot, top 3 words
    assert oracle.handle("/reset").kind == "info"
    assert answers_of(oracle, ["Where is Mary?"]) != ["garden"]  # a fresh state knows nothing


def test_a_line_may_hold_several_sentences_and_questions(oracle):
    reply = oracle.handle("Mary went to the kitchen. John moved to the office. Where is John? Where is Mary?")
    assert [a.text for a in reply.answers] == ["office", "kitchen"]
    assert oracle.tokens == tokenize("Mary went to the kitchen. John moved to the office. Where is John? - "
                                     "Where is Mary? -")
    oracle.handle("Sandra moved to the garden")  # no '.': one is added, as bAbI always has it
    assert oracle.tokens[-2:] == ["garden", "."]
    first, last = oracle.handle("Where is Mary? Where is Sandra?\tgarden").answers  # the answer is the last's
    assert (first.gold, first.correct, last.gold, last.correct) == (None, None, "garden", True)


def test_the_slots_stay_in_the_state_as_in_training(oracle, vocab):
    oracle.handle("Daniel went to the office.")
    oracle.handle("Where is Daniel?")
    # The story as bAbI encodes it: the '-' slot after the question is part of the sequence.
    story = {"sentences": ["Daniel went to the office."], "questions": ["Where is Daniel?"], "answers": ["office"]}
    assert oracle.tokens == encode_story(story, vocab)["tokens"]


def test_answer_slots(oracle):
    assert answer_slots(tokenize("How do you go from the kitchen to the garden?")) == 2
    assert answer_slots(tokenize("What is Mary carrying?")) == 1
    assert answer_slots(tokenize("Where is Mary?")) == 1
    oracle.handle("Mary went to the kitchen.")
    assert [len(a.words) for a in oracle.handle("What is Mary carrying? - -").answers] == [2]  # typed slots
    assert oracle.tokens[-3:] == ["?", "-", "-"]
    assert "2" in oracle.handle("/slots 2").text
    assert [len(a.words) for a in oracle.handle("Where is Mary?").answers] == [2]
    assert oracle.handle("/slots 9").kind == "rejected" and oracle.slots == 2
    oracle.handle("/slots auto")
    reply = oracle.handle("What is Mary carrying?\tapple,football")  # a known answer sets the slots
    assert len(reply.answers[0].words) == 2 and reply.answers[0].correct is False
    assert "wrong (bAbI: apple,football)" in reply.plain()
    reply = oracle.handle("Where is Mary?\tkitchen")
    assert reply.answers[0].correct is True and reply.plain().endswith("right")


def test_story_file_in_babi_format_is_graded(oracle, tiny_babi_dir, tmp_path):
    lines = (tiny_babi_dir.parent / TASK1_TEST).read_text().splitlines()[:40]
    while not lines[-1].split(" ", 1)[1].startswith("Where"):
        lines.pop()
    path = tmp_path / "story.txt"
    path.write_text("\n".join(lines) + "\n")
    score = StoryScore()
    for _, _, reply in story_file_replies(oracle, path):
        score.add(reply)
    questions = sum("\t" in line for line in lines)
    assert (score.questions, score.graded, score.right) == (questions, questions, questions)
    assert score.summary() == f"accuracy: {questions}/{questions} = 100.0%"

    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())  # a byte order mark (Windows editors) changes nothing
    again = StoryScore()
    for _, _, reply in story_file_replies(oracle, path):
        again.add(reply)
    assert again == score and again.refused == 0


def test_story_file_in_plain_format(oracle, tmp_path):
    path = tmp_path / "story.txt"
    path.write_text("# a comment\nMary moved to the bathroom.\nWhere is Mary?\tbathroom\nWhere is Mary?\tgarden\n"
                    "Where is Mary?\n/slots 2\n\nWhere is Mary?\tbathroom\nMary moved to the bathrom.\n")
    results = list(story_file_replies(oracle, path))
    assert [n for n, _, _ in results] == [2, 3, 4, 5, 6, 8, 9]
    score = StoryScore()
    for _, _, reply in results:
        score.add(reply)
    # line 8 starts a new story (blank line): Mary's place is unknown again, and its gold sets 1 slot
    assert [r.answers[0].correct for _, _, r in results if r.answers] == [True, False, None, False]
    assert (score.questions, score.graded, score.right, score.refused) == (4, 3, 1, 1)
    assert score.summary() == "accuracy: 1/3 = 33.3%; 1 lines refused"


def test_story_lines_keep_the_file_order(tiny_babi_dir):
    story = parse_babi_file(tiny_babi_dir.parent / TASK8_TEST)[0]
    lines = story_lines(story)
    assert [text for text, _ in lines] == [
        line.split(" ", 1)[1].split("\t")[0].strip()
        for line in (tiny_babi_dir.parent / TASK8_TEST).read_text().splitlines()[: len(lines)]
    ]
    assert [a for _, a in lines if a] == story["answers"]


# ---------------------------------------------------------------------------------------------- examples


def test_example_questions_are_graded_against_bAbI(oracle):
    reply = oracle.handle("/example 1")
    assert reply.kind == "info" and reply.text.startswith("task 1 (single-supporting-fact), test story")
    assert "next bAbI question: Where is" in reply.text
    example = oracle.example
    questions = sum(answer is not None for _, answer in example.lines)
    replies = [oracle.handle("") for _ in range(questions)]  # Enter asks the next bAbI question
    assert all(r.answers[0].correct for r in replies)
    assert f"end of the example: {questions}/{questions} right" in replies[-1].text
    assert oracle.example is None and oracle.handle("/next").kind == "info"


def test_typing_the_example_question_grades_it_and_own_statements_stop_the_grading(oracle):
    oracle.handle("/example 1")
    pending = oracle.example.pending_question()
    reply = oracle.handle(pending[0])  # typed by the user: graded like /next
    assert reply.answers[0].gold == pending[1] and reply.answers[0].correct
    oracle.handle("Mary moved to the office.")  # the story changes: later bAbI answers may not hold
    assert oracle.example is None or oracle.example.changed
    if oracle.example is not None:
        answer = oracle.handle("/next").answers[0]
        assert answer.correct is None and "not scored" in Reply("answer", [answer]).plain()


def test_example_needs_data(vocab, tmp_path):
    session = ChatSession(Task1Oracle(vocab), vocab, data_dir=tmp_path / "nowhere")
    reply = session.handle("/example 1")
    assert reply.kind == "rejected" and "--data-dir" in reply.text
    assert session.handle("/example 42").kind == "rejected"
    assert session.handle("/example one").kind == "rejected"


# ---------------------------------------------------------------------------------------------- the DNC


def test_line_by_line_gives_the_numbers_of_the_whole_story(dnc, vocab, tiny_babi_dir):
    """Incremental feeding == training's encoding: same tokens, same probabilities at every '-'."""
    for test_file in (TASK1_TEST, TASK8_TEST):  # task 8 has answers of two words
        story = max(parse_babi_file(tiny_babi_dir.parent / test_file), key=lambda s: len(s["answers"][-1]))
        session = dnc()
        answers = [a for text, gold in story_lines(story) for a in session.feed(text, gold).answers]
        encoded = encode_story(story, vocab)
        assert session.tokens == encoded["tokens"]
        with torch.no_grad():
            logits, _ = session.model(torch.tensor([encoded["ids"]]))
        probs = logits[0, encoded["answer_positions"]].softmax(-1)  # [slots, V]
        chat = torch.tensor([p for a in answers for top in a.top for p in [top[0][1]]])
        torch.testing.assert_close(chat, probs.max(-1).values, atol=1e-5, rtol=1e-5)
        words = [w for a in answers for w in a.words]
        assert words == vocab.decode(probs.argmax(-1).tolist())
        assert [len(a.words) for a in answers] == [len(g.split(",")) for g in story["answers"]]


def test_a_backward_reader_model_is_fed_whole_question_segments_as_in_eval(vocab, tiny_babi_dir):
    """A model with a backward reader: statements wait for their question, and every answer is the one the
    whole story gives (what eval computes)."""
    import dataclasses

    from babi_dnc.models import PRESETS, build_model

    torch.manual_seed(0)
    config = dataclasses.replace(PRESETS["tiny"], backward_reader=6)
    model = build_model(config, vocab.size, vocab.answer_id).eval()
    story = max(parse_babi_file(tiny_babi_dir.parent / TASK8_TEST), key=lambda s: len(s["questions"]))
    session = ChatSession(model, vocab)
    lines = story_lines(story)
    assert session.feed(lines[0][0]).kind == "fed" and session.pending and not session.tokens  # waits
    answers = [a for text, gold in lines[1:] for a in session.feed(text, gold).answers]
    encoded = encode_story(story, vocab)
    with torch.no_grad():
        logits, _ = model(torch.tensor([encoded["ids"]]))
    probs = logits[0, encoded["answer_positions"]].softmax(-1)  # [slots, V]
    chat = torch.tensor([top[0][1] for a in answers for top in a.top])
    torch.testing.assert_close(chat, probs.max(-1).values, atol=1e-5, rtol=1e-5)
    assert [w for a in answers for w in a.words] == vocab.decode(probs.argmax(-1).tolist())
    session.feed("Mary moved to the garden.")
    session.reset()
    assert session.pending == [] and session.tokens == []


def test_memory_heat_map_and_png(dnc, tmp_path):
    session = dnc()
    assert "Nothing fed yet" in session.handle("/memory").text
    session.handle("Mary moved to the kitchen.")
    session.handle("Where is Mary?")
    text = session.handle("/memory").text
    N = session._traces[-1][1]["write_weights"].shape[-1]  # tiny preset: 8 slots, fewer than the columns
    for part in ("write weighting", "read weighting", "usage after the last step"):
        assert part in text
    rows = [line for line in text.splitlines() if line.split()[:1] in (["where"], ["is"], ["mary"], ["?"], ["-"])]
    assert len(rows) == 2 * 5  # the last line's 5 steps, in the write and the read panels
    assert all(len(row) == len("where") + 1 + N for row in rows)
    png = tmp_path / "sub" / "memory.png"
    reply = session.handle(f"/memory --png {png}")
    assert reply.kind == "info" and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert session.handle("/memory --bogus").kind == "rejected"
    assert session.handle(f"/memory --png {tmp_path}").kind == "rejected"  # a folder: no traceback


def test_lstm_runs_answer_and_have_no_memory(lstm_run, tiny_babi_dir):
    session = ChatSession.from_run(lstm_run, tag="latest", data_dir=tiny_babi_dir)
    assert session.description.startswith("LSTM (16 units)")
    assert session.handle("Mary moved to the kitchen.").kind == "fed"
    assert len(session.handle("Where is Mary?").answers) == 1
    assert "no external memory" in session.handle("/memory").text


# ---------------------------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("line", "kind", "says"),
    [
        ("", "info", "Type a sentence"),
        ("   \t ", "info", "Type a sentence"),
        ("?!.", "rejected", "only punctuation"),
        ("x " * 200, "rejected", "too long"),
        ("Mary " * 2000, "rejected", "too long"),
        ("Mary went to the café.", "rejected", "ASCII"),
        ("Mary went to the \x1b[A", "rejected", "ASCII"),
        ("Mary moved to the bathrom.", "rejected", "did you mean bathroom"),
        ("Mary moved to the zyzzyva.", "rejected", "'zyzzyva'"),
        ("Mary - went.", "rejected", "'-' marks an answer slot"),
        ("Where is Mary? - - - - - - -", "rejected", "too many"),
        ("Where is Mary?\tapple,", "rejected", "the answer after the tab"),
        ("/nope", "rejected", "unknown command"),
        ("/exampel", "rejected", "did you mean /example"),
        ("/slots x", "rejected", "/slots takes"),
    ],
)
def test_lines_that_cannot_be_fed_are_refused_and_not_fed(oracle, line, kind, says):
    oracle.handle("Mary moved to the kitchen.")
    before = list(oracle.tokens)
    reply = oracle.handle(line)
    assert reply.kind == kind and says in reply.text
    assert oracle.tokens == before
    assert answers_of(oracle, ["Where is Mary?"]) == ["kitchen"]


def test_suggestions_are_the_closest_known_words(vocab):
    assert suggest("bathrom", vocab)[0] == "bathroom"
    assert suggest("mary", vocab)[0] == "mary"
    assert suggest(".", vocab) == [] and suggest("qqqqqq", vocab) == []


def test_commands(oracle):
    help_text = oracle.handle("/help").text
    assert all(f"/{name}" in help_text for name in COMMANDS if len(name) > 2)
    assert oracle.handle("/quit").quit and oracle.handle("/exit").quit
    assert "kitchen" in oracle.handle("/words k").text
    assert oracle.handle("/story").text.startswith("The story is empty")
    oracle.handle("Mary moved to the kitchen.")
    oracle.handle("Where is Mary?\tkitchen")
    assert oracle.handle("/story").text.splitlines() == [
        "  1 Mary moved to the kitchen.", "  2 Where is Mary?   -> kitchen  right"]
    assert "no external memory" in oracle.handle("/memory").text


# ---------------------------------------------------------------------------------------------- hypothesis


def _lines(vocab_words: list[str]):
    words = st.sampled_from(vocab_words + ["bathrom", "café", "-", "?", ".", ",", "!", "\t", "–", "/"])
    sentence = st.lists(words, max_size=12).map(" ".join)
    commands = st.sampled_from(["/help", "/reset", "/story", "/memory", "/memory --png", "/memory -x", "/slots 2",
                                "/slots 3", "/slots 0", "/slots auto", "/slots -1", "/example", "/example 1",
                                "/example 8", "/example 42", "/example x", "/next", "/words", "/words ma",
                                "/quit", "/", "//", "/?", "/unknown"])
    return st.one_of(st.text(max_size=60), sentence, sentence.map(lambda s: s + " ?"), commands, st.just(""))


@pytest.fixture(scope="module")
def vocab_words(vocab) -> list[str]:
    return [w for w in vocab.words if w.isalnum()]


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_lines_never_crash_the_session_and_it_still_answers(dnc, vocab_words, tmp_path, monkeypatch, data):
    monkeypatch.chdir(tmp_path)  # nothing random is written into the repository
    session = dnc()
    for line in data.draw(st.lists(_lines(vocab_words), max_size=8)):
        reply = session.handle(line)
        assert isinstance(reply, Reply) and reply.kind in ("fed", "answer", "info", "rejected", "quit")
        assert isinstance(reply.plain(), str)
    reply = session.handle("Mary moved to the kitchen. Where is Mary?")
    assert reply.kind == "answer" and len(reply.answers) == 1
    answer = reply.answers[0]
    assert len(answer.words) == (session.slots or 1)
    for top in answer.top:
        probs = [p for _, p in top]
        assert len(top) == 3 and probs == sorted(probs, reverse=True) and 0 <= probs[-1] <= probs[0] <= 1


# ---------------------------------------------------------------------------------------------- the CLI


def test_cli_through_stdin(tiny_run, tiny_babi_dir, dnc):
    from typer.testing import CliRunner

    from app import app

    lines = ["Mary moved to the kitchen.", "Sandra went to the garden.", "Where is Mary?", "Mary moved to the bathrom.",
             "/story", "/memory", "/example 1", "", "café", "/quit", "Where is Sandra?"]
    result = CliRunner().invoke(app, ["chat", str(tiny_run), "--data-dir", str(tiny_babi_dir), "--seed", "0"],
                                input="\n".join(lines) + "\n")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Traceback" not in out and out.startswith("DNC (memory 8 x 4, 1 read head)")
    expected = answers_of(dnc(), lines[:3])[0]  # the same answer as the session API gives
    assert f"> Where is Mary?\n-> {expected}   (" in out
    assert "did you mean bathroom?" in out and "write weighting" in out and "test story" in out
    assert "ASCII" in out and "bye" in out and "Where is Sandra" not in out.split("> /quit")[1]


def test_escape_sequences_from_a_pipe_are_shown_not_run(tiny_run):
    from typer.testing import CliRunner

    from app import app

    lines = ["\x1b[31mMary\x1b[0m moved to the kitchen.", "\x1b]0;pwned\x07", "Where is \u202eMary?", "/quit"]
    result = CliRunner().invoke(app, ["chat", str(tiny_run)], input="\n".join(lines) + "\n")
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output and "\x07" not in result.output and "\u202e" not in result.output
    assert "> \\x1b[31mMary\\x1b[0m moved to the kitchen." in result.output  # echoed as visible text
    assert "\\x1b]0;pwned\\x07" in result.output and "\\u202eMary" in result.output


def test_cli_story_file(tiny_run, tiny_babi_dir, tmp_path):
    from typer.testing import CliRunner

    from app import app

    path = tmp_path / "story.txt"
    path.write_text("1 Mary moved to the kitchen.\n2 Where is Mary? \tkitchen\t1\n")
    result = CliRunner().invoke(app, ["chat", str(tiny_run), "--story", str(path), "--checkpoint", "latest"])
    assert result.exit_code == 0, result.output
    first, last = result.output.strip().splitlines()
    assert first.startswith("Where is Mary?  -> ") and first.endswith(("right", "wrong (bAbI: kitchen)"))
    assert last == f"accuracy: {int(first.endswith('right'))}/1 = {100.0 * first.endswith('right'):.1f}%"


def test_cli_errors_are_one_sentence(tiny_run, tmp_path):
    from typer.testing import CliRunner

    from app import app

    for args, says in ((["chat", str(tmp_path)], "holds no run"),
                       (["chat", str(tiny_run), "--checkpoint", "worst"], "best or latest"),
                       (["chat", str(tiny_run), "--story", str(tmp_path / "no.txt")], "does not exist")):
        result = CliRunner().invoke(app, args)
        output = " ".join(result.output.split())  # rich wraps the error at the console width
        assert result.exit_code == 2 and says in output and "Traceback" not in output


def _spawn(tiny_run, tiny_babi_dir) -> pexpect.spawn:
    env = {**os.environ, "NO_COLOR": "1", "TERM": "xterm", "COLUMNS": "120", "LINES": "40"}
    return pexpect.spawn(CLI[0], CLI[1:] + ["chat", str(tiny_run), "--data-dir", str(tiny_babi_dir)],
                         env=env, encoding="utf-8", timeout=30, dimensions=(40, 120))


def test_a_terminal_session(tiny_run, tiny_babi_dir, dnc):
    """A real pseudo-terminal: rich prompt, answers, commands, Ctrl-C leaves cleanly."""
    expected = answers_of(dnc(), ["Mary moved to the kitchen.", "Where is Mary?"])[0]
    child = _spawn(tiny_run, tiny_babi_dir)
    child.expect_exact("/help for commands")
    child.expect(PROMPT)
    child.sendline("Mary moved to the kitchen.")
    child.expect(PROMPT)
    child.sendline("Where is Mary?")
    child.expect(r"-> (?:\x1b\[[0-9;]*m)*([a-z]+)")  # the answer word, bold
    assert child.match.group(1) == expected
    child.sendline("/memory")
    child.expect_exact("usage after the last step")
    child.sendline("Mary went to the kichen.")
    child.expect_exact("did you mean kitchen?")
    child.expect(PROMPT)
    child.sendintr()  # Ctrl-C
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0 and "Traceback" not in child.before


def test_ctrl_d_leaves_a_terminal_session(tiny_run, tiny_babi_dir):
    child = _spawn(tiny_run, tiny_babi_dir)
    child.expect(PROMPT)
    child.sendline("/help")
    child.expect_exact("/example [TASK]")
    child.expect(PROMPT)
    child.sendeof()  # Ctrl-D
    child.expect_exact("bye")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0

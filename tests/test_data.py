"""bAbI data: parser, tokenizer, the paper's encoding, vocabulary, sources (folder, .tar.gz, Hub),
validation split, batches, statistics and the `data` command. Everything but the last test uses tiny
hand-written files; the last one checks the real en-10k counts where the real files are found
(conftest.REAL_BABI)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tarfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from babi_dnc import data as babi
from babi_dnc.data import (
    TASK_NAMES,
    MalformedLineError,
    MissingDataWarning,
    UnknownWordsWarning,
    Vocabulary,
    batch_indices,
    collate,
    data_stats,
    encode_story,
    format_task_spec,
    iterate_batches,
    load_babi,
    padding_fraction,
    parse_babi_file,
    parse_task_spec,
    sources,
    tokenize,
)
from babi_dnc.errors import DataError, UserError, VocabularyError

from .conftest import REAL_BABI, find_real_babi, needs_real_babi

# ------------------------------------------------------------------------------------ tiny files

QA8 = """\
1 Mary got the apple there.
2 Mary went to the kitchen.
3 What is Mary carrying?\tapple\t1
4 Mary picked up the football there.
5 What is Mary carrying?\tapple,football\t1 4
1 John went to the garden.
2 What is John carrying?\tnothing\t
"""

QA19 = """\
1 The office is east of the hallway.
2 The kitchen is north of the office.
3 How do you go from the hallway to the kitchen?\te,n\t1 2
"""


def task1_story(i: int) -> str:
    """Task-1-like story number i: 2 + i % 3 moves and two questions (lengths differ by i)."""
    names, places = ["Mary", "John", "Daniel", "Sandra"], ["bathroom", "hallway", "garden", "office"]
    lines, n = [], 0
    for k in range(2 + i % 3):
        n += 1
        lines.append(f"{n} {names[(i + k) % 4]} moved to the {places[(i + 2 * k) % 4]}.")
    n += 1
    lines.append(f"{n} Where is {names[i % 4]}? \t{places[(2 * 0 + i) % 4]}\t1")
    n += 1
    lines.append(f"{n} {names[(i + 1) % 4]} went to the {places[(i + 3) % 4]}.")
    n += 1
    lines.append(f"{n} Where is {names[(i + 1) % 4]}? \t{places[(i + 3) % 4]}\t{n - 1}")
    return "\n".join(lines) + "\n"


def write_folder(root: Path, train: dict[int, int] | None = None, test: dict[int, int] | None = None,
                 set_name: str = "en-10k") -> Path:
    """tasks_1-20_v1-2/<set>/ with task-1-like files: {task: stories} for train and test."""
    folder = root / "tasks_1-20_v1-2"
    (folder / set_name).mkdir(parents=True, exist_ok=True)
    train = {1: 30, 8: 20} if train is None else train
    test = {1: 5, 8: 4} if test is None else test
    for split, counts in (("train", train), ("test", test)):
        for task, stories in counts.items():
            text = "".join(task1_story(i + (0 if split == "train" else 1000)) for i in range(stories))
            if split == "test" and task == 1:
                text += "1 Bill moved to the cellar.\n2 Where is Bill? \tcellar\t1\n"  # words unseen in train
            (folder / set_name / f"qa{task}_{TASK_NAMES[task]}_{split}.txt").write_text(text)
    return folder


def make_tar(folder: Path, out: Path, prefix: str = "tasks_1-20_v1-2") -> Path:
    with tarfile.open(out, "w:gz") as tar:
        for f in sorted(folder.rglob("*.txt")):
            tar.add(f, arcname=f"{prefix}/{f.relative_to(folder).as_posix()}")
    return out


def load(folder, tmp_path, **kw):
    """load_babi of tasks 1 and 8 from a tiny folder (the other tasks are missing on purpose)."""
    kw.setdefault("tasks", "1,8")
    kw.setdefault("cache_dir", tmp_path / "cache")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingDataWarning)
        warnings.simplefilter("ignore", UnknownWordsWarning)
        return load_babi("en-10k", data_dir=folder, **kw)


@pytest.fixture
def folder(tmp_path):
    return write_folder(tmp_path / "data")


# ------------------------------------------------------------------------------------ tokenizer, parser


def test_tokenize():
    assert tokenize("Mary moved to the bathroom.") == ["mary", "moved", "to", "the", "bathroom", "."]
    assert tokenize("Where is Mary? ") == ["where", "is", "mary", "?"]
    assert tokenize("Is the box bigger than the chest?") == ["is", "the", "box", "bigger", "than", "the", "chest", "?"]
    assert tokenize("Hello,  WORLD! it's 3.5") == ["hello", ",", "world", "!", "it", "'", "s", "3", ".", "5"]
    assert tokenize("") == []


def test_parse_stories_multiword_answers_restarts_and_supporting_facts(tmp_path):
    path = tmp_path / "qa8_lists-sets_train.txt"
    path.write_text(QA8)
    stories = parse_babi_file(path)
    assert len(stories) == 2  # the ids restart at 1: a new story
    first, second = stories
    assert first["sentences"] == ["Mary got the apple there.", "Mary went to the kitchen.",
                                  "Mary picked up the football there."]
    assert first["questions"] == ["What is Mary carrying?", "What is Mary carrying?"]
    assert first["answers"] == ["apple", "apple,football"]
    assert first["supporting"] == [[0], [0, 2]]  # line ids 1 and 4 -> sentences 0 and 2
    assert first["question_after"] == [2, 3]
    assert second == {"sentences": ["John went to the garden."], "questions": ["What is John carrying?"],
                      "answers": ["nothing"], "supporting": [[]], "question_after": [1]}
    (path19,) = [tmp_path / "qa19.txt"]
    path19.write_text(QA19)
    (story,) = parse_babi_file(path19)
    assert story["answers"] == ["e,n"] and story["supporting"] == [[0, 1]]
    # bytes, lines, CRLF line ends and blank lines give the same stories
    assert parse_babi_file(QA8.encode()) == stories
    assert parse_babi_file(QA8.replace("\n", "\r\n").encode()) == stories
    assert parse_babi_file(QA8.replace("2 Mary went", "\n2 Mary went").splitlines()) == stories


@pytest.mark.parametrize("bad_line, line_number, words", [
    ("Mary went home.", 3, "line id"),                          # no id
    ("7 Mary went home.", 3, "line id 7"),                      # ids jump
    ("3 Where is Mary?\tkitchen\t1\textra", 3, "tabs"),         # a fourth field
    ("3 Where is Mary?\t\t1", 3, "answer"),                     # no answer
    ("3 Where is Mary?\tapple,,milk\t1", 3, "answer"),          # an empty answer word
    ("3 Where is Mary?\tkitchen\t9", 3, "supporting"),          # a later line
    ("3 Where is Mary?\tkitchen\tone", 3, "supporting"),        # not a number
    ("3 ", 3, "line id"),                                       # no text
    ("3 Where is Mary?", 3, "a question without a tab"),        # not silently a statement
    ("3 Where is Mary? kitchen 1", 3, "a question without a tab"),  # tabs turned into spaces
    ("3 Mary went\tto the kitchen.", 3, "a tab in a statement"),  # blamed on this line, not a later one
    ("3 Where is Mary?\tkitchen\t²", 3, "supporting"),          # a digit that is not 0-9
    ("3 Mary " + "went " * 4000 + "home.", 3, "a line of 20,012 characters"),  # damage, not a story
])
def test_malformed_line_names_file_and_line(tmp_path, bad_line, line_number, words):
    path = tmp_path / "qa1_single-supporting-fact_train.txt"
    path.write_text(f"1 Mary went to the kitchen.\n2 John went to the garden.\n{bad_line}\n")
    with pytest.raises(MalformedLineError) as info:
        parse_babi_file(path, name="en-10k/qa1_single-supporting-fact_train.txt")
    err = info.value
    assert isinstance(err, DataError) and isinstance(err, UserError)
    assert err.line_number == line_number
    assert f"en-10k/qa1_single-supporting-fact_train.txt:{line_number}:" in str(err)
    assert words in str(err)


def test_a_byte_order_mark_is_not_a_malformed_line(tmp_path):
    path = tmp_path / "qa8_lists-sets_train.txt"
    path.write_bytes(b"\xef\xbb\xbf" + QA8.encode())
    assert parse_babi_file(path) == parse_babi_file(QA8.encode())
    assert parse_babi_file(["\ufeff" + line for line in QA8.splitlines()[:1]] + QA8.splitlines()[1:]) == \
        parse_babi_file(QA8.encode())


def test_an_empty_training_file_is_named(tmp_path):
    folder = write_folder(tmp_path / "data", train={1: 20, 8: 10}, test={1: 5})
    (folder / "en-10k" / "qa8_lists-sets_train.txt").write_bytes(b"\xef\xbb\xbf\n \n")
    with pytest.raises(DataError, match=r"qa8_lists-sets_train.txt in .* is empty \(no stories\), so re-download it "
                       "or leave task 8 out of --tasks"):
        load(folder, tmp_path)
    assert set(load(folder, tmp_path, tasks="1").train["task"]) == {1}  # the other tasks still load


def test_supporting_fact_may_not_point_at_a_question():
    lines = ["1 Mary went to the kitchen.", "2 Where is Mary?\tkitchen\t1", "3 Where is Mary?\tkitchen\t2"]
    with pytest.raises(MalformedLineError, match=r"x:3:"):
        parse_babi_file(lines, name="x")


# ------------------------------------------------------------------------------------ encoding, vocabulary


def test_encode_story_is_the_papers_encoding():
    (story, _) = parse_babi_file(QA8.encode())
    enc = encode_story(story)
    assert enc["tokens"] == [
        "mary", "got", "the", "apple", "there", ".",
        "mary", "went", "to", "the", "kitchen", ".",
        "what", "is", "mary", "carrying", "?", "-",
        "mary", "picked", "up", "the", "football", "there", ".",
        "what", "is", "mary", "carrying", "?", "-", "-",
    ]
    assert enc["length"] == 32
    assert enc["answer_positions"] == [17, 30, 31]
    assert enc["answer_question"] == [0, 1, 1]
    assert enc["answer_words"] == ["apple", "apple", "football"]
    vocab = Vocabulary(enc["tokens"] + enc["answer_words"])
    enc = encode_story(story, vocab)
    assert vocab.decode(enc["ids"]) == [t for t in enc["tokens"]]
    assert vocab.decode(enc["answer_ids"]) == ["apple", "apple", "football"]
    assert all(enc["ids"][p] == vocab.index["-"] for p in enc["answer_positions"])
    # path finding: "e,n" is two answer words
    (story19,) = parse_babi_file(QA19.encode())
    enc19 = encode_story(story19)
    assert enc19["tokens"][-3:] == ["?", "-", "-"] and enc19["answer_words"] == ["e", "n"]
    # a story typed by a user: no answers, questions after the sentences -> one '-' each
    typed = encode_story({"sentences": ["Mary went to the garden."], "questions": ["Where is Mary?"]})
    assert typed["tokens"][-5:] == ["where", "is", "mary", "?", "-"] and typed["answer_positions"] == [10]


def test_vocabulary_unknown_is_explicit_and_json_round_trips(tmp_path):
    vocab = Vocabulary(["mary", "-", ".", "?", "kitchen", "mary"])
    assert vocab.words == ["-", ".", "?", "kitchen", "mary"]  # sorted, distinct
    assert vocab.size == len(vocab) == 5 and vocab.unk_id == 5 and vocab.pad_id == 0
    assert vocab.ANSWER == "-" and "-" in vocab and "garden" not in vocab
    assert vocab.encode(["mary", "garden", "."]) == [4, 5, 1]  # unknown -> one past the end
    assert vocab.decode([4, 5, 1]) == ["mary", "<unk>", "."]
    assert vocab.unknown(["mary", "garden", "zoo", "garden"]) == ["garden", "zoo"]
    # one-hot input of `size` columns: the unknown id is the all-zero row
    one_hot = torch.nn.functional.one_hot(torch.tensor([vocab.unk_id]), vocab.size + 1)[:, :vocab.size]
    assert one_hot.sum() == 0
    text = vocab.to_json()
    assert json.loads(text)["words"] == vocab.words
    assert Vocabulary.from_json(text) == vocab
    assert Vocabulary.from_json(json.loads(text)) == vocab
    vocab.save(tmp_path / "vocab.json")
    assert Vocabulary.load(tmp_path / "vocab.json") == vocab
    with pytest.raises(VocabularyError):
        Vocabulary.from_json('{"words": ["b", "a"]}')  # ids would shift
    with pytest.raises(VocabularyError):
        Vocabulary.from_json("not json")
    with pytest.raises(VocabularyError):
        Vocabulary.from_json('{"words": ["a", "b"], "size": 3}')


@pytest.mark.parametrize("spec, tasks", [
    ("all", list(range(1, 21))), ("ALL", list(range(1, 21))), ("1,2,5-7", [1, 2, 5, 6, 7]),
    (" 3 ", [3]), ("7-5,5", None), ("20,1,1", [1, 20]), (4, [4]), ([2, 1], [1, 2]),
    ("0", None), ("21", None), ("1-", None), ("", None), ("a", None), ("1,,2", None), ([], None),
])
def test_parse_task_spec(spec, tasks):
    if tasks is None:
        with pytest.raises(babi.TaskSpecError) as info:
            parse_task_spec(spec)
        assert isinstance(info.value, DataError) and "1,2,5-7" in str(info.value)
    else:
        assert parse_task_spec(spec) == tasks
        assert parse_task_spec(format_task_spec(tasks)) == tasks
    assert format_task_spec([1, 2, 4, 5, 6, 9]) == "1-2,4-6,9"


# ------------------------------------------------------------------------------------ loading


def test_load_from_folder(folder, tmp_path):
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        data = load_babi("en-10k", tasks="1,8", data_dir=folder, cache_dir=tmp_path / "cache")
    (unknown,) = [w for w in record if issubclass(w.category, UnknownWordsWarning)]
    assert "test files" in str(unknown.message) and "bill, cellar" in str(unknown.message)
    assert data.source["kind"] == "local-dir" and data.source["path"] == str(folder.resolve())
    # the folder's checksum is the sha256 of its `sha256sum` listing, sorted by path
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.txt"))
    listing = "".join(f"{hashlib.sha256((folder / f).read_bytes()).hexdigest()}  {f}\n" for f in files)
    assert data.source["sha256"] == hashlib.sha256(listing.encode()).hexdigest()
    assert set(data.train.column_names) >= {
        "task", "story_id", "sentences", "questions", "answers", "supporting", "tokens", "ids", "length",
        "answer_positions", "answer_ids", "answer_question"}
    assert len(data.train) + len(data.valid) == 50 and len(data.test) == 10
    row = data.train[0]
    assert row["length"] == len(row["tokens"]) == len(row["ids"])
    assert [row["tokens"][p] for p in row["answer_positions"]] == ["-"] * len(row["answer_ids"])
    assert data.vocab.decode(row["ids"]) == row["tokens"]
    # the vocabulary is the training data's: the test-only words are explicit unknowns, not merged
    assert "cellar" not in data.vocab and "-" in data.vocab
    bill = data.test.filter(lambda r: "bill" in r["tokens"])[0]
    assert bill["ids"][bill["tokens"].index("bill")] == data.vocab.unk_id
    assert bill["answer_ids"] == [data.vocab.unk_id]
    # a second load comes from the cache and is identical
    again = load(folder, tmp_path)
    assert again.vocab == data.vocab and again.train[:] == data.train[:] and again.test[:] == data.test[:]
    assert list((tmp_path / "cache").iterdir())
    # no cache at all
    nocache = load(folder, tmp_path, cache_dir=False)
    assert nocache.train[:] == data.train[:]


def test_vocabulary_does_not_depend_on_tasks_and_can_be_given(folder, tmp_path):
    (folder / "en-10k" / "qa2_two-supporting-facts_train.txt").write_text(
        "1 Fred moved to the attic.\n2 Where is Fred? \tattic\t1\n")  # words only task 2 has
    only1 = load(folder, tmp_path, tasks="1")
    everything = load(folder, tmp_path, tasks="all")
    assert only1.vocab == everything.vocab and "attic" in only1.vocab
    assert set(only1.train["task"]) == {1} and set(only1.test["task"]) == {1}
    given = Vocabulary(["-", ".", "?", "mary", "moved", "to", "the"])
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        small = load_babi("en-10k", tasks="1", data_dir=folder, vocab=given, cache_dir=tmp_path / "cache")
    assert any(issubclass(w.category, UnknownWordsWarning) and "bathroom" in str(w.message) for w in record)
    assert not any("vocabulary comes from" in str(w.message) for w in record)
    assert small.vocab is given
    ids = np.concatenate([np.asarray(r) for r in small.train["ids"]])
    assert ids.max() == given.unk_id and (ids == given.unk_id).any()


def test_validation_split_is_seeded_disjoint_and_ten_percent_per_task(folder, tmp_path):
    a = load(folder, tmp_path, seed=0)
    b = load(folder, tmp_path, seed=0)
    c = load(folder, tmp_path, seed=1)
    key = lambda ds: sorted(zip(ds["task"], ds["story_id"], strict=True))  # noqa: E731
    assert key(a.valid) == key(b.valid) and key(a.train) == key(b.train)
    assert key(a.valid) != key(c.valid)
    assert not set(key(a.valid)) & set(key(a.train))
    assert sorted(key(a.valid) + key(a.train)) == [(1, i) for i in range(30)] + [(8, i) for i in range(20)]
    for task, stories in ((1, 30), (8, 20)):
        assert sum(t == task for t in a.valid["task"]) == round(0.1 * stories)
    # a task's split does not depend on the other tasks loaded
    only8 = load(folder, tmp_path, tasks="8", seed=0)
    assert key(only8.valid) == [k for k in key(a.valid) if k[0] == 8]
    # the test split is untouched
    assert key(a.test) == key(c.test) == [(1, i) for i in range(6)] + [(8, i) for i in range(4)]
    twenty = load(folder, tmp_path, valid_fraction=0.2)
    assert len(twenty.valid) == 6 + 4
    with pytest.raises(DataError):
        load(folder, tmp_path, valid_fraction=1.0)


def test_load_from_tar_parent_folder_and_env(folder, tmp_path, monkeypatch):
    from_folder = load(folder, tmp_path)
    archive = make_tar(folder, tmp_path / "tasks_1-20_v1-2.tar.gz")
    from_tar = load(archive, tmp_path)
    assert from_tar.source["kind"] == "local-tar"
    assert from_tar.source["sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest()
    assert from_tar.train[:] == from_folder.train[:] and from_tar.test[:] == from_folder.test[:]
    assert from_tar.vocab == from_folder.vocab
    # the parent folder of tasks_1-20_v1-2, or one holding only the archive
    assert load(folder.parent, tmp_path).source["path"] == str(folder.resolve())
    only_archive = tmp_path / "only-archive"
    only_archive.mkdir()
    make_tar(folder, only_archive / "tasks_1-20_v1-2.tar.gz", prefix="./tasks_1-20_v1-2")
    assert load(only_archive, tmp_path).train[:] == from_folder.train[:]
    # $BABI_DNC_DATA when no data_dir is given
    monkeypatch.setenv("BABI_DNC_DATA", str(archive))
    assert load(None, tmp_path).source["kind"] == "local-tar"


def test_bad_paths_and_archives(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load(tmp_path / "nowhere", tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no bAbI data"):
        load(tmp_path / "empty", tmp_path)
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(b"this is not a tar file at all" * 10)
    with pytest.raises(DataError, match="not a readable tar.gz"):
        load(broken, tmp_path)
    other = tmp_path / "other"
    (other / "stuff").mkdir(parents=True)
    (other / "stuff" / "readme.txt").write_text("hello")
    with pytest.raises(DataError, match="does not hold bAbI"):
        load(make_tar(other, tmp_path / "other.tar.gz", prefix="x"), tmp_path)
    with pytest.raises(DataError, match="unknown bAbI set"):
        load_babi("fr", data_dir=tmp_path)
    with pytest.raises(babi.TaskSpecError):
        load_babi("en-10k", tasks="0", data_dir=tmp_path)


def test_missing_files_are_named_and_the_rest_works(tmp_path):
    folder = write_folder(tmp_path / "data", train={1: 20}, test={1: 5, 3: 4})  # task 3: test only
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        data = load_babi("en-10k", tasks="1,3", data_dir=folder, cache_dir=tmp_path / "cache")
    assert "en-10k/qa3_three-supporting-facts_train.txt" in data.missing
    assert "en-10k/qa1_single-supporting-fact_train.txt" not in data.missing
    assert len(data.missing) == 40 - 3
    record = [w for w in record if issubclass(w.category, MissingDataWarning)]
    messages = " ".join(str(w.message) for w in record)
    assert len(record) == 1  # one warning, however many files
    assert "qa3_three-supporting-facts_train.txt is missing" in messages and "test stories are kept" in messages
    assert "training files of tasks 2,4-20, not requested" in messages
    assert set(data.train["task"]) == {1} and set(data.test["task"]) == {1, 3}
    stats = data_stats(data)
    files = {f["file"]: f for f in stats["files"]}
    assert files["en-10k/qa3_three-supporting-facts_train.txt"]["present"] is False
    assert files["en-10k/qa3_three-supporting-facts_test.txt"]["questions"] == 4 * 2
    with pytest.raises(DataError, match="none of the requested"):
        load_babi("en-10k", tasks="5-7", data_dir=folder, cache_dir=tmp_path / "cache")
    test_only = write_folder(tmp_path / "test-only", train={}, test={1: 3})
    with pytest.raises(DataError, match="vocabulary"):
        load(test_only, tmp_path, tasks="1")


# ------------------------------------------------------------------------------------ Hugging Face Hub


HUB_FILE = {"repo_id": "facebook/babi_qa", "repo_type": "dataset", "filename": "data/tasks_1-20_v1-2.tar.gz"}


class FakeHub:
    """hf_hub_download and the Hub's session, recorded: the archive is in the cache or not, and the Hub
    answers or not."""

    def __init__(self, archive: Path, cached: bool, online: bool):
        self.archive, self.cached, self.online = archive, cached, online
        self.downloads, self.requests = [], 0

    def download(self, **kwargs):
        self.downloads.append(kwargs)
        if kwargs.get("local_files_only") and not self.cached:
            raise sources.LocalEntryNotFoundError("not in the cache")
        assert kwargs.get("local_files_only") or self.online, "a download while the Hub cannot be reached"
        return str(self.archive)

    def head(self, url, timeout):
        self.requests += 1
        assert timeout <= 10
        if not self.online:
            raise ConnectionError("Name or service not known")


@pytest.fixture
def hub(folder, tmp_path, monkeypatch):
    """Install a FakeHub: hub(cached=..., online=...) -> it."""
    snapshot = tmp_path / "hub" / "datasets--facebook--babi_qa" / "snapshots" / ("ab" * 20) / "data"
    snapshot.mkdir(parents=True)
    archive = make_tar(folder, snapshot / "tasks_1-20_v1-2.tar.gz")
    monkeypatch.delenv("BABI_DNC_DATA", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)

    def install(cached: bool, online: bool) -> FakeHub:
        fake = FakeHub(archive, cached, online)
        monkeypatch.setattr(sources, "hf_hub_download", fake.download)
        monkeypatch.setattr(sources, "get_session", lambda: fake)
        return fake

    return install


def test_the_hub_archive_is_taken_from_the_cache_without_asking_the_hub(hub, tmp_path):
    fake = hub(cached=True, online=False)
    data = load(None, tmp_path)
    assert fake.downloads == [{**HUB_FILE, "local_files_only": True}] and fake.requests == 0
    assert data.source["kind"] == "hub" and data.source["revision"] == "ab" * 20
    assert data.source["sha256"] == hashlib.sha256(fake.archive.read_bytes()).hexdigest()
    assert len(data.train) + len(data.valid) == 50


def test_the_hub_archive_is_downloaded_once_the_hub_answers(hub, tmp_path):
    fake = hub(cached=False, online=True)
    assert load(None, tmp_path).source["kind"] == "hub"
    assert fake.downloads == [{**HUB_FILE, "local_files_only": True}, HUB_FILE] and fake.requests == 1


@pytest.mark.parametrize("offline_mode", [True, False])
def test_offline_the_hub_is_given_up_at_once_in_one_sentence(hub, tmp_path, monkeypatch, offline_mode):
    """No retries: under HF_HUB_OFFLINE the Hub is not asked at all; unreachable, it is asked once."""
    fake = hub(cached=False, online=False)
    if offline_mode:
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError) as info:
        sources.resolve_source(None)
    message = str(info.value)
    assert ("HF_HUB_OFFLINE is set" in message) is offline_mode
    assert ("the Hub cannot be reached: ConnectionError" in message) is not offline_mode
    assert "--data-dir" in message and message.count(". ") == 0 and message.endswith(".")
    assert fake.requests == (0 if offline_mode else 1) and len(fake.downloads) == 1  # the cache lookup only


@pytest.mark.parametrize("error", [OSError("Name or service not known"), RuntimeError()])
def test_hub_failure_says_what_to_do(tmp_path, monkeypatch, error):
    def failing_download(**kwargs):
        raise error

    monkeypatch.delenv("BABI_DNC_DATA", raising=False)
    monkeypatch.setattr(sources, "hf_hub_download", failing_download)
    with pytest.raises(DataError) as info:
        load(None, tmp_path)
    message = str(info.value)
    assert "--data-dir" in message and "BABI_DNC_DATA" in message and "facebook/babi_qa" in message
    assert type(error).__name__ in message


# ------------------------------------------------------------------------------------ batches


def test_collate_pads_masks_and_places_targets():
    rows = [
        {"ids": [5, 6, 7, 0, 9], "answer_positions": [3, 4], "answer_ids": [11, 12], "answer_question": [0, 0],
         "task": 8, "story_id": 3},
        {"ids": [1, 2, 0], "answer_positions": [2], "answer_ids": [13], "answer_question": [0],
         "task": 1, "story_id": 0},
    ]
    batch = collate(rows)
    assert batch["ids"].dtype == torch.long and batch["ids"].shape == (2, 5)
    assert batch["ids"].tolist() == [[5, 6, 7, 0, 9], [1, 2, 0, 0, 0]]
    assert batch["mask"].tolist() == [[True] * 5, [True, True, True, False, False]]
    assert batch["targets"].tolist() == [[-100, -100, -100, 11, 12], [-100, -100, 13, -100, -100]]
    assert batch["question"].tolist() == [[-1, -1, -1, 0, 0], [-1, -1, 0, -1, -1]]
    assert batch["lengths"].tolist() == [5, 3] and batch["task"].tolist() == [8, 1]
    assert batch["story"].tolist() == [3, 0]


def test_iterate_batches_deterministic_bucketed_and_complete(folder, tmp_path):
    data = load(folder, tmp_path)
    ds = data.train
    lengths = np.asarray(ds["length"])

    def epoch(seed, e, **kw):
        return [b["index"].tolist() for b in iterate_batches(ds, 4, seed=seed, epoch=e, **kw)]

    assert epoch(0, 0) == epoch(0, 0)
    assert epoch(0, 0) != epoch(0, 1) and epoch(0, 0) != epoch(1, 0)
    assert sorted(i for b in epoch(0, 3) for i in b) == list(range(len(ds)))  # every story once
    for batch in iterate_batches(ds, 4, seed=0, epoch=0):
        for b, i in enumerate(batch["index"].tolist()):
            row = ds[i]
            n = row["length"]
            assert batch["ids"][b, :n].tolist() == row["ids"] and not batch["mask"][b, n:].any()
            assert batch["targets"][b, row["answer_positions"]].tolist() == row["answer_ids"]
            assert (batch["targets"][b] != -100).sum() == len(row["answer_ids"])
        assert batch["ids"].shape[1] == batch["lengths"].max()
    ordered = [b["lengths"].tolist() for b in iterate_batches(ds, 4, shuffle=False)]
    flat = [n for b in ordered for n in b]
    assert flat == sorted(lengths.tolist())  # evaluation order: by length
    plain = padding_fraction(ds, 8, bucket=False)
    assert 0 <= padding_fraction(ds, 8, shuffle=False) <= padding_fraction(ds, 8) <= plain
    assert padding_fraction(ds, 1) == 0.0
    assert [len(b) for b in batch_indices(lengths, 8, drop_last=True)] == [8] * (len(ds) // 8)


def test_batch_indices_buckets_within_chunks():
    lengths = np.arange(100)[::-1]
    batches = batch_indices(lengths, 5, seed=3, epoch=2, bucket_batches=4)
    assert sorted(np.concatenate(batches).tolist()) == list(range(100))
    for b in batches:  # sorted by length inside each batch
        assert (np.diff(lengths[b]) >= 0).all()
    again = batch_indices(lengths, 5, seed=3, epoch=2, bucket_batches=4)
    assert all((x == y).all() for x, y in zip(batches, again, strict=True))


def test_data_stats(folder, tmp_path):
    data = load(folder, tmp_path)
    stats = data_stats(data)
    json.dumps(stats)  # JSON-ready
    rows = {(r["task"], r["split"]): r for r in stats["rows"]}
    assert rows[1, "train"]["stories"] + rows[1, "valid"]["stories"] == 30
    assert rows[1, "train"]["questions"] + rows[1, "valid"]["questions"] == 60
    assert rows[1, "test"]["questions"] == 2 * 5 + 1
    assert rows[1, "test"]["unknown_tokens"] == 3 and rows[1, "test"]["unknown_answers"] == 1
    assert rows[8, "valid"]["longest"] == max(data.valid.filter(lambda r: r["task"] == 8)["length"])
    assert stats["vocab_size"] == data.vocab.size and stats["unk_id"] == data.vocab.size
    assert stats["sha256"] == data.source["sha256"] and stats["source"]["kind"] == "local-dir"
    assert stats["totals"]["test"]["stories"] == 10
    assert {f["file"] for f in stats["files"]} == {
        f"en-10k/qa{t}_{TASK_NAMES[t]}_{s}.txt" for t in (1, 8) for s in ("train", "test")}


# ------------------------------------------------------------------------------------ the `data` command


def test_data_command_json_and_table(folder, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import app

    monkeypatch.setenv("BABI_DNC_CACHE", str(tmp_path / "cache"))
    command = app.app
    runner = CliRunner()
    result = runner.invoke(command, ["data", "--data-dir", str(folder), "--tasks", "1,8", "--stats", "--json"])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)  # nothing but JSON on stdout
    assert stats["set"] == "en-10k" and stats["tasks"] == [1, 8]
    assert sum(r["questions"] for r in stats["rows"] if r["task"] == 1 and r["split"] != "test") == 60
    result = runner.invoke(command, ["data", "--data-dir", str(folder), "--tasks", "1,8", "--stats"])
    assert result.exit_code == 0, result.output
    for text in ("single-supporting-fact", "valid", f"vocabulary: {stats['vocab_size']} symbols",
                 stats["sha256"], "missing files"):
        assert text in result.stdout
    result = runner.invoke(command, ["data", "--data-dir", str(tmp_path / "nowhere")])
    text = " ".join(result.output.split())  # rich wraps long lines
    assert result.exit_code == 2 and "does not exist, so point --data-dir" in text and "Traceback" not in text
    result = runner.invoke(command, ["data", "--data-dir", str(folder), "--tasks", "1-x"])
    assert result.exit_code == 2 and "1,2,5-7" in result.output


# ------------------------------------------------------------------------------------ the real files


def test_the_real_files_are_found_by_the_makefiles_rule(tmp_path):
    """$BABI_DNC_DATA first (the folder or its parent), else the ../shared copy; a set but unusable path
    finds nothing (as `make DATA=...` would use it)."""
    folder = tmp_path / "data" / "tasks_1-20_v1-2"
    (folder / "en-10k").mkdir(parents=True)
    shared = tmp_path / "shared" / "tasks_1-20_v1-2"
    (shared / "en-10k").mkdir(parents=True)
    assert find_real_babi(str(folder), shared) == folder
    assert find_real_babi(str(folder.parent), shared) == folder
    assert find_real_babi(None, shared) == find_real_babi("", shared) == shared
    assert find_real_babi(str(tmp_path / "nowhere"), shared) is None
    assert find_real_babi(None, tmp_path / "nowhere") is None


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_make_test_passes_data_to_the_tests():
    root = Path(__file__).resolve().parents[1]
    dry_run = subprocess.run(["make", "-n", "-C", str(root), "test", "DATA=/some/tasks_1-20_v1-2"],
                             capture_output=True, text=True, check=True).stdout
    assert 'BABI_DNC_DATA="/some/tasks_1-20_v1-2"' in next(line for line in dry_run.splitlines() if "pytest" in line)


@needs_real_babi
def test_real_en10k_counts_and_vocabulary():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = load_babi("en-10k", tasks="all", data_dir=REAL_BABI)  # default cache: fast after the first run
    present = {n for n in TASK_NAMES if (REAL_BABI / babi.task_file("en-10k", n, "train")).is_file()}
    expected_missing = sorted(babi.task_file("en-10k", n, "train") for n in TASK_NAMES if n not in present)
    assert sorted(data.missing) == expected_missing
    if expected_missing:
        assert any(issubclass(w.category, MissingDataWarning) for w in caught)
    stats = data_stats(data)
    rows = {(r["task"], r["split"]): r for r in stats["rows"]}
    for task in TASK_NAMES:
        train_questions = rows[task, "train"]["questions"] + rows[task, "valid"]["questions"]
        assert train_questions == (10000 if task in present else 0), task
        assert rows[task, "test"]["questions"] == 1000, task
        if task in present:
            stories = rows[task, "train"]["stories"] + rows[task, "valid"]["stories"]
            assert rows[task, "valid"]["stories"] == round(0.1 * stories)
    # the vocabulary, counted independently from the raw training files: 156 words + '.', '?', '-'
    words = set()
    for task in present:
        for line in (REAL_BABI / babi.task_file("en-10k", task, "train")).read_text().splitlines():
            text, *rest = line.split(" ", 1)[1].split("\t")
            words.update(text.lower().replace(".", " ").replace("?", " ").split())
            if rest:
                words.update(rest[0].lower().split(","))
    assert len(words) == 156
    assert data.vocab.words == sorted(words | {".", "?", "-"}) and data.vocab.size == 159
    assert stats["totals"]["test"]["answer_words"] > stats["totals"]["test"]["questions"]  # tasks 8 and 19
    batch = next(iterate_batches(data.valid, 16, seed=0))
    assert batch["ids"].max() < 159 and batch["targets"].max() < 159


def test_one_unrequested_missing_training_file_is_named_in_the_singular(tmp_path):
    train = {t: 5 for t in range(1, 21) if t != 3}
    folder = write_folder(tmp_path / "data", train=train, test={1: 5})
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        load_babi("en-10k", tasks="1", data_dir=folder, cache_dir=tmp_path / "cache")
    messages = " ".join(str(w.message) for w in record if issubclass(w.category, MissingDataWarning))
    assert "(also missing: the training file of task 3, not requested)" in messages

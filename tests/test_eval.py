"""The evaluation harness, aggregation, published numbers, reports and the `eval` / `viz` commands.

Runs are trained once per module with the tiny preset on the tiny bAbI folder of conftest (tasks 1 and 8;
task 8 has answers of several words): a DNC with two seeds and an LSTM baseline.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import shutil
import statistics
import warnings
from pathlib import Path

import datasets
import pandas as pd
import pytest
import torch
from rich.console import Console
from typer.testing import CliRunner

import app
from babi_dnc.data import Vocabulary
from eval.aggregate import compare, group_runs, published_column, results_table
from eval.harness import EvalConfig, evaluate_runs, score_answers, score_questions, task_errors
from eval.reference import PUBLISHED, published_tasks
from eval.report import console_table
from eval.report.document import summary_lines
from eval.report.export import to_json

runner = CliRunner()

# Graves et al. 2016, Extended Data Table 1: DNC1 and LSTM 512, mean and sd over 20 runs (% error), tasks 1..20.
PAPER_DNC1 = [(9.0, 12.6), (39.2, 20.5), (39.6, 16.4), (0.4, 0.7), (1.5, 1.0), (6.9, 7.5), (9.8, 7.0), (5.5, 5.9),
              (7.7, 8.3), (9.6, 11.4), (3.3, 5.7), (5.0, 6.3), (3.1, 3.6), (11.0, 7.5), (27.2, 20.1), (53.6, 1.9),
              (32.4, 8.0), (4.2, 1.8), (64.6, 37.4), (0.0, 0.1)]
PAPER_LSTM512 = [(28.4, 1.5), (56.0, 1.5), (51.3, 1.4), (0.8, 0.5), (3.2, 0.5), (15.2, 1.5), (16.4, 1.4), (17.7, 1.2),
                 (15.4, 1.5), (28.7, 1.7), (12.2, 3.5), (5.4, 0.6), (7.2, 2.3), (55.9, 1.2), (47.0, 1.7), (53.3, 1.3),
                 (34.8, 4.1), (5.0, 1.4), (90.9, 1.1), (1.3, 0.4)]


# ------------------------------------------------------------------------------------------ fixtures


def _train(out: Path, model: str, data_dir: Path, seeds: int = 1) -> Path:
    from babi_dnc.babi_task import TRAIN_PRESETS
    from babi_dnc.babi_train import train_babi
    from babi_dnc.data.config import DataConfig
    from babi_dnc.models import preset

    config = dataclasses.replace(TRAIN_PRESETS["tiny"], max_steps=4, eval_every=2, device="cpu", progress=False,
                                 tensorboard=False)
    data = DataConfig(set_name="en-10k", tasks="1,8", data_dir=str(data_dir), valid_fraction=0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the other 18 tasks are missing on purpose
        train_babi(preset("tiny", model=model), data, config, out, seeds=seeds)
    return out


@pytest.fixture(scope="module")
def runs(tiny_babi_dir, tmp_path_factory) -> dict[str, Path]:
    """A tiny DNC with two seeds (RUN/seed-0, RUN/seed-1) and a tiny LSTM baseline."""
    root = tmp_path_factory.mktemp("eval-runs")
    return {"dnc": _train(root / "dnc", "dnc", tiny_babi_dir, seeds=2),
            "lstm": _train(root / "lstm", "lstm", tiny_babi_dir)}


@pytest.fixture(scope="module")
def report(runs, tmp_path_factory) -> dict:
    """`babi-dnc eval DNC LSTM --report DIR --json`: the exit code, the JSON and the report folder."""
    out = tmp_path_factory.mktemp("report")
    result = runner.invoke(app.app, ["eval", str(runs["dnc"]), str(runs["lstm"]), "--report", str(out), "--json",
                                     "--device", "cpu", "--story-tasks", "8"])
    assert result.exit_code == 0, result.output
    return {"json": json.loads(result.stdout), "dir": out, "stderr": result.stderr}


# ------------------------------------------------------------------------------------------ published


def test_published_numbers_are_the_papers():
    frame = published_tasks()
    assert list(frame.index) == list(range(1, 21))
    assert frame.loc[2, "deepmind_dnc1_mean"] == 39.2 and frame.loc[2, "deepmind_dnc1_sd"] == 20.5
    for task, ((dm, ds), (lm, ls)) in enumerate(zip(PAPER_DNC1, PAPER_LSTM512, strict=True), start=1):
        assert (frame.loc[task, "deepmind_dnc1_mean"], frame.loc[task, "deepmind_dnc1_sd"]) == (dm, ds), task
        assert (frame.loc[task, "deepmind_lstm512_mean"], frame.loc[task, "deepmind_lstm512_sd"]) == (lm, ls), task
    dnc1, lstm = PUBLISHED["dnc1"], PUBLISHED["lstm512"]
    assert (dnc1.mean_error, dnc1.mean_sd, dnc1.failed, dnc1.failed_sd, dnc1.best_error) == (16.7, 7.6, 11.2, 5.4, 4.3)
    assert (lstm.mean_error, lstm.mean_sd, lstm.failed, lstm.failed_sd, lstm.best_error) == (27.3, 0.8, 17.1, 1.0, 25.2)
    # the per-task means agree with the paper's summary
    assert round(frame["deepmind_dnc1_mean"].mean(), 1) == 16.7
    assert round(frame["deepmind_lstm512_mean"].mean(), 1) == 27.3


def test_published_column_over_all_tasks_and_a_subset():
    full = published_column("dnc1")
    assert (full.mean_error, full.mean_sd, full.failed, full.note) == (16.7, 7.6, 11.2, None)
    assert full.per_task.loc[2].tolist() == [39.2, 20.5]
    subset = published_column("dnc1", [1, 2])
    assert subset.tasks == [1, 2]
    assert subset.mean_error == pytest.approx((9.0 + 39.2) / 2)
    assert subset.mean_sd is None and subset.failed == 2 and subset.note  # labelled as derived


# ------------------------------------------------------------------------------------------ scoring


def test_a_question_is_right_only_if_every_answer_word_is():
    vocab = Vocabulary(["-", ".", "?", "apple", "football", "milk", "no", "yes"])
    V = vocab.size
    # story 0: question 0 has two answer words at steps 2 and 3, question 1 one word at step 5;
    # story 1: question 0 has two answer words at steps 1 and 2 (then padding)
    question = torch.tensor([[-1, -1, 0, 0, -1, 1], [-1, 0, 0, -1, -1, -1]])
    targets = torch.full((2, 6), -100)
    ids = vocab.encode(["apple", "football", "yes", "milk", "football"])
    targets[0, 2], targets[0, 3], targets[0, 5] = ids[0], ids[1], ids[2]
    targets[1, 1], targets[1, 2] = ids[3], ids[4]
    predicted = targets.clamp(min=0).clone()
    predicted[0, 3] = vocab.encode(["milk"])[0]  # one wrong word of two
    logits = torch.nn.functional.one_hot(predicted, V).float()  # [2, 6, V]
    batch = {"question": question, "targets": targets, "task": torch.tensor([8, 8]), "story": torch.tensor([0, 1])}

    q = score_questions(score_answers(logits, batch), vocab)
    assert q[["story_id", "q"]].values.tolist() == [[0, 0], [0, 1], [1, 0]]
    assert q["expected"].tolist() == ["apple,football", "yes", "milk,football"]
    assert q["predicted"].tolist() == ["apple,milk", "yes", "milk,football"]
    assert q["correct"].tolist() == [False, True, True]
    assert q["words"].tolist() == [2, 1, 2]
    errors = task_errors(q)
    assert errors.loc[8, "questions"] == 3 and errors.loc[8, "wrong"] == 1
    assert errors.loc[8, "error"] == pytest.approx(100 / 3) and bool(errors.loc[8, "failed"])


# ------------------------------------------------------------------------------------------ harness


def _raw_questions(folder: Path) -> dict[int, int]:
    """Questions per task in the raw test files (lines with a tab): an independent count."""
    counts = {}
    for path in sorted((folder / "en-10k").glob("qa*_test.txt")):
        task = int(re.match(r"qa(\d+)_", path.name).group(1))
        counts[task] = sum("\t" in line for line in path.read_text().splitlines())
    return counts


def test_per_task_errors_match_an_independent_recount(report, tiny_babi_dir):
    out = report["dir"]
    questions = pd.read_csv(out / "questions.csv", keep_default_na=False)
    results = pd.read_csv(out / "results.csv")
    assert list(questions.columns) == ["run", "task", "story_id", "q", "question", "expected", "predicted", "correct"]
    assert sorted(questions["run"].unique()) == ["dnc/seed-0", "dnc/seed-1", "lstm"]
    raw = _raw_questions(tiny_babi_dir)
    for (run, task), group in questions.groupby(["run", "task"]):
        wrong = int((group["expected"] != group["predicted"]).sum())  # recount from the strings
        assert len(group) == raw[task]  # every question of the test file, once
        assert group[["story_id", "q"]].duplicated().sum() == 0
        row = results[(results["run"] == run) & (results["task"] == task)].iloc[0]
        assert (row["questions"], row["wrong"]) == (len(group), wrong)
        assert row["error"] == pytest.approx(100 * wrong / len(group), abs=1e-4)
        assert report["json"]["runs"][[r["run"] for r in report["json"]["runs"]].index(run)]["tasks"][str(task)][
            "wrong"] == wrong
    multi = questions[questions["expected"].str.contains(",")]
    assert len(multi) > 0  # task 8 has answers of several words, scored as one question each


def test_two_seeds_aggregate_like_a_hand_computation(report):
    data = report["json"]
    per_run = {r["run"]: r for r in data["runs"]}
    dnc = next(m for m in data["models"] if m["label"] == "DNC")
    assert dnc["runs"] == 2
    seeds = [per_run["dnc/seed-0"], per_run["dnc/seed-1"]]
    for task in ("1", "8"):
        errors = [100 * r["tasks"][task]["wrong"] / r["tasks"][task]["questions"] for r in seeds]
        assert dnc["tasks"][task]["mean"] == pytest.approx((errors[0] + errors[1]) / 2)
        assert dnc["tasks"][task]["sd"] == pytest.approx(statistics.stdev(errors))
    means = [statistics.mean(100 * t["wrong"] / t["questions"] for t in r["tasks"].values()) for r in seeds]
    failed = [sum(100 * t["wrong"] / t["questions"] > 5 for t in r["tasks"].values()) for r in seeds]
    assert dnc["mean_error"] == pytest.approx(statistics.mean(means))
    assert dnc["mean_sd"] == pytest.approx(statistics.stdev(means))
    assert dnc["failed_tasks"] == pytest.approx(statistics.mean(failed))
    assert dnc["best_error"] == pytest.approx(min(means))
    assert dnc["best_run"] == ["dnc/seed-0", "dnc/seed-1"][means.index(min(means))]
    lstm = next(m for m in data["models"] if m["label"] == "LSTM")
    assert lstm["runs"] == 1 and lstm["mean_sd"] is None  # one run: no sd
    published = {m["label"]: m for m in data["published"]}
    assert published["DNC1, Graves 2016"]["tasks"]["8"] == {"mean": 5.5, "sd": 5.9}


def test_runs_named_separately_with_one_config_are_one_group(runs):
    config = EvalConfig(device="cpu")
    results, failures = evaluate_runs([runs["dnc"] / "seed-1", runs["dnc"] / "seed-0", runs["lstm"]], config)
    assert not failures
    groups = group_runs(results)
    assert [[r.label for r in g] for g in groups] == [["dnc/seed-1", "dnc/seed-0"], ["lstm"]]
    comparison = compare(results)
    assert [c.label for c in comparison.ours] == ["DNC", "LSTM"] and comparison.ours[0].runs == 2
    assert comparison.tasks == [1, 8] and comparison.subset


# ------------------------------------------------------------------------------------------ reports


def test_report_files_exist_and_the_html_is_self_contained(report):
    out = report["dir"]
    for name in ("report.md", "report.html", "results.csv", "questions.csv", "comparison.csv"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    for plot in ("task-errors.png", "training-curves.png", "memory-task8.png"):
        assert (out / "plots" / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", plot
    page = (out / "report.html").read_text()
    sources = re.findall(r"""(?:src|href)\s*=\s*["']?([^"' >]+)""", page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources), sources[:3]
    assert "<script" not in page and "<link" not in page and "@import" not in page
    assert page.count("data:image/png;base64,") == 3
    md = (out / "report.md").read_text()
    for link in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md):
        assert (out / link).is_file(), link
    for needed in ("DNC1, Graves 2016", "9.0 ± 12.6", "Provenance", "sha256", "babi-dnc commit", "step",
                   "Error analysis", "Task 8: lists-sets"):
        assert needed in md, needed
    assert "mean error, tasks 1,8" in md  # a subset of tasks says so


def test_console_table_marks_failed_cells_and_says_subset(runs, monkeypatch):
    flattened = []  # datasets' flatten_indices prints a progress bar between the command's lines
    monkeypatch.setattr(datasets.Dataset, "flatten_indices", lambda self, *a, **k: flattened.append(1) or self)
    result = runner.invoke(app.app, ["eval", str(runs["lstm"]), "--device", "cpu"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "1 single-supporting-fact" in out and "8 lists-sets" in out
    assert "2 two-supporting-facts" not in out  # only the run's tasks
    assert "mean error, tasks 1,8" in out and "LSTM" in out and "DNC1, Graves 2016" in out
    assert "9.0 ± 12.6 ✗" in out  # published DNC1 task 1 failed
    assert flattened == []


def test_a_piped_eval_says_how_far_it_is(report, runs, monkeypatch):
    """Without a terminal (a log, a pipe) no bar shows: each run's stories are counted in plain lines, when
    it starts, at least every PROGRESS_LINE_SECONDS, and when it is done; then the report's writing."""
    for label in ("dnc/seed-0", "dnc/seed-1", "lstm"):
        assert re.search(rf"^{label} \(test\): \d+ stories$", report["stderr"], flags=re.M), report["stderr"]
        assert re.search(rf"^{label} \(test\): (\d+)/\1 stories, done$", report["stderr"], flags=re.M)
    assert "writing the report to" in report["stderr"]
    monkeypatch.setattr("cli.common.PROGRESS_LINE_SECONDS", 0.0)
    result = runner.invoke(app.app, ["eval", str(runs["lstm"]), "--batch-size", "4", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    counts = re.findall(r"^lstm \(test\): (\d+)/(\d+) stories", result.stderr, flags=re.M)
    assert len(counts) >= 3 and [int(d) for d, _ in counts] == sorted(int(d) for d, _ in counts), result.stderr


def test_checkpoint_and_split_options(runs):
    result = runner.invoke(app.app, ["eval", str(runs["lstm"]), "--checkpoint", "latest", "--split", "valid",
                                     "--tasks", "8", "--json", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    run = json.loads(result.stdout)["runs"][0]
    assert (run["checkpoint"], run["step"], run["split"]) == ("latest", 4, "valid")
    assert list(run["tasks"]) == ["8"]


# ------------------------------------------------------------------------------------------ errors


def test_bad_runs_get_one_sentence_and_the_others_are_evaluated(runs, tmp_path):
    corrupt = tmp_path / "corrupt"
    shutil.copytree(runs["lstm"], corrupt)
    for weights in (corrupt / "checkpoints").glob("*/model.safetensors"):
        weights.write_bytes(b"not a checkpoint")
    other_words = tmp_path / "other-words"
    shutil.copytree(runs["lstm"], other_words)
    vocab = json.loads((other_words / "vocab.json").read_text())
    vocab["words"] = sorted(("bathroon" if w == "bathroom" else w) for w in vocab["words"])  # same size
    (other_words / "vocab.json").write_text(json.dumps(vocab))
    missing = tmp_path / "nowhere"

    result = runner.invoke(app.app, ["eval", str(missing), str(corrupt), str(runs["lstm"]), str(other_words),
                                     "--json", "--device", "cpu"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output and "Traceback" not in result.stderr
    data = json.loads(result.stdout)
    assert [r["run"] for r in data["runs"]] == ["lstm"]  # the good run was still evaluated
    messages = {Path(e["run"]).name: e["message"] for e in data["errors"]}
    assert set(messages) == {"nowhere", "corrupt", "other-words"}
    assert "does not exist" in messages["nowhere"]
    assert "checksum" in messages["corrupt"] or "cannot be read" in messages["corrupt"]
    assert "bathroom" in messages["other-words"] and "vocabulary" in messages["other-words"]
    stderr = "".join(result.stderr.split())  # rich wraps long lines, even inside paths
    for message in messages.values():
        assert message.count(". ") == 0 and message.endswith(".")  # one sentence
        assert "error:" + "".join(message.split()) in stderr  # printed as it happened


def test_all_runs_bad_exits_non_zero(tmp_path):
    result = runner.invoke(app.app, ["eval", str(tmp_path / "a"), str(tmp_path / "b")])
    assert result.exit_code == 2
    assert result.stderr.count("does not exist") == 2 and "Traceback" not in result.stderr


# ------------------------------------------------------------------------------------------ viz


def test_viz_plots_one_story_and_refuses_an_lstm(runs, tmp_path):
    result = runner.invoke(app.app, ["viz", str(runs["dnc"] / "seed-0"), "--task", "8", "--out", str(tmp_path),
                                     "--device", "cpu"])
    assert result.exit_code == 0, result.output
    pngs = list(tmp_path.glob("memory-*-task8-story*.png"))
    assert len(pngs) == 1 and pngs[0].read_bytes()[:4] == b"\x89PNG"
    assert "What is" in result.stdout and "carrying?" in result.stdout
    lstm = runner.invoke(app.app, ["viz", str(runs["lstm"]), "--device", "cpu"])
    assert lstm.exit_code == 2 and "no memory to plot" in lstm.stderr and "Traceback" not in lstm.stderr


def test_sd_of_one_run_is_nan_not_zero(runs):
    results, _ = evaluate_runs([runs["lstm"]], EvalConfig(device="cpu"))
    column = compare(results).ours[0]
    assert math.isnan(column.mean_sd) and column.per_task["sd"].isna().all()


def test_a_task_without_training_stories_is_shown_but_left_out_of_the_means(runs, tiny_babi_dir, tmp_path):
    """As with en-10k task 3 (its training file was missing where the shipped DNC trained): its test error is a
    row of the table, and no mean or failed-task count includes it, ours or the published ones; evaluated
    beside a complete copy of the data, it still counts as untrained (its checkpoint has no validation error
    for it)."""
    run = tmp_path / "lstm"
    shutil.copytree(runs["lstm"], run)
    for meta in run.glob("checkpoints/*/meta.json"):  # as if trained without task 8's training file
        saved = json.loads(meta.read_text())
        saved["metrics"].pop("error_task_8")
        meta.write_text(json.dumps(saved))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results, failures = evaluate_runs([run], EvalConfig(device="cpu", data_dir=str(tiny_babi_dir)))
    assert not failures and results[0].untrained == [8]
    comparison = compare(results)
    assert comparison.tasks == [1, 8] and comparison.untrained == [8] and comparison.scored == [1]
    ours = comparison.ours[0]
    assert 8 in ours.per_task.index
    task_1 = float(task_errors(results[0].questions).loc[1, "error"])
    assert ours.mean_error == pytest.approx(task_1)
    dnc1 = next(c for c in comparison.published if c.key == "dnc1")
    assert dnc1.mean_error == pytest.approx(PAPER_DNC1[0][0])  # task 1 alone
    assert float(dnc1.per_task.loc[8, "mean"]) == PAPER_DNC1[7][0]  # the row is still shown
    console = Console(width=200, record=True)
    console.print(console_table(comparison))
    text = console.export_text()
    assert "8 lists-sets (untrained)" in text and "mean error, tasks 1" in text
    assert "Untrained: task 8 had no training stories (a missing file); its row is shown" in " ".join(text.split())
    summary = summary_lines(comparison)[0]
    assert f"{ours.failed:.0f} of 1 tasks failed" in summary  # the failed count is out of the scored tasks
    trained = dataclasses.replace(results[0], untrained=[], label="trained on 8")  # a run that trained task 8
    both = compare([results[0], trained])  # one untrained on 8: every mean of the table is over task 1 alone
    assert all(c.mean_error == pytest.approx(task_1) for c in both.ours)


def test_eval_of_some_tasks_warns_only_about_their_files(runs, tiny_babi_dir, tmp_path):
    """`eval --tasks 1` of a run trained on tasks 1 and 8 says nothing of task 8's missing training file."""
    data = tmp_path / "tasks_1-20_v1-2"
    shutil.copytree(tiny_babi_dir, data)
    for f in data.rglob("qa8_*_train.txt"):
        f.unlink()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results, failures = evaluate_runs([runs["lstm"]], EvalConfig(device="cpu", data_dir=str(data), tasks=[1]))
    assert not failures and results[0].tasks == [1] and results[0].untrained == []
    said = " ".join(results[0].notes + [str(w.message) for w in caught])
    assert "qa8" not in said and "task 8" not in said, said
    result = runner.invoke(app.app, ["eval", str(runs["lstm"]), "--tasks", "1", "--data-dir", str(data)])
    assert result.exit_code == 0 and "qa8" not in result.output, result.output


def test_the_table_names_the_runs_set_and_warns_that_en_is_not_en_10k(runs):
    results, _ = evaluate_runs([runs["lstm"]], EvalConfig(device="cpu"))
    console = Console(width=250, record=True)
    console.print(console_table(compare(results)))
    text = console.export_text()
    assert "bAbI en-10k, test error" in text and "Caveat" not in text
    results[0].data_config.set_name = "en"  # as if trained on the 1k set
    console.print(console_table(compare(results)))
    text = console.export_text()
    assert "bAbI en, test error" in text and "bAbI en-10k," not in text
    assert "Caveat: the published numbers are for en-10k" in text and "runs on en (1,000 per task)" in text


def test_a_run_trained_on_the_1k_fallback_says_so_in_every_table(tiny_babi_dir, tmp_path):
    """Task 1's en-10k training file is missing and the en one is there: trained with --fallback-1k, task 1
    counts as trained, and the results file, the table, the JSON and chat's header say how its training data
    differs."""
    from babi_dnc.babi_task import TRAIN_PRESETS
    from babi_dnc.babi_train import train_babi
    from babi_dnc.data.config import DataConfig
    from babi_dnc.models import preset

    data = tmp_path / "tasks_1-20_v1-2"
    shutil.copytree(tiny_babi_dir, data)
    (data / "en").mkdir()
    shutil.move(next(data.rglob("qa1_*_train.txt")), data / "en")
    config = dataclasses.replace(TRAIN_PRESETS["tiny"], max_steps=2, eval_every=2, device="cpu", progress=False,
                                 tensorboard=False)
    data_config = DataConfig(set_name="en-10k", tasks="1,8", data_dir=str(data), valid_fraction=0.2,
                             fallback_1k=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train_babi(preset("tiny"), data_config, config, tmp_path / "run")
        results, failures = evaluate_runs([tmp_path / "run"], EvalConfig(device="cpu"))
    assert not failures and results[0].untrained == [] and results[0].training == ["task 1 from en (1k)"]
    assert set(results_table(results)["training"]) == {"task 1 from en (1k)"}
    comparison = compare(results)
    console = Console(width=250, record=True)
    console.print(console_table(comparison))
    text = " ".join(console.export_text().split())
    assert "task 1 from en (1k)" in text and "Training data: DNC, task 1 from en (1k)" in text
    assert to_json(comparison)["runs"][0]["training"] == ["task 1 from en (1k)"]
    from babi_dnc.chat import describe_run
    from babi_dnc.runs import load_run
    assert describe_run(load_run(tmp_path / "run")).endswith("trained on bAbI en-10k tasks 1,8 (task 1 from en (1k))")


def test_a_task_counts_as_trained_by_the_runs_validation_not_by_the_local_files(tiny_data):
    """The shipped DNC never saw task 3 (its en-10k training file was missing where it trained): evaluated
    beside a complete copy, task 3 must still be marked untrained. Validation errors come only from tasks with
    training stories, so the checkpoint's per-task validation errors say what it was trained on."""
    from types import SimpleNamespace

    from babi_dnc.data import tasks_in
    from eval.harness import trained_tasks

    assert set(tasks_in(tiny_data.train)) == {1, 8}  # what the local copy has
    assert trained_tasks(SimpleNamespace(metrics={"error": 0.1, "error_task_8": 0.2}), tiny_data) == {8}
    assert trained_tasks(SimpleNamespace(metrics={"error": 0.1}), tiny_data) == {1, 8}  # no per-task errors saved


def test_a_row_trained_by_some_models_names_the_others_and_the_notes_say_only_what_happened():
    from types import SimpleNamespace

    from eval.report.tables import _training_note, _untrained_note

    dnc = SimpleNamespace(label="DNC", untrained=[], training=["task 3 from en (1k)"])
    lstm = SimpleNamespace(label="LSTM", untrained=[3], training=[])
    mixed = SimpleNamespace(ours=[dnc, lstm], untrained=[3])
    assert _untrained_note(3, mixed) == " (untrained: LSTM)" and _untrained_note(1, mixed) == ""
    assert _untrained_note(3, SimpleNamespace(ours=[lstm], untrained=[3])) == " (untrained)"
    note = _training_note(mixed)
    assert note.startswith("Training data: DNC, task 3 from en (1k) (a task whose en-10k training file is missing")
    assert "task 16" not in note  # no rewrite was made, so none is described
    dnc.training.append("task 16 rewritten")
    assert "task 16's training stories rewritten" in _training_note(mixed)
    assert _training_note(SimpleNamespace(ours=[lstm], untrained=[3])) is None


def test_a_whole_story_reader_column_is_named_in_the_caption_as_a_comparison_chat_does_not_answer():
    from types import SimpleNamespace

    from eval.report.tables import _reader_note

    def column(label, scope):
        return SimpleNamespace(label=label, results=[SimpleNamespace(model_config=SimpleNamespace(reader_scope=scope))])

    causal = SimpleNamespace(ours=[column("DNC", "question"), column("LSTM", "question")])
    assert _reader_note(causal) is None
    mixed = SimpleNamespace(ours=[column("DNC (runs/bi)", "story"), column("DNC (runs/q)", "question")])
    note = _reader_note(mixed)
    assert note.startswith("Whole-story backward reader: DNC (runs/bi) read") and "runs/q" not in note
    assert "not what chat answers" in note

"""bAbI QA tasks v1.2 for the DNC: where the files come from, how they are parsed and encoded, datasets, batches.

    tasks.py     the 20 tasks, the sets, task lists ("1,2,5-7"), task file names
    vocab.py     the tokenizer, answer words, the vocabulary (words <-> ids, JSON)
    parser.py    the raw file format -> stories (statements, questions, answers, supporting facts)
    encoding.py  the paper's encoding of a story: words in order, '-' answer slots after each question
    sources.py   a local folder or .tar.gz, or the Hugging Face Hub (facebook/babi_qa)
    loading.py   load_babi: parsed and tokenized datasets.Dataset rows (cached), vocabulary, splits
    deduction.py task 15's training stories rewritten so that its most-feared-animal shortcut no longer pays
    induction.py task 16's training stories rewritten so that its most-common-colour shortcut no longer pays
    shortcuts.py the shortcut both rewrites take away: a story's most frequent word, a tie as a share
    positional.py task 17's rule, and its questions by how many facts lie on the asked axis
    pathfinding.py task 19's rule, and its paths: straight or turning
    batching.py  padded, length-bucketed batches per (seed, epoch)
    sampling.py  rounds of training stories drawn by each task's validation error (--task-sampling error)
    stats.py     counts for `babi-dnc data --stats`

The encoding is the paper's (Graves et al. 2016, Methods, "bAbI"): one story is one sequence of words,
line numbers removed, lower-cased, '.' and '?' as words of their own, and after every question one '-'
per answer word (answers like "apple,football" are split on ','). The model's output at each '-' is its
answer word; the loss is taken only there. On en-10k the vocabulary is 156 words plus '.', '?' and '-':
159 symbols, the size of the paper's one-hot input and softmax output.

    data = load_babi("en-10k", tasks="1,2,5-7", data_dir="../shared/data/babi/tasks_1-20_v1-2")
    for batch in iterate_batches(data.train, batch_size=32, seed=0, epoch=0):
        batch["ids"], batch["mask"], batch["targets"]    # [B, T] each
"""

from ..metrics import IGNORE_INDEX
from .batching import batch_indices, collate, iterate_batches, packed_columns, padding_fraction
from .encoding import encode_story
from .loading import (
    BabiData,
    MissingDataWarning,
    UnknownWordsWarning,
    build_vocabulary,
    load_babi,
    select_tasks,
    split_train_valid,
    tasks_in,
)
from .parser import MalformedLineError, parse_babi_file, story_lines
from .sources import ENV_DATA, Source, local_data_path, resolve_source
from .stats import data_stats
from .tasks import SETS, TASK_NAMES, TaskSpecError, format_task_spec, parse_task_spec, task_file
from .vocab import PAD_ID, Vocabulary, answer_words, tokenize

__all__ = [
    "TASK_NAMES", "SETS", "PAD_ID", "IGNORE_INDEX", "ENV_DATA", "BabiData", "Vocabulary", "Source",
    "TaskSpecError", "MalformedLineError", "MissingDataWarning", "UnknownWordsWarning", "tokenize",
    "answer_words", "parse_task_spec", "format_task_spec", "task_file", "parse_babi_file", "story_lines",
    "encode_story", "load_babi", "resolve_source", "local_data_path", "build_vocabulary", "select_tasks", "tasks_in",
    "split_train_valid", "collate", "batch_indices", "iterate_batches", "packed_columns", "padding_fraction",
    "data_stats",
]

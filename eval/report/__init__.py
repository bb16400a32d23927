"""What an evaluation shows: the comparison table (console, Markdown, HTML), CSV files, plots, error
analysis and provenance.

    comparison = aggregate.compare(results)
    console.print(console_table(comparison))                       # tasks as rows, models as columns
    paths = write_report(comparison, "out/", provenance(comparison))  # report.md, report.html, CSVs, plots
    print(json.dumps(to_json(comparison)))                         # for scripts

    tables.py      the comparison, runs and published tables; rendered with rich, as Markdown and as HTML
    plots.py       errors per task, training curves, memory plots of test stories
    analysis.py    the most common mistakes and failed questions in their stories
    provenance.py  runs, data checksums, commit, versions, device, date, command
    export.py      the JSON of `babi-dnc eval --json`
    document.py    the report as blocks, rendered to report.md and a self-contained report.html
"""

from .analysis import error_analysis, format_story
from .document import to_html, to_markdown, write_report
from .export import to_json
from .plots import metrics_frame, plot_task_errors, plot_training_curves
from .provenance import git_commit, provenance
from .tables import Cell, Table, comparison_table, console_table

__all__ = [
    "console_table", "comparison_table", "write_report", "to_json", "provenance", "error_analysis", "format_story",
    "plot_task_errors", "plot_training_curves", "metrics_frame", "git_commit", "to_markdown", "to_html", "Cell",
    "Table",
]

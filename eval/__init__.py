"""Evaluation of trained runs on bAbI (`babi-dnc eval`, `babi-dnc viz`).

    harness.py       a run + a split -> one row per question (a question is right only if every answer word is)
    aggregate.py     per-task tables; seeds aggregated as Graves et al. (2016) report them; the comparison
    reference.py     the published numbers (reference/babi_en10k_joint.csv, sources in reference/README.md)
    report.py        console table, report.md / report.html / CSVs, plots, error analysis, provenance, JSON
    memory_plots.py  the DNC's memory over one story, with the story's words on the time axis
"""

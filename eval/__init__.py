"""Evaluation of trained runs on bAbI (`babi-dnc eval`, `babi-dnc viz`).

    harness.py       a run + a split -> one row per question, scored by babi_dnc.metrics (as validation is)
    aggregate.py     per-task tables; seeds aggregated as Graves et al. (2016) report them; the published
                     columns; the comparison
    reference.py     the published numbers as data (reference/babi_en10k_joint.csv, sources in reference/README.md)
    report/          tables, plots, error analysis, provenance, JSON, and the report document (md, html)
    memory_plots.py  the DNC's memory over one story, with the story's words on the time axis
"""

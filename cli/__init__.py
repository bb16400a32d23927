"""The commands of `babi-dnc`, one module each (app.py registers them): each parses its options, calls the
library and prints with rich. Each imports the library inside its function, so that `babi-dnc --help` and
every command start without loading what the other commands need (torch, datasets, matplotlib).

    data.py      babi-dnc data      load bAbI, counts and checksums
    copy.py      babi-dnc copy      copy and repeat-copy sanity tasks
    train.py     babi-dnc train     the DNC or the LSTM baseline on bAbI
    evaluate.py  babi-dnc eval|viz  test error against the published numbers; memory plots
    chat.py      babi-dnc chat      tell a model a story, ask it questions
    bench.py     babi-dnc bench     training-step speed and memory
    common.py    the consoles, user errors as one sentence
"""

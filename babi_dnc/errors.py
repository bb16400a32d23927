"""Errors a user can cause. The CLI prints their message as one sentence, without a traceback."""


class UserError(Exception):
    """Base class: a problem the user can fix (bad option, missing file, broken checkpoint, ...).

    The message must be one clear sentence that says what to do.
    """


class DataError(UserError):
    """Missing or malformed bAbI data."""


class CheckpointError(UserError):
    """A run directory or checkpoint that does not exist or does not load."""


class VocabularyError(UserError):
    """Words the model never saw, or a vocabulary that does not match the data."""

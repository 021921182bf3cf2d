"""The one base class of the errors siautil raises on purpose.

Every error the project raises to say what a user can fix derives from :class:`SiautilError`
(and keeps its other base, such as ``ValueError``, so ``except ValueError`` still catches it):
``models.ModelError``, ``store.RunStoreError``, ``estimators.RecordsError``,
``tasks.DataError``, ``book.ChapterError``. The command line catches it once
(:func:`siautil.cli.main`: ``error: <message>`` on stderr, exit status 2).
"""


class SiautilError(Exception):
    """An error siautil raises on purpose, with a message that says what to do."""

"""Training engines. :func:`train` runs Keras ``fit`` one epoch at a time: seeded per-epoch shuffles, early stopping
on the validation loss with the best weights restored, a stop with :class:`~ratecast.errors.TrainingError` on a
non-finite loss, and an optional checkpoint after every epoch that a later call resumes from."""

from .loop import train

__all__ = ["train"]

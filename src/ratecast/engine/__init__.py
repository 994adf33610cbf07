"""Training engines. :func:`train` picks one for a training config (:func:`~ratecast.engine.training.engine_for`):

* ``jax`` (:mod:`~ratecast.engine.compiled`): epochs as compiled loops on the device, sparse row updates of the
  user and item tables, optional ``keras.distribution`` layouts over several devices or processes;
* ``keras`` (:mod:`~ratecast.engine.keras_fit`): Keras ``fit`` one epoch at a time, on every backend (the lab's exact
  training).

Both run the one epoch loop (:mod:`~ratecast.engine.epochs`): they shuffle with seeds per epoch, stop early on
the validation loss with the best weights restored, stop with :class:`~ratecast.errors.TrainingError` on a
non-finite or exploding loss, and write a checkpoint after every epoch that a later call resumes from. Compiled programs are kept on disk
(:mod:`~ratecast.compile_cache`).

The engines load Keras on first use."""

__all__ = ["engine_for", "train"]


def __getattr__(name: str):
    if name in __all__:
        from . import training

        return getattr(training, name)
    raise AttributeError(f"module 'ratecast.engine' has no attribute {name!r}")

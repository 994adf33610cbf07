"""Training engines. :func:`train` picks one for a training config (:func:`~ratecast.engine.loop.engine_for`):

* ``jax`` (:mod:`~ratecast.engine.compiled`): epochs as compiled loops on the device, sparse row updates of the
  user and item tables, optional ``keras.distribution`` layouts over several devices or processes;
* ``keras`` (:mod:`~ratecast.engine.loop`): Keras ``fit`` one epoch at a time, on every backend (the lab's exact
  training).

Both shuffle with seeds per epoch, stop early on the validation loss with the best weights restored, stop with
:class:`~ratecast.errors.TrainingError` on a non-finite or exploding loss, and write a checkpoint after every epoch
that a later call resumes from. Compiled programs are kept on disk (:mod:`~ratecast.engine.cache`).

The engines load Keras on first use, so that :mod:`~ratecast.engine.cache` can be imported (and the cache set up)
before JAX starts."""

__all__ = ["engine_for", "train"]


def __getattr__(name: str):
    if name in __all__:
        from . import loop

        return getattr(loop, name)
    raise AttributeError(f"module 'ratecast.engine' has no attribute {name!r}")

"""Serving a trained run over HTTP: :func:`create_app` (FastAPI) and the explorer page."""

from __future__ import annotations


def create_app(run_dir, **kwargs):
    """The FastAPI app serving run folder ``run_dir`` (see :func:`ratecast.serve.app.create_app`)."""
    from .app import create_app as build

    return build(run_dir, **kwargs)


__all__ = ["create_app"]

"""``ratecast train``: train one model and write a run directory (or continue an interrupted one)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..options import PresetError, resolve
from .console import (EXIT_INTERRUPTED, Verbosity, ci, fail, handle_errors, lists, num, out, print_json,
                      step_reporter, verbosity)
from .options import (AsJson, DataHome, Duplicates, Encoding, ItemCol, ItemKey, Items, Quiet, RatingCol, Scale, Sep, Split,
                      TimeCol, TestSize, UserCol, UserKey, Users, Verbose, check_run_options, data_home_folder, data_options,
                      finite)

SPEC_OPTIONS = ("data", "model", "split", "seed", "test_size", "config", "epochs", "embedding_dim", "batch_size",
                "learning_rate", "dropout", "set_", "data_home", "user_col", "item_col", "rating_col",
                "timestamp_col", "sep", "items", "users", "item_key", "user_key", "encoding", "rating_scale",
                "overwrite", "preset", "duplicates")


@handle_errors
def train(
    ctx: typer.Context,
    data: str = typer.Option("ml-100k", "--data", help="MovieLens release name or path to your ratings file."),
    model: Optional[str] = typer.Option(None, "--model", help="popularity, baseline, dot, biased_dot, deep, hybrid, "
                                        "classification, implicit or bayesian (default: the accurate preset, the "
                                        "recommended rating model, unless --preset or --config names one)."),
    split: str = Split,
    seed: int = typer.Option(0, "--seed", help="Random seed (split and training)."),
    test_size: float = TestSize,
    config: Optional[Path] = typer.Option(None, "--config", help="TOML file: model = \"...\" and any model or "
                                                                 "training option (see README)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Training epochs (default: the model's)."),
    embedding_dim: Optional[int] = typer.Option(None, "--embedding-dim", help="Size of the user and item vectors."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Ratings per training step."),
    learning_rate: Optional[float] = typer.Option(None, "--learning-rate", help="Step size of the optimizer."),
    dropout: Optional[float] = typer.Option(None, "--dropout", help="Dropout rate of the tower (deep, hybrid)."),
    set_: list[str] = typer.Option([], "--set", metavar="KEY=VALUE",
                                   help="Any other option as KEY=VALUE (JSON values), repeatable."),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Run directory to write (required unless --resume)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing run directory."),
    resume: Optional[Path] = typer.Option(None, "--resume", metavar="RUN",
                                          help="Continue the interrupted training of run directory RUN."),
    data_home: Optional[Path] = DataHome, user_col: Optional[str] = UserCol, item_col: Optional[str] = ItemCol,
    rating_col: Optional[str] = RatingCol, timestamp_col: Optional[str] = TimeCol, sep: Optional[str] = Sep,
    items: Optional[Path] = Items, users: Optional[Path] = Users, item_key: Optional[str] = ItemKey,
    user_key: Optional[str] = UserKey, encoding: Optional[str] = Encoding, rating_scale: Optional[str] = Scale,
    duplicates: Optional[str] = Duplicates,
    preset: Optional[str] = typer.Option(None, "--preset", help="Named configuration: accurate (the recommended "
                                         "rating model), fast (a quick rating model), topn (the recommended list "
                                         "model) or lab (the lab's exact training; --model picks the model)."),
    devices: Optional[int] = typer.Option(None, "--devices", min=1, help="Train on this many devices (data "
                                          "parallel; the batch is split over them)."),
    shard_embeddings: bool = typer.Option(False, "--shard-embeddings", help="Split the user and item tables by "
                                          "rows over the devices (model parallel)."),
    quiet: bool = Quiet, verbose: bool = Verbose, as_json: bool = AsJson,
) -> None:
    """Train the recommended rating model (the accurate preset) unless --model, --preset or --config names another,
    and write a run directory (config, model, history, test metrics, plots)."""
    from ..distribution import initialize

    initialize()  # joins a multi-machine run when RATECAST_COORDINATOR is set (see README)
    from ..runs import RunSpec, read_partial, train_run

    if resume is not None:
        given = [p.opts[0] for p in ctx.command.params if p.name in SPEC_OPTIONS
                 and getattr(ctx.get_parameter_source(p.name), "name", "") == "COMMANDLINE"]
        if out_dir is not None and Path(out_dir) != Path(resume):
            given.append("--out")
        if given:
            raise typer.BadParameter(f"it continues the run as it was started; drop {', '.join(given)}", ctx=ctx,
                                     param_hint="'--resume'")
        dest = resume
        spec = None
        show_model, show_data, show_split, show_seed = _resume_summary(read_partial(dest)[0])
    else:
        if out_dir is None:
            raise typer.BadParameter("missing: the run directory to write (or --resume RUN)", ctx=ctx,
                                     param_hint="'--out'")
        dest = out_dir
        for option, value in (("--test-size", test_size), ("--learning-rate", learning_rate),
                              ("--dropout", dropout)):
            finite(option, value)
        check_run_options(split, data, seed, test_size)
        from ..presets import RECOMMENDED

        try:
            model, params, where = resolve(model, preset=preset, config_file=config,
                                           cli_options={"epochs": epochs, "embedding_dim": embedding_dim,
                                                        "batch_size": batch_size, "learning_rate": learning_rate,
                                                        "dropout": dropout},
                                           set_options=set_, default_preset=RECOMMENDED)
        except PresetError as exc:
            raise typer.BadParameter(str(exc), ctx=ctx, param_hint="'--preset'") from None
        spec = RunSpec(data=data, model=model, split=split, seed=seed, test_size=test_size, params=params,
                       data_options=data_options(user_col, item_col, rating_col, timestamp_col, sep, items, users,
                                                 item_key, user_key, encoding, rating_scale, duplicates),
                       data_home=data_home_folder(data_home))
        show_model, show_data, show_split, show_seed = model, data, split, seed
    talk = verbosity() >= Verbosity.NORMAL

    from ..distribution import from_options

    try:
        distribution = from_options(devices, shard_embeddings)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), ctx=ctx, param_hint="'--devices'") from None
    try:
        metrics = train_run(spec, dest, overwrite=overwrite, resume=resume is not None,
                            verbose=True if verbose else "auto" if talk else 0, progress=talk,
                            on_step=step_reporter(),
                            distribution=distribution)
    except KeyboardInterrupt:
        interrupted(dest, as_json)
    if as_json:
        return print_json({"run": str(dest), "test": metrics})
    out.print(f"[bold]{show_model}[/] on {show_data} ({show_split}, seed {show_seed}): test MAE "
              f"{num(metrics.get('mae'))} {ci(metrics.get('mae_ci95'))}, RMSE {num(metrics.get('rmse'))}, "
              f"{lists(metrics)}", highlight=False)
    out.print(f"run written to {dest}", highlight=False)


def interrupted(dest: Path, as_json: bool) -> None:
    """Ctrl-C during a training into ``dest``: one line saying what was kept and how to continue, exit 130."""
    from ..runs import partial_dir

    part = partial_dir(dest)
    hint = (f"the finished epochs are kept in {part}; continue with: ratecast train --resume {dest}"
            if part.exists() else "nothing was written")
    fail(f"interrupted: {dest} was not written; {hint}", EXIT_INTERRUPTED, as_json)


def _resume_summary(spec) -> tuple:
    return spec.model, spec.data, spec.split, spec.seed


@handle_errors
def refit(run_dir: Path = typer.Argument(..., help="Run directory whose model is trained again."),
          out_dir: Optional[Path] = typer.Option(None, "--out", help="Run directory to write (default: RUN-refit "
                                                 "beside it)."),
          overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing run directory at --out."),
          quiet: bool = Quiet, verbose: bool = Verbose, as_json: bool = AsJson) -> None:
    """Train a run's model again (same options, split and seed) on its training data plus the ratings given to it
    while it was served (its ratings log), and write a new run directory."""
    from ..runs import refit_run

    dest = out_dir if out_dir is not None else run_dir.parent / f"{run_dir.name}-refit"
    talk = verbosity() >= Verbosity.NORMAL
    try:
        metrics, logged = refit_run(run_dir, dest, overwrite=overwrite,
                                    verbose=True if verbose else "auto" if talk else 0, progress=talk,
                                    on_step=step_reporter())
    except KeyboardInterrupt:
        interrupted(dest, as_json)
    if as_json:
        return print_json({"run": str(dest), "logged_ratings": logged, "test": metrics})
    out.print(f"refitted {run_dir} with {logged} logged rating(s): test MAE {num(metrics.get('mae'))} "
              f"{ci(metrics.get('mae_ci95'))}, RMSE {num(metrics.get('rmse'))}, {lists(metrics)}", highlight=False)
    out.print(f"run written to {dest}", highlight=False)

"""A Bayesian factorisation model fitted by Gibbs sampling: SVD++'s implicit feedback on both sides ("flipped")
and optional metadata, with priors learned from the data (no learning rate, no L2 to tune, no epochs to pick).

    rating(u, i, day) = w0 + b(u) + c(i) + <p(u), q(i)> + b(u, day)

where the user side ``[b(u), p(u)]`` is the user's own row plus, for each item ``j`` they rated in training,
``|N(u)|^-1/2`` times the item's implicit row (plus their metadata rows, when ``user_features`` are named); the item
side likewise holds the users who rated the item and its metadata. Every feature group has its own Gaussian prior
whose mean and precision are sampled too (:mod:`ratecast.models.gibbs`). ``b(u, day)`` is a bias per user and
day (timeSVD++'s rater mood on the day), where ratings carry timestamps; a pair given without a day, or on a day
the user did not rate in training, gets none. The noise is Student-t per rating by default (``noise_per``): each
training rating's precision is scaled by a factor with a Gamma(8, 8) prior, so odd ratings weigh less; per user and
per item scales may be added.

The prediction is the posterior mean over ``samples`` sweeps after ``burn_in`` of each of ``chains`` independent
chains (each started from its own seed, so the average spans more than one mode of the posterior): the biases are
averaged over every sample, and the factor term is a dot product of the ``stored_samples`` kept samples' factors
concatenated (evenly spaced in each chain, scaled by ``stored_samples ** -0.5``), so the Keras model is a biased dot
product over tables of ``embedding_dim * stored_samples`` columns. Every sample is stored where the tables fit in a
share of the memory budget (ML-100k: all 400); at larger vocabularies fewer blocks are (ML-25M's 59,047 items at
rank 16: 15 of them), and they hold each chain's mean factors over every sample plus a few samples' deviations from
it (:attr:`BayesianModel.summarised`). The chains, samples and stored samples are sized from a memory and a time budget
(:mod:`ratecast.models.sampling_budget`), and a fit that cannot stay inside the memory budget is refused in one line
before it starts. Sampling runs after the ratings
are known (:class:`PosteriorSampler`, a part fitted apart from the network), on every training rating, so no validation share is held back from it.
"""

from __future__ import annotations

import contextvars
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Annotated, ClassVar, Optional

import keras
import numpy as np
from keras import ops
from pydantic import Field

from .. import memory
from ..search_space import Choice, Int
from .base import register
from .capabilities import Capabilities
from .cold_start import ColdStart, NamedFeatures
from .config import Count, Dim, Flag, Loss, ModelConfig, PositiveInt, Says, at_most, config, names
from .hybrid import ITEM_FEATURES, USER_FEATURES
from .dot import BiasedDotModel
from .fitting import Fitter, Ratings, report
from . import sampling_budget as budget


NOISE_PER = ("user", "item", "rating")
#: seconds between two progress lines of the sampler (the last sweep is always reported)
REPORT_EVERY = 10.0
NoiseShape = Annotated[float, Field(ge=0.1, le=1e6), Says("a number in [0.1, 1e6]")]  # a Gamma prior's shape


class _Stopped(Exception):
    """Raised in a chain's sweep callback once another chain has failed or the fit was interrupted."""


@config
class BayesianConfig(ModelConfig):
    """Bayesian factorisation machine over user and item blocks (Gibbs sampling)."""

    name: ClassVar[str] = "bayesian"
    losses: ClassVar[tuple[str, ...]] = ("mse",)
    search_space: ClassVar[dict] = {
        "embedding_dim": Int(4, 32, log=True), "samples": Int(20, 200, log=True), "chains": Int(1, 8),
        "implicit": Choice((True, False))}
    tune_metrics: ClassVar[tuple[str, ...]] = ("rating", "top_n")
    # the rank of each sample's factors and the number of independent chains (their samples pooled, run side by
    # side on the cores), chosen together on six validation splits (three carved from the lab training set, three
    # from u1's), mean RMSE / MAE:
    #   rank 10: 1 chain 0.8754 / 0.6836, 2 chains 0.8736 / 0.6822, 3 chains 0.8729 / 0.6818, 5 chains
    #            0.8725 / 0.6815, 8 chains 0.8722 / 0.6813, 12 chains 0.8722 / 0.6813, 16 chains 0.8721 / 0.6813
    #   3 chains: rank 12 0.8724 / 0.6814, rank 16 0.8724 / 0.6811
    #   8 chains: rank 12 0.8718 / 0.6809, rank 16 0.8709 / 0.6801
    # more chains let a higher rank pay off (each chain's samples are noisier); rank 16 with 8 chains fits the
    # full lab training set in 46 s on two cores, compilation included (rank 10 with 16 chains: about 55 s)
    embedding_dim: Dim = 16
    loss: Loss = "mse"
    min_support: Count = 20  # lists leave out items with fewer training ratings
    # sweeps averaged for the prediction (each adds embedding_dim * chains columns to the tables, as far as
    # stored_samples allows); 50 samples were chosen on three validation splits carved from the lab training set
    # (one chain at rank 10: validation RMSE 0.867/0.874/0.888 against 0.868/0.874/0.889 with 100 samples); one
    # chain of 100 samples (0.8748 / 0.6825 on the six splits) and 4 chains of 25 samples (0.8758 / 0.6850) both
    # lose to 2 chains of 50 (0.8736 / 0.6822)
    # samples and chains None: sized from the budgets below, up to 8 chains of 50 samples
    # (ratecast.models.sampling_budget); a number given is kept
    samples: Annotated[Optional[Annotated[int, Field(gt=0, le=4096)]], Says("a positive integer")] = None
    burn_in: Count = 5  # sweeps discarded first
    chains: Annotated[Optional[Annotated[int, Field(gt=0, le=64)]], Says("a positive integer")] = None
    # the samples whose factors the tables keep (None: every sample, as far as the tables fit in a sixteenth of
    # the memory budget); the biases average over every sample whatever it says
    stored_samples: Annotated[Optional[Annotated[int, Field(gt=0, le=1 << 16)]], Says("a positive integer")] = None
    # GB the fit may take (None: 16, at most 80% of the memory available) and seconds of sampling it should take
    # (None: 1800), which size the chains, samples and stored samples left to them
    memory_budget: Annotated[Optional[Annotated[float, Field(gt=0, le=1e6, allow_inf_nan=False)]],
                             Says("a finite number of GB > 0")] = None
    time_budget: Annotated[Optional[Annotated[float, Field(gt=0, le=1e7, allow_inf_nan=False)]],
                           Says("a finite number of seconds > 0")] = None
    implicit: Flag = True  # users carry the items they rated, items the users who rated them
    # metadata groups on each side, used where the training data has them (chosen on validation: the lab split's
    # validation RMSE 0.871 without them, 0.868 with them)
    item_features: names(ITEM_FEATURES) = ("release_year", "genres")
    user_features: names(USER_FEATURES) = ("age", "gender", "occupation")
    init_std: Annotated[float, Field(gt=0, le=1), Says("in (0, 1]")] = 0.1
    # where the median user or the median item has fewer training ratings than this, each sweep draws the users'
    # and items' prior precisions with their rows integrated out (0: never). Drawn from the rows, they barely move
    # where most rows have a handful of ratings (1 M synthetic ratings over ML-25M's vocabulary, medians 4 ratings a
    # user: validation RMSE 0.9719 drawn from the rows with one chain, 0.9264 collapsed with two, biased_dot
    # 0.9596); where rows are well rated (ML-100k: medians 65 and 27) they mix as they are, and the defaults were
    # chosen that way (the lab split's RMSE 0.8654 drawn from the rows, 0.8701 collapsed)
    collapse_below: at_most(Count, 1_000_000) = 10
    # a bias per user and day (timeSVD++'s b_u,t: a rater's mood on the day), where ratings carry timestamps;
    # each user keeps the max_days days they rated most on (chosen on three validation splits carved from the lab
    # training set: validation RMSE 0.8810/0.8858/0.8701 without it, 0.8782/0.8810/0.8672 with it)
    day_bias: Flag = True
    max_days: at_most(PositiveInt, 100_000) = 64
    # the noise precision may be scaled per user, per item and per rating, each scale with a Gamma(shape, shape)
    # prior (a Student-t noise with 2 * shape degrees of freedom): erratic raters, divisive items or odd ratings weigh
    # less. Chosen on six validation splits (three carved from the lab training set, three from u1's), mean RMSE /
    # MAE: none 0.8748 / 0.6855, per rating (shape 8) 0.8749 / 0.6834, per user and item 0.8746 / 0.6855, all three
    # 0.8750 / 0.6834; per rating at shape 4 or 16 did worse on the lab splits (0.8761 / 0.6837, 0.8748 / 0.6860)
    noise_per: names(NOISE_PER) = ("rating",)
    noise_shape: NoiseShape = 2.0  # the user and item scales' prior
    rating_noise_shape: NoiseShape = 8.0  # the rating scales' prior

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.l2:
            raise ValueError(f"l2 does not apply to model 'bayesian' (its priors are sampled), got {self.l2!r}")
        if self.stored_samples is not None:
            if self.embedding_dim * self.stored_samples > 1 << 16:
                raise ValueError(f"embedding_dim * stored_samples must be at most {1 << 16} (the width of the stored "
                                 f"tables), got {self.embedding_dim} * {self.stored_samples}")
        elif self.embedding_dim * self.total_samples > 1 << 16:
            raise ValueError(f"embedding_dim * samples * chains must be at most {1 << 16} (the width of the stored "
                             f"tables), got {self.embedding_dim} * {self.samples or budget.DEFAULT_SAMPLES} * "
                             f"{self.chains or budget.DEFAULT_CHAINS}; or set stored_samples")

    @classmethod
    def saved_before(cls, saved: dict, known_items: int) -> dict:
        """A config saved before ``collapse_below``: its priors were drawn from the rows."""
        return saved if "collapse_below" in saved else {**saved, "collapse_below": 0}

    @property
    def total_samples(self) -> int:
        """Samples of every chain together, the defaults' where left to the budget (an upper bound)."""
        return (budget.DEFAULT_CHAINS if self.chains is None else self.chains) * (
            budget.DEFAULT_SAMPLES if self.samples is None else self.samples)


def implicit_group(owner: np.ndarray, member: np.ndarray, n_owner: int, n_member: int):
    """Each owner's distinct members at ``1/sqrt(count)``: (owner, feature, value, n_features)."""
    pairs = np.unique(np.stack([owner, member], 1), axis=0)
    count = np.bincount(pairs[:, 0], minlength=n_owner)
    return pairs[:, 0], pairs[:, 1], 1.0 / np.sqrt(count[pairs[:, 0]]), n_member


def table_group(table: np.ndarray):
    """A dense metadata table's nonzero entries (row 0, unknown, left out): (owner, feature, value, width)."""
    owner, feature = np.nonzero(table[1:])
    return owner + 1, feature, table[1:][owner, feature], table.shape[1]


def sample_posterior(model: "BayesianModel", users: np.ndarray, items: np.ndarray, ratings: np.ndarray,
                     days: np.ndarray | None = None) -> dict[str, list[float]]:
    """Sample ``model``'s posterior from every training rating and store its mean in the network's tables; returns
    the per-sweep training loss (mean squared error of the current sample, averaged over the chains) as the fit's
    history."""
    if keras.backend.backend() != "jax":
        raise RuntimeError(f"model 'bayesian' samples with JAX: set KERAS_BACKEND=jax (the backend is "
                           f"{keras.backend.backend()!r})")
    from .gibbs import Block, Posterior, chain_seed, sample

    users, items = np.asarray(users, "int64"), np.asarray(items, "int64")
    user_groups, item_groups = [], []
    if model.cfg.implicit:
        user_groups.append(implicit_group(users, items, model.n_users, model.n_items))
        item_groups.append(implicit_group(items, users, model.n_items, model.n_users))
    if model.user_feature_dim:
        user_groups.append(table_group(np.asarray(model.user_feature_table)))
    if model.item_feature_dim:
        item_groups.append(table_group(np.asarray(model.item_feature_table)))
    slots, day_table, (rows, cols) = model.user_day_slots(users, days)
    rating_groups = ((slots, len(rows)),) if len(rows) else ()
    owners = {"user": (users, model.n_users), "item": (items, model.n_items),
              "rating": (np.arange(len(users)), len(users))}
    noise_groups = tuple((*owners[side], model.cfg.rating_noise_shape if side == "rating" else model.cfg.noise_shape)
                         for side in model.cfg.noise_per)
    user_block, item_block = Block.from_sparse(model.n_users, user_groups), Block.from_sparse(model.n_items,
                                                                                            item_groups)
    cfg = model.cfg
    # sized before anything is sampled: refused here, in one line, where one chain at a time cannot fit
    entries = sum(len(group[0]) for group in user_groups + item_groups)
    plan = budget.plan(budget.Shape(len(users), model.n_users, model.n_items, user_block.m + item_block.m,
                                    cfg.embedding_dim, entries),
                       chains=cfg.chains, samples=cfg.samples, burn_in=cfg.burn_in, stored=model.stored,
                       memory_gb=cfg.memory_budget, seconds=cfg.time_budget)
    model.plan = plan
    collapse = sparse(users, items, cfg.collapse_below)
    seed = 0 if model.seed is None else model.seed
    ratings = np.asarray(ratings, "float64")
    losses: list[list[float]] = [[] for _ in range(plan.chains)]
    stop = threading.Event()  # set when one chain fails or the fit is interrupted: the others stop at their sweep
    progress = SweepProgress(plan.chains * (cfg.burn_in + plan.samples))
    report(f"Gibbs sampling {len(users):,} ratings: {plan.chains} chains ({plan.concurrent} at once) of "
           f"{cfg.burn_in} + {plan.samples} sweeps, about {plan.seconds:,.0f} s estimated")

    def on_sweep(c: int, rmse: float) -> None:
        if stop.is_set():
            raise _Stopped
        losses[c].append(rmse * rmse)
        progress.done(rmse)

    def chain(c: int) -> Posterior:
        try:
            return sample(users, items, ratings, user_block, item_block,
                          rank=cfg.embedding_dim, samples=plan.samples, burn_in=cfg.burn_in,
                          seed=chain_seed(seed, c), init_std=cfg.init_std, rating_groups=rating_groups,
                          noise_groups=noise_groups, store=stored_by(plan, c, model.summarised),
                          on_sweep=lambda _, rmse: on_sweep(c, rmse), collapse=collapse)
        except BaseException:
            stop.set()
            raise

    if plan.chains == 1:
        chains = [chain(0)]
    else:
        # the chains run side by side (a sweep keeps about one core busy), as many at once as the budget allows
        with ThreadPoolExecutor(max_workers=plan.concurrent) as pool:
            # each chain in a copy of this context, so that its progress reaches this fit's reporter
            futures = [pool.submit(contextvars.copy_context().run, chain, c) for c in range(plan.chains)]
            try:
                chains = [f.result() for f in futures]
            except BaseException as error:
                stop.set()
                wait(futures)
                failed = [f.exception() for f in futures if not f.cancelled()]
                cause = next((e for e in failed if e is not None and not isinstance(e, _Stopped)), error)
                if cause is error:
                    raise
                raise cause from None
    # the kept samples side by side: (stored, n, rank) -> (n, stored * rank), so that the posterior mean of <p, q>
    # is one dot product; each chain's samples are let go once copied
    user_table = np.zeros((model.n_users, plan.stored * cfg.embedding_dim), "float32")
    item_table = np.zeros((model.n_items, plan.stored * cfg.embedding_dim), "float32")
    at = 0
    for c, post in enumerate(chains):
        for side, table in (("user", user_table), ("item", item_table)):
            kept = getattr(post, f"{side}_factors")
            if model.summarised:  # the chain's mean, then its kept samples' deviations from it
                mean = getattr(post, f"{side}_factor_mean")
                blocks = [mean * plan.chains ** -0.5] + [
                    (sample_ - mean) * (plan.chains * len(kept)) ** -0.5 for sample_ in kept]
            else:
                blocks = [sample_ * plan.stored ** -0.5 for sample_ in kept]
            if blocks:
                table[:, at:at + len(blocks) * cfg.embedding_dim] = np.concatenate(blocks, axis=1)
        at += (len(post.user_factors) + model.summarised) * cfg.embedding_dim
        chains[c] = post.without_factors()
    post = Posterior.pooled(chains)
    model.global_bias.assign(post.w0)
    model.user_bias.embeddings.assign(post.user_bias[:, None])
    model.item_bias.embeddings.assign(post.item_bias[:, None])
    model.user_embedding.embeddings.assign(user_table)
    model.item_embedding.embeddings.assign(item_table)
    del user_table, item_table
    day_bias = np.zeros(day_table.shape, "float32")
    if rating_groups:
        day_bias[rows, cols] = post.rating_biases[0]
    model.user_days.assign(day_table)
    model.user_day_bias.assign(day_bias)
    return {"loss": np.mean(np.asarray(losses, "float64"), axis=0).tolist()}


def sparse(users: np.ndarray, items: np.ndarray, below: int) -> bool:
    """Whether the median user or the median item (of those rated) has fewer than ``below`` ratings."""
    if len(users) == 0 or below <= 0:
        return False
    medians = [np.median(counts[counts > 0]) for counts in (np.bincount(users), np.bincount(items))]
    return bool(min(medians) < below)


class SweepProgress:
    """Reports the sampler's progress (:func:`~ratecast.models.fitting.report`) as the chains' sweeps end: at most
    one line every :data:`REPORT_EVERY` seconds, and the last sweep's; safe to call from the chains' threads."""

    def __init__(self, total: int):
        self.total, self.count = int(total), 0
        self.start = self.last = time.monotonic()
        self.lock = threading.Lock()

    def done(self, rmse: float) -> None:
        """One more sweep ended, with training RMSE ``rmse``."""
        with self.lock:
            self.count += 1
            now = time.monotonic()
            if self.count < self.total and now - self.last < REPORT_EVERY:
                return
            self.last = now
            count, elapsed = self.count, now - self.start
        left = elapsed / count * (self.total - count)
        report(f"Gibbs sampling: sweep {count}/{self.total}, training RMSE {rmse:.4f}, {elapsed:,.0f} s "
               f"elapsed" + (f", about {left:,.0f} s left" if count < self.total else ""))


def stored_by(plan: "budget.Plan", chain: int, summarised: bool = False) -> int:
    """How many samples chain ``chain`` keeps: an even share of the stored samples (``summarised``: of those left
    after each chain's mean), the first chains one more."""
    kept = plan.stored - plan.chains if summarised else plan.stored
    return kept // plan.chains + (chain < kept % plan.chains)


class PosteriorSampler(Fitter):
    """The whole fit of model ``bayesian``: Gibbs sampling from every training rating (:func:`sample_posterior`),
    after the ratings are known; the training engine is not run."""

    replaces_gradient = True

    def after(self, model: "BayesianModel", given: Ratings) -> dict[str, list[float]]:
        return sample_posterior(model, given.users, given.items, given.ratings, given.days)


@register("bayesian", BayesianConfig)
class BayesianModel(BiasedDotModel):
    """Posterior-mean rating of a Bayesian factorisation machine (see the module docstring): the biased dot product's
    network, with the sampled global bias as its offset and every sample's factors side by side in the tables."""

    fitters = (PosteriorSampler(),)
    capabilities: ClassVar[Capabilities] = Capabilities(features_where_available=True, uses_days=True)
    cold_start: ClassVar[ColdStart] = NamedFeatures()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.global_bias = self.add_weight(shape=(), initializer=keras.initializers.Constant(self.global_mean),
                                           trainable=False, name="offset")
        # each user's days (-1: none) and their biases
        width = self.cfg.max_days if self.cfg.day_bias else 1
        self.user_days = self.add_weight(shape=(self.n_users, width), initializer=keras.initializers.Constant(-1),
                                         dtype="int32", trainable=False, name="user_days")
        self.user_day_bias = self.add_weight(shape=(self.n_users, width), initializer="zeros", trainable=False,
                                             name="user_day_bias")

    def user_tables(self) -> dict:
        return {"user_days": self.user_days, "user_day_bias": self.user_day_bias}

    def offset(self):
        return self.global_bias

    def item_product_table(self):
        """None: no product form. The tables hold every stored sample's factors side by side (6,400 columns on
        ML-100k), so a product table made for each ranking would copy them for every served user's list, where
        :meth:`score_items` contracts the whole table in place (:func:`~ratecast.models.layers.item_dots`)."""
        return None

    def fold_in_blocks(self) -> int:
        """One fold-in fit per stored posterior sample: the user's conditional mean given each sample's item factors
        (with the trained users' spread of that sample as its prior), averaged as the prediction averages them;
        one fit over every column where the tables are :attr:`summarised` (their blocks are not alike)."""
        return 1 if self.summarised else self.stored

    @property
    def summarised(self) -> bool:
        """Whether the tables hold, per chain, the mean of its samples' factors and some samples' deviations from
        it (where they cannot store every sample, and store more than one block per chain): the posterior mean of
        ``<p, q>`` is each chain's ``<mean p, mean q>`` plus the mean product of its deviations, the first from every
        sample and the second estimated from those kept, whose noise is much smaller than a few samples'
        products."""
        chains = budget.DEFAULT_CHAINS if self.cfg.chains is None else self.cfg.chains
        return chains < self.stored < self.cfg.total_samples

    def fold_in_rows(self, items, ratings, known):
        """A new user has no days of their own (their day biases are zero); a known user keeps theirs."""
        if known:
            return {}
        width = self.user_days.shape[1]
        return {"user_days": np.full(width, -1, "int32"), "user_day_bias": np.zeros(width, "float32")}

    def score(self, inputs, training=None):
        out = super().score(inputs, training=training)
        if "day" not in inputs:
            return out
        days = ops.take(self.user_days, inputs["user"], axis=0)
        day = ops.expand_dims(ops.cast(inputs["day"], "int32"), -1)
        hit = ops.logical_and(days == day, days >= 0)
        return out + ops.sum(ops.where(hit, ops.take(self.user_day_bias, inputs["user"], axis=0), 0.0), axis=-1)

    def table_width(self) -> int:
        """``embedding_dim`` columns per stored sample; the stored samples are fixed here, from the items and the
        options alone (:func:`~ratecast.models.sampling_budget.stored_samples`), so that a saved model
        rebuilds with the same tables on any machine."""
        cfg = self.cfg
        self.stored = budget.stored_samples(self.n_items, cfg.embedding_dim, cfg.total_samples, cfg.stored_samples,
                                            cfg.memory_budget)
        # the tables are made next: refused in one line where they alone cannot fit
        memory.require(budget.table_bytes(self.n_users, self.n_items, cfg.embedding_dim, self.stored),
                       f"the tables of 'bayesian' with embedding_dim={cfg.embedding_dim}, stored_samples="
                       f"{self.stored} over {self.n_users - 1:,} users and {self.n_items - 1:,} items",
                       "lower stored_samples or embedding_dim")
        return cfg.embedding_dim * self.stored

    def user_day_slots(self, users: np.ndarray, days: np.ndarray | None
                       ) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]]:
        """The (user, day) pairs kept, per user the ``max_days`` days with the most ratings (ties: the later day):
        each rating's pair number (-1: none), the (n_users, max_days) table of the days kept (-1: empty), and
        where in that table each pair sits (rows, columns)."""
        width = self.user_days.shape[1]
        table = np.full((self.n_users, width), -1, "int32")
        none = np.full(len(users), -1, "int64")
        if not self.cfg.day_bias or days is None or not (np.asarray(days) >= 0).any():
            return none, table, (np.zeros(0, "int64"), np.zeros(0, "int64"))
        days = np.asarray(days, "int64")
        has = days >= 0
        pairs, inverse, counts = np.unique(np.stack([users[has], days[has]], 1), axis=0, return_inverse=True,
                                           return_counts=True)
        order = np.lexsort((-pairs[:, 1], -counts, pairs[:, 0]))  # by user, then most rated, then latest
        owner = pairs[order, 0]
        rank = np.arange(len(order)) - np.searchsorted(owner, owner)
        kept = order[rank < width]
        number = np.full(len(pairs), -1, "int64")
        number[kept] = np.arange(len(kept))
        rows, cols = pairs[kept, 0], rank[rank < width]
        table[rows, cols] = pairs[kept, 1]
        slots = none.copy()
        slots[has] = number[inverse.reshape(-1)]
        return slots, table, (rows, cols)

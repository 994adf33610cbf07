"""A model that learns which items a user picks as well as how they rate them.

User representation (SVD++'s implicit feedback): the user vector plus the normalised sum of implicit factors of the
items the user rated in training, ``p_u + |N(u)|^-1/2 sum_{j in N(u)} w_uj y_j``, where items rated below the
"liked" level weigh ``low_weight`` (``w_uj`` = 1 otherwise). The item sets are taken from the training ratings in
:class:`ItemSets` and held on the device as padded ``(n_users, max_items)`` tables.

Two heads share that representation:

* rating: ``mu + b_u + b_i + <rep_u, q_i>``, trained with a squared error (what ``predict`` returns);
* interaction: ``log softmax_i(<rep_u, w_i> + c_i)`` over the whole catalogue, trained on each training pair with
  the pair's item left out of the user's set and the rest dropped at random (a denoising, leave-one-out
  objective); pairs rated below the "liked" level weigh ``low_weight``.

A third, closed-form head scores items from item-to-item weights (EASE: a ridge regression of each item's column on
the others, zero diagonal, on the same weighted sets; :mod:`ratecast.models.item_item`), fitted with the sets.

A fourth head models each user's whole set at once (Mult-DAE, Liang et al. 2018; :mod:`ratecast.models.set_head`):
the weighted set, L2-normalised and dropout-corrupted, through a ``tanh`` layer of ``set_model_hidden`` units to
logits over the catalogue, trained on the multinomial log-likelihood of the user's weighted set (one example per
user, Adam, ``set_model_epochs`` passes).

The network computes the heads; the parts fitted apart from the training engine are :class:`ItemSets` (the sets
and the item-item head) and :class:`SetHead`. After gradient training the sets are refilled from every rating the
user gave in training, the validation share included, and the item-item and set heads are fitted on them.

Large catalogues: every head runs at every size; what changes with the catalogue is how each is fitted, by one rule
per head on the number of known items (``n``), each with its own option:

* ``n > softmax_max_items``: the rating and pick heads are not trained pair by pair by the training engine (a
  whole-catalogue softmax per pair); :class:`SampledHeads` trains them by batches of users with a sampled softmax,
  log-Q corrected (:mod:`ratecast.models.sampled`), for ``sampled_epochs`` passes (more on data too small for them
  to make ``sampled.MIN_STEPS`` steps), on every training rating;
* ``n > item_item_max_items``: the item-item head is EASE with a diagonal-plus-low-rank Gram matrix (rank
  ``item_item_rank``) instead of the exact inverse;
* ``n > set_model_max_items``: the set head reads its input layer by rows and trains its output on the sampled
  softmax, for ``min(set_model_epochs, sampled_epochs)`` passes (more, up to ``set_model_epochs``, on data too small
  for them to make ``sampled.MIN_STEPS`` steps), ``set_model_sampled_hidden`` units wide (its scoring of a whole
  catalogue reads ``hidden x items`` weights per user).

Memory is planned before anything large is made: the item-item head refuses in one line when its matrices do not
fit the memory available (:meth:`ImplicitModel.check_memory`).

Lists rank by a per-user standardised blend: ``(1 - a - c) z(interaction) + a z(item-item) + c z(set)``, plus
``rating_weight`` times the predicted rating's distance from the liked level (in quarters of the scale), so what a
user would pick and how they would like it both count; ``predict`` keeps returning ratings.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import keras
import numpy as np
from keras import ops

import dataclasses

from ..datasets.scale import LIKED_FRACTION
from ..memory import available_memory, readable
from ..search_space import Float, Int
from .base import RatingModel, register
from .config import Dim, Fraction, LearningRate, Loss, ModelConfig, NonNegative, PositiveInt, Share, at_most, config
from .layers import embedding, fast_uniform, item_dots
from .fitting import Fitter, Ratings, report
from . import item_item as ii
from . import sampled
from .outputs import PickOutput
from .set_head import fit_set_head, set_logits


@config
class ImplicitConfig(ModelConfig):
    """Implicit-feedback user representation with a rating head and a whole-catalogue interaction head.

    Defaults chosen on a validation split of ML-100k's lab training set (``benchmarks/topn.py --tune implicit``)."""

    name: ClassVar[str] = "implicit"
    losses: ClassVar[tuple[str, ...]] = ("mse",)
    training: ClassVar[dict] = {"optimizer": "adam", "learning_rate": 3e-3, "batch_size": 1024, "epochs": 30,
                                "monitor": "val_top_n"}
    search_space: ClassVar[dict] = {
        "embedding_dim": Int(32, 128, log=True), "l2": Float(3e-3, 0.1, log=True),
        "factor_l2": Float(1e-6, 1e-3, log=True), "set_dropout": Float(0.2, 0.8),
        "interaction_weight": Float(0.5, 10.0, log=True), "rating_weight": Float(0.0, 0.5),
        "item_item_weight": Float(0.0, 0.5), "set_model_weight": Float(0.0, 0.5),
        "learning_rate": Float(1e-3, 1e-2, log=True)}
    embedding_dim: Dim = 64
    loss: Loss = "mse"
    l2: NonNegative = 0.02  # on the rows a batch looks up
    factor_l2: NonNegative = 3e-5  # on the whole implicit and pick factor tables, per batch
    max_items: at_most(PositiveInt, 1 << 16) = 512  # items kept per user's implicit set (a seeded sample beyond it)
    set_dropout: Fraction = 0.5  # share of a user's other items dropped from their set at each training pair
    liked: Share = LIKED_FRACTION  # the liked level, as a fraction of the rating scale (RatingScale.level)
    low_weight: Share = 0.5  # weight of the interaction loss for pairs rated below the liked level
    interaction_weight: NonNegative = 3.0  # interaction loss relative to the rating loss
    rating_weight: NonNegative = 0.25  # in the ranking key: the predicted rating's distance from the liked level
    item_item_weight: Share = 0.25  # share of the item-item head in the ranking key (0: off)
    item_item_lambda: NonNegative = 10.0  # its ridge penalty, in training ratings per item
    # larger catalogues: diagonal-plus-low-rank EASE (exact EASE holds items^2 floats)
    item_item_max_items: at_most(PositiveInt, 1 << 16) = 12000
    item_item_rank: at_most(PositiveInt, 1 << 12) = 64  # the rank of the low-rank item-item head
    set_model_weight: Share = 0.5  # share of the set head (Mult-DAE) in the ranking key (0: off)
    set_model_hidden: at_most(PositiveInt, 1 << 14) = 600
    set_model_epochs: at_most(PositiveInt, 1 << 14) = 100
    set_model_l2: NonNegative = 1e-4  # on its two weight matrices, against the mean per-user log-likelihood
    # larger catalogues: the set head reads rows of its input layer and its output uses the sampled softmax
    set_model_max_items: at_most(PositiveInt, 1 << 24) = 12000
    set_model_sampled_hidden: at_most(PositiveInt, 1 << 14) = 64  # its width there (scoring reads hidden x items)
    # larger catalogues: the rating and pick heads are trained by user batches on a sampled softmax
    softmax_max_items: at_most(PositiveInt, 1 << 24) = 12000
    sampled_negatives: at_most(PositiveInt, 1 << 16) = 512  # items drawn per step for the sampled softmax
    # passes over the users of the sampled trainers: at 25 M ratings 2 passes scored within 0.4% of 4 on validation,
    # for 2/3 of the fit time (benchmarks/topn_passes.py)
    sampled_epochs: at_most(PositiveInt, 1 << 14) = 2
    # the sampled trainers' row rule (ratecast.optim) and rate, for both of them unless "adam" (the set head then
    # keeps Adam at 1e-3). Chosen on a validation split of ML-100k's lab training set with every head on its
    # large-catalogue variant (benchmarks/topn.py --tune implicit-large), recall@10 / NDCG@10 and fit seconds:
    # adam 3e-3 0.2702 / 0.2384, 193 s; adagrad 0.3 0.2686 / 0.2349, 21 s; adagrad 0.1 0.2673 / 0.2334; sgd 0.03
    # 0.2575 / 0.2251 (the exact heads there: 0.2849 / 0.2519; EASE 0.2531 / 0.2180). Adagrad writes each row once
    # per step where lazy Adam moves three times the data, so it is chosen
    sampled_optimizer: Literal["adam", "adagrad", "sgd"] = "adagrad"
    sampled_learning_rate: LearningRate = 0.3

    #: the options of the large-catalogue variants, added after models were first saved
    LARGE_CATALOGUE_OPTIONS: ClassVar[tuple[str, ...]] = (
        "item_item_rank", "set_model_sampled_hidden", "softmax_max_items", "sampled_negatives", "sampled_epochs",
        "sampled_optimizer", "sampled_learning_rate")

    @classmethod
    def saved_before(cls, saved: dict, known_items: int) -> dict:
        """A config saved before the large-catalogue variants: trained by the engine at any size, and the item-item
        and set heads off above their thresholds (as those models were fitted and scored)."""
        if any(name in saved for name in cls.LARGE_CATALOGUE_OPTIONS):
            return saved
        fields = {f.name: f.default for f in dataclasses.fields(cls)}
        out = {**{name: fields[name] for name in cls.LARGE_CATALOGUE_OPTIONS}, "softmax_max_items": 1 << 24, **saved}
        if known_items > saved.get("item_item_max_items", fields["item_item_max_items"]):
            out["item_item_weight"] = 0.0
        if known_items > saved.get("set_model_max_items", fields["set_model_max_items"]):
            out["set_model_weight"] = 0.0
        return out

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.item_item_weight + self.set_model_weight > 1:
            raise ValueError("set_model_weight must be in [0, 1] and at most 1 - item_item_weight, got "
                             f"{self.set_model_weight!r}")


def padded_sets(users: np.ndarray, items: np.ndarray, values: np.ndarray, n_users: int, width: int,
                seed: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Each user's distinct items as a row of ``width`` indices (0 = padding), with each item's value (the last one
    given for a repeated pair) beside it; a seeded sample of a user's items when there are more than ``width``."""
    users, items = np.asarray(users, "int64"), np.asarray(items, "int64")
    span = int(items.max(initial=0)) + 1
    keys = users * span + items
    last = len(keys) - 1 - np.unique(keys[::-1], return_index=True)[1]  # position of each pair's last occurrence
    order = last[np.random.default_rng(seed).permutation(len(last))]  # which items a capped user keeps
    order = order[np.argsort(users[order], kind="stable")]
    u, i, v = users[order], items[order], np.asarray(values)[order]
    rank = np.arange(len(u)) - np.searchsorted(u, u)
    keep = rank < width
    table = np.zeros((n_users, width), "int32")
    table[u[keep], rank[keep]] = i[keep]
    value = np.zeros((n_users, width), "float32")
    value[u[keep], rank[keep]] = v[keep]
    return table, value


def _standardise(x, mean, std):
    """(x - mean) / std, with a floor under std so that a flat row stays flat rather than amplifying rounding."""
    return (x - mean) / ops.maximum(std, 1e-3)


def _table(rows: int, width: int, init, name: str) -> keras.layers.Embedding:
    layer = keras.layers.Embedding(rows, width, embeddings_initializer=init, name=name)
    layer.build()
    return layer


@dataclasses.dataclass(frozen=True)
class Chosen:
    """A batch of users' weighted sets: ``sets`` and ``mask`` (batch, width; 0 at padding and at what training
    drops), the number of items kept per user (batch, 1), and, on catalogues small enough, the same as a dense
    (batch, items) matrix (None above ``softmax_max_items``: products then read the rows of the user's items)."""

    sets: object
    mask: object
    count: object
    dense: object = None

    def times(self, table):
        """The weighted sets times ``table`` (items, k): (batch, k)."""
        if self.dense is not None:
            return ops.matmul(self.dense, table)
        return ops.einsum("bw,bwk->bk", self.mask, ops.take(table, self.sets, axis=0))

    def norm(self):
        """Each set's L2 norm (batch, 1), floored."""
        return ops.sqrt(ops.maximum(ops.sum(self.mask * self.mask, axis=1, keepdims=True), 1e-12))

    def value_of(self, items):
        """The weight of each of ``items`` (batch, k) in the user's set (0 where absent)."""
        hit = ops.cast(ops.expand_dims(self.sets, 1) == ops.expand_dims(ops.cast(items, "int32"), 2), "float32")
        return ops.sum(hit * ops.expand_dims(self.mask, 1), axis=-1)

    def matrix(self, n_items: int):
        """The weighted sets as a dense (batch, items) matrix."""
        if self.dense is not None:
            return self.dense
        b, width = ops.shape(self.sets)
        rows = ops.repeat(ops.arange(b, dtype="int32"), width)
        at = ops.stack([rows, ops.reshape(self.sets, (-1,))], axis=1)
        return ops.scatter(at, ops.reshape(self.mask, (-1,)), (b, n_items))


class ItemSets(Fitter):
    """The users' implicit sets: from the ratings the network trains on (with the item-item head's weights) before
    gradient training, then again from every rating the users gave, for the parts after it."""

    def before(self, model: "ImplicitModel", fit: Ratings) -> None:
        model.check_memory()  # in one line, before anything large is made
        if model.trained_by_gradient:  # (the sampled trainer reads the sets that after() fills)
            table, value, _ = model.padded_ratings(fit.users, fit.items, fit.ratings)
            model.fill_sets(table, value)
            model.fit_item_item(table, value)

    def after(self, model: "ImplicitModel", given: Ratings) -> None:
        table, value, _ = padded_ratings(model, given)
        model.fill_sets(table, value)


def padded_ratings(model: "ImplicitModel", given: Ratings) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``model.padded_ratings`` of every rating given, made once per fit for the parts that read it."""
    return given.derived("implicit padded ratings",
                         lambda: model.padded_ratings(given.users, given.items, given.ratings))


class ItemItemHead(Fitter):
    """The item-item head (:mod:`ratecast.models.item_item`) on the sets of every rating given."""

    concurrent = True

    def after(self, model: "ImplicitModel", given: Ratings) -> None:
        if model.uses_item_item:
            kind = f"low-rank EASE, rank {model.item_item_rank}" if model.item_item_low_rank else "EASE"
            report(f"item-item head ({kind}) on {len(given.ratings):,} ratings…")
            table, value, _ = padded_ratings(model, given)
            model.fit_item_item(table, value)


class SampledHeads(Fitter):
    """The rating and pick heads over a large catalogue (above ``softmax_max_items``), trained by batches of users
    on a log-Q corrected sampled softmax (:mod:`ratecast.models.sampled`) instead of by the training engine."""

    concurrent = True

    def after(self, model: "ImplicitModel", given: Ratings) -> dict[str, list[float]] | None:
        if not model.sampled_training:
            return None
        table, value, rated = padded_ratings(model, given)
        # biases start at their damped means, as the user rows are read once per pass
        u, i = np.nonzero(table)
        residual = rated[u, i] - np.float32(model.global_mean)
        item_bias = (np.bincount(table[u, i], residual, minlength=model.n_items)
                     / (np.bincount(table[u, i], minlength=model.n_items) + 25.0))
        user_bias = (np.bincount(u, residual - item_bias[table[u, i]], minlength=model.n_users)
                     / (np.bincount(u, minlength=model.n_users) + 10.0))
        del u, i, residual
        layers = {"user": model.user_embedding, "implicit": model.implicit_factors, "pick": model.pick_factors,
                  "pick_bias": model.pick_bias, "item": model.item_embedding}
        start = {k: np.asarray(layer.embeddings) for k, layer in layers.items()}
        start["user_bias"], start["item_bias"] = user_bias[:, None], item_bias[:, None]
        c = model.cfg
        fitted, losses = sampled.fit_pick_and_rating(
            table, value, rated, start, global_mean=model.global_mean, dropout=c.set_dropout,
            interaction_weight=c.interaction_weight, l2=c.l2, negatives=c.sampled_negatives,
            epochs=c.sampled_epochs, learning_rate=c.sampled_learning_rate, seed=model.seed_for(8),
            optimizer=c.sampled_optimizer,
            on_pass=lambda k, n, loss: report(f"rating and pick heads (sampled softmax): pass {k}/{n}, "
                                              f"loss {loss:.4f}"))
        layers.update(user_bias=model.user_bias, item_bias=model.item_bias)
        for name, layer in layers.items():
            layer.embeddings.assign(fitted[name].astype("float32"))
        return {"loss": losses}


class SetHead(Fitter):
    """The set head (Mult-DAE, :mod:`ratecast.models.set_head`), fitted after gradient training on the sets of every
    rating given; above ``set_model_max_items`` by rows and a sampled softmax
    (:func:`ratecast.models.sampled.fit_set_model`)."""

    concurrent = True

    def after(self, model: "ImplicitModel", given: Ratings) -> None:
        if not model.uses_set_model:
            return
        c = model.cfg
        sets, weights, _ = padded_ratings(model, given)
        if model.set_model_sampled:
            fitted = sampled.fit_set_model(sets, weights, model.n_items, model.set_model_hidden,
                                           min(c.set_model_epochs, c.sampled_epochs), c.set_model_l2, c.set_dropout,
                                           model.seed_for(7), c.sampled_negatives, max_epochs=c.set_model_epochs,
                                           on_pass=lambda k, n, loss: report(
                                               f"set head (sampled softmax): pass {k}/{n}, loss {loss:.4f}"),
                                           **model.set_model_rule())
        else:
            fitted = fit_set_head(sets, weights, model.n_items, c.set_model_hidden, c.set_model_epochs,
                                  c.set_model_l2, c.set_dropout, model.seed_for(7))
        for variable, value in zip(model.set_model_weights, [*fitted, np.float32(1)]):
            variable.assign(value)


@register("implicit", ImplicitConfig)
class ImplicitModel(RatingModel):
    """Outputs (rating, log-probability that the user picks the item, ranking key) per pair."""

    user_layers = ("user_embedding", "user_bias")
    fitters = (ItemSets(), ItemItemHead(), SampledHeads(), SetHead())

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        d = self.cfg.embedding_dim
        self.trained_by_gradient = self.trained_by_gradient_at(self.cfg, self.n_items)
        self.user_bias = embedding(self.n_users, 1, "user_bias", None, zeros=True)
        self.item_bias = embedding(self.n_items, 1, "item_bias", None, zeros=True)
        init = (keras.initializers.RandomNormal(stddev=d ** -0.5, seed=self.seed_for(3)) if self.random_init
                else "zeros")
        # item tables read whole (not by the batch's item ids), so plain Embedding layers rather than row tables;
        # layers, so that fold_in can freeze them with everything else that is not the user's
        self.implicit_factors = _table(self.n_items, d, init, "implicit_factors")
        self.pick_factors = _table(self.n_items, d, keras.initializers.RandomNormal(
            stddev=0.01, seed=self.seed_for(4)) if self.random_init else "zeros", "pick_factors")
        self.pick_bias = _table(self.n_items, 1, "zeros", "pick_bias")
        self.item_sets = self.add_weight(shape=(self.n_users, self.cfg.max_items), initializer="zeros",
                                         dtype="int32", trainable=False, name="item_sets")
        self.set_weights_table = self.add_weight(shape=(self.n_users, self.cfg.max_items), initializer="zeros",
                                                 trainable=False, name="set_weights")
        self.set_seed = keras.random.SeedGenerator(self.seed_for(6))
        # exact: B (items x items); low rank: U (items x rank) beside 1/D (items), with P = diag(1/D) - U U^T
        if not self.uses_item_item:
            shape = (1, 1)
        elif self.item_item_low_rank:
            shape = (self.n_items, self.item_item_rank)
        else:
            shape = (self.n_items, self.n_items)
        self.item_item = self.add_weight(shape=shape, initializer="zeros", trainable=False, name="item_item")
        if self.item_item_low_rank:
            self.item_item_inv_d = self.add_weight(shape=(self.n_items,), initializer="zeros", trainable=False,
                                                   name="item_item_inv_d")
        # per user: mean and standard deviation of the item-item scores over the known items (for the blend)
        self.item_item_stats = self.add_weight(shape=(self.n_users, 2), initializer="zeros", trainable=False,
                                               name="item_item_stats")
        rows, h = (self.n_items, self.set_model_hidden) if self.uses_set_model else (1, 1)
        self.set_model_weights = [
            self.add_weight(shape=(rows, h), initializer="zeros", trainable=False, name="set_model_w1"),
            self.add_weight(shape=(h,), initializer="zeros", trainable=False, name="set_model_b1"),
            self.add_weight(shape=(h, rows), initializer="zeros", trainable=False, name="set_model_w2"),
            self.add_weight(shape=(rows,), initializer="zeros", trainable=False, name="set_model_b2"),
            self.add_weight(shape=(), initializer="zeros", trainable=False, name="set_model_fitted")]

    # --- which variant of each head (the rules of the module docstring) ------------------------------------------
    @property
    def uses_item_item(self) -> bool:
        return self.cfg.item_item_weight > 0

    @property
    def item_item_low_rank(self) -> bool:
        return self.uses_item_item and self.n_items - 1 > self.cfg.item_item_max_items

    @property
    def item_item_rank(self) -> int:
        return max(1, min(self.cfg.item_item_rank, self.n_items - 1))

    @property
    def uses_set_model(self) -> bool:
        return self.cfg.set_model_weight > 0

    @property
    def set_model_sampled(self) -> bool:
        return self.uses_set_model and self.n_items - 1 > self.cfg.set_model_max_items

    @property
    def set_model_hidden(self) -> int:
        return self.cfg.set_model_sampled_hidden if self.set_model_sampled else self.cfg.set_model_hidden

    def set_model_rule(self) -> dict:
        """The sampled set head's optimizer and learning rate: Adam at its own rate, or the sampled trainers' rule
        where that is not Adam (one rate for both)."""
        c = self.cfg
        if c.sampled_optimizer == "adam":
            return {"optimizer": "adam", "learning_rate": 1e-3}
        return {"optimizer": c.sampled_optimizer, "learning_rate": c.sampled_learning_rate}

    @property
    def sampled_training(self) -> bool:
        return not self.trained_by_gradient

    @classmethod
    def trained_by_gradient_at(cls, cfg: ImplicitConfig, n_items: int) -> bool:
        """The rule of the module docstring: above ``softmax_max_items`` the engine does not train this model."""
        return n_items - 1 <= cfg.softmax_max_items

    def check_memory(self, available: int | None = None) -> None:
        """Refuse, in one line, an item-item head whose matrices do not fit the memory available (the exact head's
        ``items x items`` matrices, the low-rank head's randomized SVD bases)."""
        if not self.uses_item_item:
            return
        have = available_memory() if available is None else available
        if self.item_item_low_rank:
            need = ii.low_rank_bytes(self.n_users, self.n_items, self.item_item_rank)
            if have is not None and need > have:
                raise ValueError(f"item_item_rank: the low-rank item-item head of rank {self.item_item_rank} over "
                                 f"{self.n_users - 1} users and {self.n_items - 1} items needs {readable(need)} of "
                                 f"memory and {readable(have)} is available; lower item_item_rank or set "
                                 "item_item_weight=0")
            return
        need = ii.exact_bytes(self.n_items)
        if have is not None and need > have:
            raise ValueError(f"item_item_max_items: the exact item-item head of {self.n_items - 1} items needs "
                             f"{readable(need)} of memory and {readable(have)} is available; set "
                             f"item_item_max_items below {self.n_items - 1} (the low-rank head) or item_item_weight=0")

    # --- data ---------------------------------------------------------------------------------------------------
    def padded_ratings(self, users, items, ratings) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The users' padded sets (:func:`padded_sets`), each entry's weight (1 at or above the liked level,
        ``low_weight`` below, 0 at padding) and its rating."""
        table, rated = padded_sets(users, items, np.asarray(ratings, "float32"), self.n_users, self.cfg.max_items,
                                   self.seed)
        return table, self.set_weight(rated) * (table > 0), rated

    def set_weight(self, ratings) -> np.ndarray:
        """The weight of rated items in a user's set: 1 at or above the liked level, ``low_weight`` below."""
        return np.where(np.asarray(ratings) >= self.liked_rating - 1e-6, np.float32(1),
                        np.float32(self.cfg.low_weight)).astype("float32")

    def fill_sets(self, table: np.ndarray, value: np.ndarray) -> None:
        """Hold these padded sets and weights (:meth:`padded_ratings`) as the users' implicit sets."""
        self.item_sets.assign(table)
        self.set_weights_table.assign(value)

    def fit_item_item(self, table: np.ndarray, value: np.ndarray) -> None:
        """The item-item head's weights and per-user statistics from these padded sets (nothing when it is off)."""
        if not self.uses_item_item:
            return
        X = ii.set_matrix(table, value, self.n_items)
        if self.item_item_low_rank:
            U, inv_d = ii.low_rank_factors(X, self.cfg.item_item_lambda, self.item_item_rank, self.seed)
            full = np.zeros(tuple(self.item_item.shape), "float32")
            full[:, :U.shape[1]] = U
            self.item_item.assign(full)
            self.item_item_inv_d.assign(inv_d)
            self.item_item_stats.assign(ii.low_rank_stats(X, full, inv_d))
        else:
            B = ii.exact_weights(X, self.cfg.item_item_lambda)
            self.item_item.assign(B.astype("float32"))
            self.item_item_stats.assign(ii.exact_stats(X, B))

    def item_item_stats_of(self, row: np.ndarray, value: np.ndarray) -> np.ndarray:
        """(len(row), 2) statistics of the item-item scores of padded sets ``row`` with weights ``value`` (numpy)."""
        X = ii.set_matrix(row, value, self.n_items)
        if self.item_item_low_rank:
            return ii.low_rank_stats(X, np.asarray(self.item_item.value), np.asarray(self.item_item_inv_d.value))
        return ii.exact_stats(X, np.asarray(self.item_item.value))

    def with_new_user(self, user_features_row=None, items=None, ratings=None) -> "ImplicitModel":
        """The base copy, with the new user's implicit set (and item-item statistics) filled from their ratings."""
        clone = super().with_new_user(user_features_row)
        if items is not None and len(items):
            row, value = padded_sets(np.zeros(len(items), "int64"), np.asarray(items), self.set_weight(ratings), 1,
                                     self.cfg.max_items, self.seed)
            clone.item_sets.assign(np.concatenate([np.asarray(self.item_sets), row]))
            clone.set_weights_table.assign(np.concatenate([np.asarray(self.set_weights_table), value]))
            if self.uses_item_item:
                stats = self.item_item_stats_of(row, value)
                clone.item_item_stats.assign(np.concatenate([np.asarray(self.item_item_stats), stats]))
        return clone

    # --- fold-in hooks (see ratecast.foldin) ---------------------------------------------------------------
    user_tables = ("item_sets", "set_weights_table", "item_item_stats")

    def fold_in_rows(self, items, ratings, known):
        """The user's implicit set from their ratings (as :meth:`fill_sets` makes it) and its item-item statistics."""
        row, value = padded_sets(np.zeros(len(items), "int64"), np.asarray(items), self.set_weight(ratings), 1,
                                 self.cfg.max_items, self.seed)
        stats = self.item_item_stats_of(row, value)[0] if self.uses_item_item else np.zeros(2, "float32")
        return {"item_sets": row[0], "set_weights_table": value[0], "item_item_stats": stats}

    def implicit_part(self, sets: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """``|N(u)|^-1/2 sum w_uj y_j`` for users' sets (users, width) and their weights: (users, dim)."""
        count = np.maximum((weights > 0).sum(axis=1, keepdims=True), 1)
        factors = np.asarray(self.implicit_factors.embeddings)
        return np.einsum("uw,uwd->ud", weights, factors[sets]) / np.sqrt(count)

    def fold_in_design(self, items, rows):
        """theta = [p_u, b_u]; the rating head is ``mean + b_u + b_i + <p_u + implicit part, q_i>``."""
        Q = np.asarray(self.item_embedding.embeddings)[items]
        implicit = self.implicit_part(rows["item_sets"], rows["set_weights_table"])
        offset = (self.global_mean + np.asarray(self.item_bias.embeddings)[items, 0]
                  + np.einsum("urd,ud->ur", Q, implicit))
        return np.concatenate([Q, np.ones((*items.shape, 1), Q.dtype)], axis=-1), offset.astype("float64")

    @property
    def liked_rating(self) -> float:
        return self.scale.level(self.cfg.liked)  # by default the scale's liked_threshold, as in evaluation

    # --- the network ------------------------------------------------------------------------------------------
    def _chosen(self, users, items=None, training=False) -> Chosen:
        """The users' weighted sets (see :class:`Chosen`); while training, the pair's own item is left out and the
        rest are dropped at random."""
        sets = ops.take(self.item_sets, users, axis=0)
        mask = ops.take(self.set_weights_table, users, axis=0)  # 0 at padding
        if training and items is not None:
            mask = mask * ops.cast(sets != ops.expand_dims(ops.cast(items, "int32"), 1), "float32")
            if self.cfg.set_dropout:
                keep = fast_uniform(ops.shape(mask), self.set_seed) >= self.cfg.set_dropout
                mask = mask * ops.cast(keep, "float32")
        count = ops.sum(ops.cast(mask > 0, "float32"), axis=1, keepdims=True)
        chosen = Chosen(sets, mask, count)
        if self.sampled_training:  # products read the rows of the user's items
            return chosen
        # a (batch, items) matrix times the factors: one matrix product forward and back, where a gather of
        # (batch, max_items, dim) rows and its scatter-add would move far more memory
        return Chosen(sets, mask, count, chosen.matrix(self.n_items))

    def representation(self, users, items=None, training=False, chosen=None):
        """``p_u + |N(u)|^-1/2 sum w_uj y_j`` (see :meth:`_chosen` for what training leaves out)."""
        chosen = chosen if chosen is not None else self._chosen(users, items, training)
        implicit = chosen.times(self.implicit_factors.embeddings)
        p = self.user_embedding(users)
        if self.cfg.l2:
            self.add_loss(self.cfg.l2 * ops.mean(ops.sum(p * p, axis=-1)))
        return p + implicit / ops.sqrt(ops.maximum(chosen.count, 1.0))

    def _pick_logits(self, rep):
        """Pick logits over the known items (index 1..), (batch, n_items - 1)."""
        return item_dots(rep, self.pick_factors.embeddings) + self.pick_bias.embeddings[None, 1:, 0]

    def _set_head(self, chosen: Chosen):
        """The set head's logits over the known items (index 1..), (batch, n_items - 1)."""
        w1, b1, w2, b2 = self.set_model_weights[:4]
        if chosen.dense is not None:
            return set_logits(self.set_model_weights[:4], chosen.dense, ops)[:, 1:]
        hidden = ops.tanh(chosen.times(w1) / chosen.norm() + b1)
        return (ops.matmul(hidden, w2) + b2)[:, 1:]

    def _item_item_scores(self, chosen: Chosen, items=None):
        """The item-item scores ``x B`` of the users' sets, for every known item (index 1..) or for ``items``
        (batch, k)."""
        if not self.item_item_low_rank:
            if items is None:
                return chosen.times(self.item_item[:, 1:])
            column = ops.take(ops.transpose(self.item_item), items[:, 0], axis=0)  # (batch, items): one item each
            if chosen.dense is not None:
                return ops.sum(chosen.dense * column, axis=-1, keepdims=True)
            return ops.sum(chosen.mask * ops.take_along_axis(column, chosen.sets, 1), axis=-1, keepdims=True)
        U, inv_d = self.item_item, self.item_item_inv_d
        p_diag = ops.maximum(inv_d - ops.sum(U * U, axis=1), 1e-12 * inv_d + 1e-30)  # 0 when unfitted
        z = chosen.times(U)  # (batch, rank)
        if items is None:
            a = ops.matmul(z, ops.transpose(U[1:])) / p_diag[None, 1:]
            x = chosen.matrix(self.n_items)[:, 1:]
            return a + x - x * inv_d[None, 1:] / p_diag[None, 1:]
        Ui, inv_i, p_i = ops.take(U, items, axis=0), ops.take(inv_d, items), ops.take(p_diag, items)
        x = chosen.value_of(items)
        return ops.einsum("br,bkr->bk", z, Ui) / p_i + x - x * inv_i / p_i

    def _set_term(self, chosen, at=None):
        """The set head's logits standardised over the user's known items, for all of them or those at ``at``
        (batch, k). Until finish() fits the head it has no share in the key and this is zeros, the head not run: a
        run-time branch on ``set_model_fitted`` (lax.cond runs one branch), so the validation monitor and the
        validation loss of every training epoch skip it."""
        def head():
            row = self._set_head(chosen)
            picked = row if at is None else ops.take_along_axis(row, at, 1)
            return _standardise(picked, ops.mean(row, axis=-1, keepdims=True), ops.std(row, axis=-1, keepdims=True))

        width = self.n_items - 1 if at is None else ops.shape(at)[1]
        return ops.cond(self.set_model_weights[4] > 0, head,
                        lambda: ops.zeros((ops.shape(chosen.sets)[0], width), "float32"))

    def _key(self, users, logits, picked, rating, item_item, set_term=None):
        """The ranking key of some items (batch, k): their pick logits standardised over the user's whole row of
        ``logits``, blended with their standardised item-item scores and set-head logits (``set_term``, see
        :meth:`_set_term`), plus the rating term."""
        z = _standardise(picked, ops.mean(logits, axis=-1, keepdims=True), ops.std(logits, axis=-1, keepdims=True))
        a = self.cfg.item_item_weight
        c = 0.0
        if set_term is not None:  # 0 until finish() fits the set head
            c = self.cfg.set_model_weight * self.set_model_weights[4]
        z = (1 - a - c) * z
        if a:
            stats = ops.take(self.item_item_stats, users, axis=0)
            z = z + a * _standardise(item_item, stats[:, :1], stats[:, 1:])
        if set_term is not None:  # (left out while training: the loss does not read the key)
            z = z + c * set_term
        rating = ops.clip(rating, self.scale.minimum, self.scale.maximum)
        span = self.scale.maximum - self.scale.minimum
        return z + self.cfg.rating_weight * (rating - self.liked_rating) * 4 / span

    def score(self, inputs, training=None):
        users, items = inputs["user"], ops.cast(inputs["item"], "int32")
        chosen = self._chosen(users, items, training=bool(training))
        rep = self.representation(users, chosen=chosen)
        q = self.item_embedding(items)
        bu = ops.squeeze(self.user_bias(users), -1)
        bi = ops.squeeze(self.item_bias(items), -1)
        if self.cfg.l2:
            self.add_loss(self.cfg.l2 * ops.mean(ops.sum(q * q, axis=-1) + bu * bu + bi * bi))
        if training and self.cfg.factor_l2:
            self.add_loss(self.cfg.factor_l2 * (ops.sum(ops.square(self.implicit_factors.embeddings))
                                                + ops.sum(ops.square(self.pick_factors.embeddings))))
        rating = self.global_mean + bu + bi + ops.sum(rep * q, axis=-1)
        logits = self._pick_logits(rep)
        at = ops.expand_dims(ops.maximum(items - 1, 0), 1)
        picked = ops.take_along_axis(logits, at, 1)  # (batch, 1), as every input of the key below
        logp = picked[:, 0] - ops.logsumexp(logits, axis=-1)
        item_item = None
        if self.uses_item_item:  # the pair's item-item score from the user's set
            item_item = self._item_item_scores(chosen, ops.expand_dims(items, 1))
        set_term = self._set_term(chosen, at) if self.uses_set_model and not training else None
        key = self._key(users, logits, picked, rating[:, None], item_item, set_term)[:, 0]
        return ops.stack([rating, logp, key], axis=-1)

    capabilities: ClassVar = dataclasses.replace(RatingModel.capabilities, rates_by_user=True)

    def score_ratings(self, inputs):
        """The rating head alone: no whole-catalogue row per pair; each distinct user's representation once."""
        users, items = inputs["user"], ops.cast(inputs["item"], "int32")
        if "unique_user" in inputs:
            distinct = inputs["unique_user"]
            rep = ops.take(self.representation(distinct, chosen=self._chosen(distinct)), inputs["user_row"], axis=0)
        else:
            rep = self.representation(users, chosen=self._chosen(users))
        rating = (self.global_mean + ops.squeeze(self.user_bias(users), -1) + ops.squeeze(self.item_bias(items), -1)
                  + ops.sum(rep * self.item_embedding(items), axis=-1))
        return self.output_rule.to_rating(ops.expand_dims(rating, -1))  # the rule reads the rating at output 0

    def score_items(self, users, user_features=None):
        chosen = self._chosen(users)
        rep = self.representation(users, chosen=chosen)
        bu = ops.take(self.user_bias.embeddings[:, 0], users, axis=0)
        rating = (self.global_mean + bu[:, None] + self.item_bias.embeddings[None, 1:, 0]
                  + item_dots(rep, self.item_embedding.embeddings))
        logits = self._pick_logits(rep)
        logp = logits - ops.logsumexp(logits, axis=-1, keepdims=True)
        item_item = self._item_item_scores(chosen) if self.uses_item_item else None
        set_term = self._set_term(chosen) if self.uses_set_model else None
        key = self._key(users, logits, logits, rating, item_item, set_term)
        return ops.stack([rating, logp, key], axis=-1)

    # --- outputs ------------------------------------------------------------------------------------------------
    def make_output_rule(self) -> PickOutput:
        return PickOutput(self.scale, self.liked_rating, self.cfg.low_weight, self.cfg.interaction_weight,
                          self.cfg.name)

    @property
    def pair_cost(self) -> int:
        # score_items holds, per (user, item): the set as a dense row, the rating, pick logits and their
        # log-probabilities, the item-item scores (and the low-rank form's parts), the set head's logits and their
        # standardised form, the key, and the three stacked outputs; no embedding-wide row per pair
        return 16

    @property
    def rating_row_floats(self) -> int:
        # the user's set: a dense catalogue row, or the rows of the set's items
        return self.cfg.max_items * self.cfg.embedding_dim if self.sampled_training else self.n_items

    @property
    def pair_row_floats(self) -> int:
        # a pair's pick logits (normalised over the catalogue), set-head logits and item-item column, and a spare
        return 4 * (self.n_items - 1)

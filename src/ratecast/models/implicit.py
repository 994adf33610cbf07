"""A model that learns which items a user picks as well as how they rate them.

User representation (SVD++'s implicit feedback): the user vector plus the normalised sum of implicit factors of the
items the user rated in training, ``p_u + |N(u)|^-1/2 sum_{j in N(u)} w_uj y_j``, where items rated below the
"liked" level weigh ``low_weight`` (``w_uj`` = 1 otherwise). The item sets are taken from the training ratings by
:class:`FillSets` and held on the device as padded ``(n_users, max_items)`` tables (the layer
:class:`~ratecast.models.user_sets.UserSets`).

Two heads share that representation:

* rating: ``mu + b_u + b_i + <rep_u, q_i>``, trained with a squared error (what ``predict`` returns);
* interaction: ``log softmax_i(<rep_u, w_i> + c_i)`` over the whole catalogue (the layer
  :class:`~ratecast.models.pick_head.PickHead`), trained on each training pair with
  the pair's item left out of the user's set and the rest dropped at random (a denoising, leave-one-out
  objective); pairs rated below the "liked" level weigh ``low_weight``.

A third, closed-form head scores items from item-to-item weights (EASE: a ridge regression of each item's column on
the others, zero diagonal, on the same weighted sets; :mod:`ratecast.models.item_item`), fitted with the sets.

A fourth head models each user's whole set at once (Mult-DAE, Liang et al. 2018; :mod:`ratecast.models.set_head`):
the weighted set, L2-normalised and dropout-corrupted, through a ``tanh`` layer of ``set_model_hidden`` units to
logits over the catalogue, trained on the multinomial log-likelihood of the user's weighted set (one example per
user, Adam, ``set_model_epochs`` passes).

Each part but the rating head (the users' sets and the pick, item-item and set heads) is a layer of its own, which
the model holds; the item-item and set heads are left out (None) when their weight in the blend is 0. The parts
fitted apart from the training engine are :class:`FillSets` (the sets, and the item-item head on them before
gradient training), :class:`FitItemItem`, :class:`FitSampledHeads` and :class:`FitSetHead`. After gradient training
the sets are refilled from every rating the user gave in training, the validation share included, and the
item-item and set heads are fitted on them.

Large catalogues: every head runs at every size; what changes with the catalogue is how each is fitted, by one rule
per head on the number of known items (``n``), each with its own option:

* ``n > softmax_max_items``: the rating and pick heads are not trained pair by pair by the training engine (a
  whole-catalogue softmax per pair); :class:`FitSampledHeads` trains them by batches of users with a sampled softmax,
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
from .capabilities import Capabilities
from .config import Dim, Fraction, LearningRate, Loss, ModelConfig, NonNegative, PositiveInt, Share, at_most, config
from .layers import embedding, item_dots, standardise
from .fitting import Fitter, Ratings, report
from . import item_item as ii
from . import sampled
from .outputs import PickOutput
from .pick_head import PickHead
from .set_head import SetHead, fit_set_head
from .user_sets import Chosen, UserSets, padded_sets


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


def _table(rows: int, width: int, init, name: str) -> keras.layers.Embedding:
    layer = keras.layers.Embedding(rows, width, embeddings_initializer=init, name=name)
    layer.build()
    return layer


class FillSets(Fitter):
    """The users' implicit sets: from the ratings the network trains on (with the item-item head's weights) before
    gradient training, then again from every rating the users gave, for the parts after it."""

    def before(self, model: "ImplicitModel", fit: Ratings) -> None:
        model.check_memory()  # in one line, before anything large is made
        if model.trained_by_gradient:  # (the sampled trainer reads the sets that after() fills)
            table, value, _ = model.padded_ratings(fit.users, fit.items, fit.ratings)
            model.sets.fill(table, value)
            if model.item_item is not None:
                model.item_item.fit(table, value)

    def after(self, model: "ImplicitModel", given: Ratings) -> None:
        table, value, _ = padded_ratings(model, given)
        model.sets.fill(table, value)


def padded_ratings(model: "ImplicitModel", given: Ratings) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``model.padded_ratings`` of every rating given, made once per fit for the parts that read it."""
    return given.derived("implicit padded ratings",
                         lambda: model.padded_ratings(given.users, given.items, given.ratings))


class FitItemItem(Fitter):
    """The item-item head (:class:`~ratecast.models.item_item.ItemItemHead`) on the sets of every rating given."""

    concurrent = True

    def after(self, model: "ImplicitModel", given: Ratings) -> None:
        head = model.item_item
        if head is not None:
            kind = f"low-rank EASE, rank {head.rank}" if head.low_rank else "EASE"
            report(f"item-item head ({kind}) on {len(given.ratings):,} ratings…")
            table, value, _ = padded_ratings(model, given)
            head.fit(table, value)


class FitSampledHeads(Fitter):
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
        tables = {"user": model.user_embedding.embeddings, "implicit": model.implicit_factors.embeddings,
                  "pick": model.pick.factors, "pick_bias": model.pick.bias, "item": model.item_embedding.embeddings}
        start = {k: np.asarray(variable) for k, variable in tables.items()}
        start["user_bias"], start["item_bias"] = user_bias[:, None], item_bias[:, None]
        c = model.cfg
        fitted, losses = sampled.fit_pick_and_rating(
            table, value, rated, start, global_mean=model.global_mean, dropout=c.set_dropout,
            interaction_weight=c.interaction_weight, l2=c.l2, negatives=c.sampled_negatives,
            epochs=c.sampled_epochs, learning_rate=c.sampled_learning_rate, seed=model.seed_for(8),
            optimizer=c.sampled_optimizer,
            on_pass=lambda k, n, loss: report(f"rating and pick heads (sampled softmax): pass {k}/{n}, "
                                              f"loss {loss:.4f}"))
        tables.update(user_bias=model.user_bias.embeddings, item_bias=model.item_bias.embeddings)
        for name, variable in tables.items():
            variable.assign(fitted[name].astype("float32"))
        return {"loss": losses}


class FitSetHead(Fitter):
    """The set head (Mult-DAE, :class:`~ratecast.models.set_head.SetHead`), fitted after gradient training on the
    sets of every rating given; above ``set_model_max_items`` by rows and a sampled softmax
    (:func:`ratecast.models.sampled.fit_set_model`)."""

    concurrent = True

    def after(self, model: "ImplicitModel", given: Ratings) -> None:
        if model.set_head is None:
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
        model.set_head.assign_fitted(fitted)


@register("implicit", ImplicitConfig)
class ImplicitModel(RatingModel):
    """Outputs (rating, log-probability that the user picks the item, ranking key) per pair.

    Its parts are layers of their own: the users' sets (``sets``, :class:`~ratecast.models.user_sets.UserSets`),
    the pick head (``pick``, :class:`~ratecast.models.pick_head.PickHead`), the item-item head (``item_item``,
    :class:`~ratecast.models.item_item.ItemItemHead`; None when ``item_item_weight`` is 0) and the set head
    (``set_head``, :class:`~ratecast.models.set_head.SetHead`; None when ``set_model_weight`` is 0). The model
    itself holds the user representation and the rating head, and blends the heads into the ranking key."""

    user_layers = ("user_embedding", "user_bias")
    fitters = (FillSets(), FitItemItem(), FitSampledHeads(), FitSetHead())
    capabilities = Capabilities(rates_by_user=True)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        c, d = self.cfg, self.cfg.embedding_dim
        self.trained_by_gradient = self.trained_by_gradient_at(c, self.n_items)
        self.user_bias = embedding(self.n_users, 1, "user_bias", None, zeros=True)
        self.item_bias = embedding(self.n_items, 1, "item_bias", None, zeros=True)
        init = (keras.initializers.RandomNormal(stddev=d ** -0.5, seed=self.seed_for(3)) if self.random_init
                else "zeros")
        # read whole (not by the batch's item ids), so a plain Embedding layer rather than a row table
        self.implicit_factors = _table(self.n_items, d, init, "implicit_factors")
        self.sets = UserSets(self.n_users, c.max_items, self.seed_for(6), name="user_sets")
        self.pick = PickHead(self.n_items, d, keras.initializers.RandomNormal(stddev=0.01, seed=self.seed_for(4))
                             if self.random_init else "zeros", name="pick_head")
        self.item_item = None
        if self.uses_item_item:
            rank = self.item_item_rank if self.item_item_low_rank else None
            self.item_item = ii.ItemItemHead(self.n_users, self.n_items, c.item_item_lambda, rank, self.seed,
                                          name="item_item_head")
        self.set_head = SetHead(self.n_items, self.set_model_hidden, name="set_head") if self.uses_set_model else None

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
        """The users' padded sets (:func:`~ratecast.models.user_sets.padded_sets`), each entry's weight (1 at or
        above the liked level, ``low_weight`` below, 0 at padding) and its rating."""
        table, rated = padded_sets(users, items, np.asarray(ratings, "float32"), self.n_users, self.cfg.max_items,
                                   self.seed)
        return table, self.set_weight(rated) * (table > 0), rated

    def set_weight(self, ratings) -> np.ndarray:
        """The weight of rated items in a user's set: 1 at or above the liked level, ``low_weight`` below."""
        return np.where(np.asarray(ratings) >= self.liked_rating - 1e-6, np.float32(1),
                        np.float32(self.cfg.low_weight)).astype("float32")

    # --- fold-in hooks (see ratecast.foldin) ---------------------------------------------------------------
    def fold_in_rows(self, items, ratings, known):
        """The user's implicit set from their ratings (as :class:`FillSets` makes it) and its item-item
        statistics."""
        row, value = padded_sets(np.zeros(len(items), "int64"), np.asarray(items), self.set_weight(ratings), 1,
                                 self.cfg.max_items, self.seed)
        rows = {self.sets.items.path: row[0], self.sets.values.path: value[0]}
        if self.item_item is not None:
            rows[self.item_item.stats.path] = self.item_item.stats_of(row, value)[0]
        return rows

    def implicit_part(self, sets: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """``|N(u)|^-1/2 sum w_uj y_j`` for users' sets (users, width) and their weights: (users, dim)."""
        count = np.maximum((weights > 0).sum(axis=1, keepdims=True), 1)
        factors = np.asarray(self.implicit_factors.embeddings)
        return np.einsum("uw,uwd->ud", weights, factors[sets]) / np.sqrt(count)

    def fold_in_design(self, items, rows):
        """theta = [p_u, b_u]; the rating head is ``mean + b_u + b_i + <p_u + implicit part, q_i>``."""
        Q = np.asarray(self.item_embedding.embeddings)[items]
        implicit = self.implicit_part(rows[self.sets.items.path], rows[self.sets.values.path])
        offset = (self.global_mean + np.asarray(self.item_bias.embeddings)[items, 0]
                  + np.einsum("urd,ud->ur", Q, implicit))
        return np.concatenate([Q, np.ones((*items.shape, 1), Q.dtype)], axis=-1), offset.astype("float64")

    # --- saved weights -----------------------------------------------------------------------------------------
    def item_index_variables(self) -> list:
        return [self.sets.items]

    def weights_saved_by(self, version: int) -> dict | None:
        """Format 3 and before kept the heads' weights in the model itself (the heads off as 1 x 1 placeholders):
        where each dataset of such a weights file goes."""
        if version >= 4:
            return None
        own = [t for t in (self.item_feature_table, self.user_feature_table) if t is not None]
        own += [self.sets.items, self.sets.values]
        head = self.item_item
        if head is None:
            own += [None, None]  # its placeholder, and statistics that no score read
        else:
            own += [head.weights_table, *([head.inv_d] if head.low_rank else []), head.stats]
        s = self.set_head
        own += [None] * 5 if s is None else [s.w1, s.b1, s.w2, s.b2, s.fitted]
        # the layers Keras found through the model's ``layers`` list are named by class and count there: the
        # first two Embedding layers were the pick factors and biases, the two row tables the user rows and biases
        return {**{f"vars/{k}": variable for k, variable in enumerate(own)},
                "implicit_factors/vars/0": self.implicit_factors.embeddings,
                "item_bias/vars/0": self.item_bias.embeddings,
                "item_embedding/vars/0": self.item_embedding.embeddings,
                "layers/embedding_1/vars/0": self.pick.factors, "layers/embedding_2/vars/0": self.pick.bias,
                "layers/row_table/vars/0": self.user_embedding.embeddings,
                "layers/row_table_2/vars/0": self.user_bias.embeddings}

    @property
    def liked_rating(self) -> float:
        return self.scale.level(self.cfg.liked)  # by default the scale's liked_threshold, as in evaluation

    # --- the network ------------------------------------------------------------------------------------------
    def _chosen(self, users, items=None, training=False) -> Chosen:
        """The users' weighted sets; while training, the pair's own item is left out and the rest are dropped at
        random. Products read the rows of the user's items above ``softmax_max_items``, else a dense matrix."""
        leave_out = items if training and items is not None else None
        return self.sets.chosen(users, leave_out, self.cfg.set_dropout if leave_out is not None else 0.0,
                                None if self.sampled_training else self.n_items)

    def representation(self, users, items=None, training=False, chosen=None):
        """``p_u + |N(u)|^-1/2 sum w_uj y_j`` (see :meth:`_chosen` for what training leaves out)."""
        chosen = chosen if chosen is not None else self._chosen(users, items, training)
        implicit = chosen.times(self.implicit_factors.embeddings)
        p = self.user_embedding(users)
        if self.cfg.l2:
            self.add_loss(self.cfg.l2 * ops.mean(ops.sum(p * p, axis=-1)))
        return p + implicit / ops.sqrt(ops.maximum(chosen.count, 1.0))

    def _key(self, users, logits, picked, rating, item_item, set_term=None):
        """The ranking key of some items (batch, k): their pick logits standardised over the user's whole row of
        ``logits``, blended with their standardised item-item scores and set-head logits (``set_term``, see
        :meth:`~ratecast.models.set_head.SetHead.term`), plus the rating term."""
        z = standardise(picked, ops.mean(logits, axis=-1, keepdims=True), ops.std(logits, axis=-1, keepdims=True))
        a = self.cfg.item_item_weight
        c = 0.0
        if set_term is not None:  # 0 until the set head is fitted
            c = self.cfg.set_model_weight * self.set_head.fitted
        z = (1 - a - c) * z
        if a:
            z = z + a * self.item_item.standardised(users, item_item)
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
                                                + ops.sum(ops.square(self.pick.factors))))
        rating = self.global_mean + bu + bi + ops.sum(rep * q, axis=-1)
        logits = self.pick.logits(rep)
        at = ops.expand_dims(ops.maximum(items - 1, 0), 1)
        picked = ops.take_along_axis(logits, at, 1)  # (batch, 1), as every input of the key below
        logp = picked[:, 0] - ops.logsumexp(logits, axis=-1)
        item_item = None
        if self.item_item is not None:  # the pair's item-item score from the user's set
            item_item = self.item_item.scores(chosen, ops.expand_dims(items, 1))
        set_term = self.set_head.term(chosen, at) if self.set_head is not None and not training else None
        key = self._key(users, logits, picked, rating[:, None], item_item, set_term)[:, 0]
        return ops.stack([rating, logp, key], axis=-1)

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
        logits = self.pick.logits(rep)
        logp = logits - ops.logsumexp(logits, axis=-1, keepdims=True)
        item_item = self.item_item.scores(chosen) if self.item_item is not None else None
        set_term = self.set_head.term(chosen) if self.set_head is not None else None
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

"""Adding a model is one module (a config and a network registered under a name) plus one line that imports it:
a tiny model written here, as a module of its own, trains, predicts, lists, evaluates, saves and loads through the
estimator with nothing else changed."""

import importlib.util
import textwrap

import numpy as np
import pandas as pd
import pytest

import ratecast as rc
from ratecast.lookup import SavedLookup
from ratecast.models import MODELS
from synthetic import make_dataset

MODULE = '''
"""Item means: rating = global mean + an item bias (no user term)."""
from typing import ClassVar

from ratecast.models.base import RatingModel, register
from ratecast.models.capabilities import Capabilities
from ratecast.models.config import Dim, Loss, ModelConfig, config


@config
class ItemMeanConfig(ModelConfig):
    name: ClassVar[str] = "item_mean"
    training: ClassVar[dict] = {"optimizer": "sgd", "learning_rate": 0.05, "batch_size": 256, "epochs": 5}
    embedding_dim: Dim = 1
    loss: Loss = "mse"


@register("item_mean", ItemMeanConfig)
class ItemMeanModel(RatingModel):
    capabilities: ClassVar[Capabilities] = Capabilities(has_vectors=False)  # one number per item: nothing to compare

    def score(self, inputs, training=None):
        _, v = self.embed(inputs)
        return self.global_mean + v[:, 0]

    def score_items(self, users, user_features=None):
        return self.global_mean + self.item_embedding.embeddings[None, 1:, 0] + 0.0 * users[:, None]
'''


def imported(name: str, source: str, folder):
    """The model module ``name`` written from ``source`` into ``folder`` and imported: the one "registry line"."""
    path = folder / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def item_mean(tmp_path):
    try:
        yield imported("item_mean", MODULE, tmp_path)
    finally:
        MODELS.pop("item_mean", None)


def test_a_new_model_is_one_module_plus_its_import(item_mean, tmp_path):
    train, test = rc.split.holdout(make_dataset(n_users=40, n_items=30), 0.2, random_state=0)
    rec = rc.Recommender("item_mean", random_state=0, verbose=0).fit(train)
    pred = rec.predict(test.ratings["user_id"].to_numpy(), test.ratings["item_id"].to_numpy())
    assert np.isfinite(pred).all()
    report = rec.evaluate(test)
    assert np.isfinite(report["rmse"]) and "recall@10" in report
    top = rec.recommend(int(train.ratings["user_id"].iloc[0]), k=5)
    assert len(top) == 5 and top["score"].is_monotonic_decreasing
    rec.save(tmp_path / "saved")
    again = rc.Recommender.load(tmp_path / "saved")
    np.testing.assert_allclose(again.predict(test.ratings["user_id"].to_numpy(), test.ratings["item_id"].to_numpy()),
                               pred, atol=1e-6)


def test_what_a_new_model_can_do_is_read_from_its_capabilities(item_mean, tmp_path):
    """The tiny model has an item table, yet its record says it has no vectors worth comparing: the estimator and the
    saved lookups read that record, and refuse similar items and maps as they do for the baseline."""
    assert not item_mean.ItemMeanModel.capabilities.has_vectors and "has_vectors" not in vars(item_mean.ItemMeanModel)
    train = make_dataset(n_users=30, n_items=20)
    rec = rc.Recommender("item_mean", random_state=0, verbose=0).fit(train)
    item, user = train.ratings["item_id"].iloc[0], train.ratings["user_id"].iloc[0]
    refusal = r"^model 'item_mean' learns no (item|user) vectors \(only biases\), so it has no similar items or"
    for ask in (lambda: rec.similar_items(item), lambda: rec.similar_users(user), rec.item_embeddings):
        with pytest.raises(ValueError, match=refusal):
            ask()
    rec.save(tmp_path / "saved")
    assert SavedLookup.open(tmp_path / "saved").similar(item) is None  # no vectors kept: the Recommender says why


COMPOSED = '''
"""Dot product plus an item-item term, built from implicit's parts: the users' sets (UserSets), filled by a part
fitted apart from the engine, and the item-item head (ItemItemHead) fitted on them."""
from typing import ClassVar

import numpy as np
from keras import ops

from ratecast.models.base import RatingModel, register
from ratecast.models.config import Dim, Loss, ModelConfig, config
from ratecast.models.fitting import Fitter
from ratecast.models.item_item import ItemItemHead
from ratecast.models.user_sets import UserSets, padded_sets


@config
class SetsDotConfig(ModelConfig):
    name: ClassVar[str] = "sets_dot"
    training: ClassVar[dict] = {"optimizer": "adam", "learning_rate": 0.01, "batch_size": 256, "epochs": 5}
    embedding_dim: Dim = 4
    loss: Loss = "mse"


class FillSets(Fitter):
    def before(self, model, fit):
        table, value = padded_sets(fit.users, fit.items, np.ones(len(fit.items), "float32"), model.n_users, 16,
                                   model.seed)
        model.sets.fill(table, value)
        model.item_item.fit(table, value)


@register("sets_dot", SetsDotConfig)
class SetsDotModel(RatingModel):
    fitters = (FillSets(),)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.sets = UserSets(self.n_users, 16, self.seed_for(3), name="user_sets")
        self.item_item = ItemItemHead(self.n_users, self.n_items, lam=1.0, name="item_item_head")

    def score(self, inputs, training=None):
        u, v = self.embed(inputs)
        chosen = self.sets.chosen(inputs["user"], n_items=self.n_items)
        near = self.item_item.scores(chosen, ops.expand_dims(ops.cast(inputs["item"], "int32"), 1))[:, 0]
        return self.global_mean + ops.sum(u * v, axis=-1) + near
'''


def test_a_new_model_composes_the_parts_of_another(tmp_path):
    imported("sets_dot", COMPOSED, tmp_path)
    try:
        train, test = rc.split.holdout(make_dataset(n_users=40, n_items=30), 0.2, random_state=0)
        rec = rc.Recommender("sets_dot", random_state=0, verbose=0).fit(train)
        m = rec.model_
        assert (np.asarray(m.sets.items) > 0).sum() > 0 and np.abs(np.asarray(m.item_item.weights_table)).sum() > 0
        users, items = test.ratings["user_id"].to_numpy(), test.ratings["item_id"].to_numpy()
        pred = rec.predict(users, items)
        assert np.isfinite(pred).all()
        rec.save(tmp_path / "saved")
        again = rc.Recommender.load(tmp_path / "saved")
        np.testing.assert_allclose(again.predict(users, items), pred, atol=1e-6)
        # a newcomer's ratings: the parts' per-user rows grow with the users (then empty: the model fills none)
        items_rated = train.ratings["item_id"].unique()[:3].tolist()
        grown = again.update(pd.DataFrame({"user_id": ["newcomer"] * 3, "item_id": items_rated,
                                           "rating": [5.0, 4.0, 1.0]}))
        assert grown.model_.n_users >= len(grown.user_index_) and np.isfinite(grown.predict(["newcomer"] * 3, items_rated)).all()
        grown.save(tmp_path / "grown")
        np.testing.assert_allclose(rc.Recommender.load(tmp_path / "grown").predict(users, items),
                                   grown.predict(users, items), atol=1e-6)
        head = again.model_.item_item.weights_table
        head.assign(np.zeros(tuple(head.shape), "float32"))
        assert not np.allclose(again.predict(users, items), pred, atol=1e-3)  # the part is read
    finally:
        MODELS.pop("sets_dot", None)


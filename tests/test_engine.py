"""The compiled engine: sparse updates equal the dense rule on the rows a batch touches and leave the other rows
alone, repeated ids are summed, the gradients are the model's own, same seed gives the same fit, progress degrades
to plain lines, and the Keras engine stays available."""

import io

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ratecast as rc
from ratecast.engine import compiled, training
from ratecast.optim import Update
from ratecast.engine.progress import EpochProgress
from ratecast.models import MODELS, split_params
from synthetic import make_dataset

SCALE = {"minimum": 1, "maximum": 5, "step": 1}


@pytest.fixture(scope="module")
def train():
    return rc.split.holdout(make_dataset(), test_size=0.2, random_state=0).train


def _rows(n=12, d=3, seed=0):
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.normal(size=(n, d)).astype("float32"))


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_sparse_rule_equals_the_dense_rule_with_repeats_summed(name):
    rule = Update(name)
    table = _rows()
    ids = jnp.asarray([3, 5, 3, 3, 9], "int32")
    grads = jnp.asarray(np.random.default_rng(1).normal(size=(5, 3)).astype("float32"))
    dense_grad = jnp.zeros_like(table).at[ids].add(grads)
    step, lr = jnp.int32(1), 0.05  # sgd: 3 repeats at 0.05 stay within ROW_RATE_LIMIT, so they are summed
    row_map = jnp.zeros((table.shape[0],), "int32") if rule.needs_row_map else None
    new, slots, _ = rule.apply_rows(table, rule.table_slots(table), ids, grads, step, lr, row_map)
    want, want_slots = rule.apply(table, dense_grad, rule.slots(table), step, lr)
    touched = np.array([3, 5, 9])
    np.testing.assert_allclose(np.asarray(new)[touched], np.asarray(want)[touched], rtol=1e-6, atol=1e-7)
    others = np.setdiff1d(np.arange(table.shape[0]), touched)
    np.testing.assert_array_equal(np.asarray(new)[others], np.asarray(table)[others])  # untouched rows unchanged
    if name == "adam":  # both moments of a row side by side: [m | v]
        slots = (slots[0][:, :table.shape[1]], slots[0][:, table.shape[1]:])
    for s, w in zip(slots, want_slots):
        np.testing.assert_allclose(np.asarray(s)[touched], np.asarray(w)[touched], rtol=1e-6, atol=1e-7)
        assert not np.asarray(s)[others].any()  # untouched rows keep their (zero) moments: lazy


@pytest.mark.parametrize("width", [64, 65, 22, 7, 1])
def test_row_reads_in_column_runs_equal_plain_indexing(width):
    from ratecast.optim import gather_rows
    from ratecast.models.layers import row_chunk, take_rows

    table = jnp.asarray(np.random.default_rng(width).standard_normal((50, width)).astype("float32"))
    ids = jnp.asarray([3, 0, 49, 3, 17], "int32")
    assert width % row_chunk(width) == 0 and (row_chunk(width) > 1 or width in (7, 1))
    np.testing.assert_array_equal(take_rows(table, ids), table[ids])
    np.testing.assert_array_equal(take_rows(table, ids.reshape(5, 1)), table[ids.reshape(5, 1)])
    np.testing.assert_array_equal(gather_rows(table, ids), table[ids])


def test_rowwise_adagrad_sums_every_occurrence_into_one_accumulator():
    rule = Update("adagrad")
    table = _rows()
    ids = jnp.asarray([4, 4, 7], "int32")
    grads = jnp.ones((3, 3), "float32")
    new, (acc,), _ = rule.apply_rows(table, rule.table_slots(table), ids, grads, jnp.int32(1), 0.5)
    acc = np.asarray(acc)
    assert acc[4] == pytest.approx(0.1 + 2.0) and acc[7] == pytest.approx(1.1) and acc[0] == pytest.approx(0.1)
    np.testing.assert_allclose(np.asarray(new)[4], np.asarray(table)[4] - 2 * 0.5 / np.sqrt(2.1), rtol=1e-5)
    np.testing.assert_array_equal(np.asarray(new)[[0, 1, 2]], np.asarray(table)[[0, 1, 2]])


@pytest.mark.parametrize("model, options", [("biased_dot", {}), ("hybrid", {}), ("hybrid", {"cold_start_rate": 0.5})])
def test_one_step_uses_the_models_own_gradient(model, options, train):
    """One SGD step of the engine equals a dense SGD step on the full Keras model: the row lookups it substitutes
    (including the unknown row the hybrid swaps in for dropped ids) give the model's exact gradient."""
    rec = rc.Recommender(model, random_state=0, epochs=1, verbose=0, embedding_dim=4, optimizer="sgd",
                         learning_rate=0.05, early_stopping=None, **options)
    rec.fit(train)
    m = rec.state_.model
    mcfg, tcfg = split_params(model, {"optimizer": "sgd", "learning_rate": 0.05, "batch_size": 16, **options})
    trainer = compiled.CompiledTrainer(m, tcfg, 16)
    state = trainer.initial_state()
    r = train.ratings.head(16)
    x = {"user": jnp.asarray(rec.state_.user_index.index(r["user_id"]), "int32"),
         "item": jnp.asarray(rec.state_.item_index.index(r["item_id"]), "int32")}
    x["user"] = x["user"].at[1].set(x["user"][0])  # a repeated user
    y = jnp.asarray(m.output_rule.targets(r["rating"].to_numpy()))
    tv = [jnp.array(v.value) for v in m.trainable_variables]
    ntv = [jnp.array(v.value) for v in m.non_trainable_variables]

    def dense_loss(tv):
        out, _, losses = m.stateless_call(tv, ntv, x, training=True, return_losses=True)
        return jnp.mean(trainer.loss_fn(y, out)) + sum(losses, jnp.zeros(()))

    grads = jax.grad(dense_loss)(tv)
    new_state, _ = jax.jit(trainer._step)(state, x, y, jnp.float32(0.05))
    got = trainer.trainable_values(new_state)
    lay = trainer.layout
    for k in lay.dense_pos:
        np.testing.assert_allclose(np.asarray(got[k]), np.asarray(tv[k] - 0.05 * grads[k]), rtol=1e-4, atol=1e-6)
    for k in lay.table_pos:  # tables step per example: the mean-loss gradient times the batch size
        np.testing.assert_allclose(np.asarray(got[k]), np.asarray(tv[k] - 0.05 * 16 * grads[k]), rtol=1e-4,
                                   atol=1e-6)


def test_same_seed_same_fit_and_another_seed_differs(train):
    params = dict(epochs=3, embedding_dim=4, batch_size=32, verbose=0, early_stopping=None)
    a = rc.Recommender("biased_dot", random_state=3, **params).fit(train)
    b = rc.Recommender("biased_dot", random_state=3, **params).fit(train)
    c = rc.Recommender("biased_dot", random_state=4, **params).fit(train)
    assert a.history_["loss"] == b.history_["loss"]
    r = train.ratings.head(40)
    np.testing.assert_array_equal(a.predict(r["user_id"], r["item_id"]), b.predict(r["user_id"], r["item_id"]))
    assert a.history_["loss"] != c.history_["loss"]


def test_a_repeated_fit_runs_the_program_already_traced_and_trains_the_same(train, monkeypatch):
    traces = []
    original = compiled.CompiledTrainer._run_batches
    monkeypatch.setattr(compiled.CompiledTrainer, "_run_batches",
                        lambda self, *args: traces.append(1) or original(self, *args))  # runs only when tracing
    monkeypatch.setattr(compiled, "_PROGRAMS", compiled.OrderedDict())
    params = dict(epochs=2, embedding_dim=4, batch_size=32, verbose=0, early_stopping=None)
    r = train.ratings.head(40)
    first = rc.Recommender("biased_dot", random_state=3, **params).fit(train)
    assert len(traces) == 1
    again = rc.Recommender("biased_dot", random_state=3, **params).fit(train)
    assert len(traces) == 1  # the same model on the same data: nothing traced again
    np.testing.assert_array_equal(again.predict(r["user_id"], r["item_id"]), first.predict(r["user_id"], r["item_id"]))
    monkeypatch.setattr(compiled, "_PROGRAMS", compiled.OrderedDict())  # nothing kept: traced anew
    fresh = rc.Recommender("biased_dot", random_state=3, **params).fit(train)
    assert len(traces) == 2
    np.testing.assert_array_equal(fresh.predict(r["user_id"], r["item_id"]), first.predict(r["user_id"], r["item_id"]))
    other = rc.Dataset(train.ratings.assign(rating=np.minimum(train.ratings["rating"] + 1, 5)), name="shifted")
    rc.Recommender("biased_dot", random_state=3, **params).fit(other)  # another training mean: traced anew
    assert len(traces) == 3


def test_every_rating_is_visited_once_per_epoch():
    mcfg, tcfg = split_params("dot", {"batch_size": 7})
    m = MODELS["dot"](mcfg, 3, 3, rating_scale=SCALE, seed=0)
    m.build_now()
    for n in (7, 20, 50):
        trainer = compiled.CompiledTrainer(m, tcfg, n)
        for epoch in range(3):
            order, offsets = trainer.epoch_plan(0, epoch)
            nb, b = trainer.n_batches, trainer.batch
            pos = np.arange(b)[None, :] * nb + (order[:, None] + offsets[None, :]) % nb
            idx = np.where(pos >= n, pos - n, pos).ravel()
            assert set(idx) == set(range(n)) and len(idx) == nb * b < n + b


def test_batches_mix_anew_every_epoch():
    mcfg, tcfg = split_params("dot", {"batch_size": 10})
    m = MODELS["dot"](mcfg, 3, 3, rating_scale=SCALE, seed=0)
    m.build_now()
    trainer = compiled.CompiledTrainer(m, tcfg, 1000)

    def batches(epoch):
        order, offsets = trainer.epoch_plan(0, epoch)
        nb = trainer.n_batches
        pos = np.arange(10)[None, :] * nb + (order[:, None] + offsets[None, :]) % nb
        return {frozenset(row) for row in pos}

    assert len(batches(0) & batches(1)) < 5  # almost no batch repeats


def test_progress_lines_when_not_a_terminal():
    out = io.StringIO()
    bar = EpochProgress(2, enabled=True, stream=out)
    assert bar.slices(100) == [(0, 100)]  # one compiled call per epoch when no bar moves
    for e in range(2):
        bar.start_epoch(e, 100)
        bar.advance(100)
        bar.end_epoch({"loss": 1.0 / (e + 1)}, 0.5)
    bar.close()
    lines = out.getvalue().splitlines()
    assert lines == ["epoch 1/2: loss 1.0000 (0.5 s)", "epoch 2/2: loss 0.5000 (0.5 s)"]
    assert "\x1b" not in out.getvalue()


def test_progress_bar_slices_an_epoch_on_a_terminal():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    out = Tty()
    bar = EpochProgress(1, enabled=True, stream=out)
    parts = bar.slices(100)
    bar.close()
    assert len(parts) == EpochProgress.SLICES and parts[0][0] == 0 and parts[-1][1] == 100
    assert all(a[1] == b[0] for a, b in zip(parts, parts[1:]))


def test_engine_choice_and_the_keras_engine_still_trains(train):
    _, tcfg = split_params("deep", {})
    assert training.engine_for(tcfg) == "jax"
    _, tcfg = split_params("deep", {"optimizer": "rmsprop"})
    assert training.engine_for(tcfg) == "keras"
    with pytest.raises(ValueError, match=r"optimizer must be one of \['adam', 'adagrad', 'sgd'\] with engine 'jax', "
                                         r"got 'rmsprop'"):
        rc.Recommender("deep", engine="jax", optimizer="rmsprop")
    rec = rc.Recommender("dot", engine="keras", random_state=0, epochs=2, embedding_dim=4, verbose=0).fit(train)
    assert len(rec.history_["loss"]) == 2 and np.isfinite(rec.history_["val_loss"]).all()


def test_presets():
    lab = rc.Recommender.from_preset("lab", model="biased_dot", random_state=0)
    _, tcfg = split_params(lab.model, lab.params)
    assert (tcfg.engine, tcfg.batch_size, tcfg.learning_rate, tcfg.optimizer, tcfg.epochs) == \
        ("keras", 64, 1e-3, "adam", 10)
    assert lab.params["l2"] == 1e-4  # the model's lab value, not today's default
    fast = rc.Recommender.from_preset("fast", random_state=0, epochs=3)
    _, tcfg = split_params(fast.model, fast.params)
    assert fast.model == "biased_dot" and tcfg.epochs == 3 and tcfg.optimizer == "sgd"
    assert rc.Recommender.from_preset("topn", random_state=0).model == "implicit"
    with pytest.raises(ValueError, match=r"preset must be one of \['accurate', 'fast', 'lab', 'topn'\], got 'quick'"):
        rc.Recommender.from_preset("quick")
    with pytest.raises(ValueError, match=r"preset 'fast' is for model 'biased_dot', got model='deep'"):
        rc.Recommender.from_preset("fast", model="deep")


def test_model_training_defaults_yield_to_the_users_options():
    _, tcfg = split_params("biased_dot", {})
    assert (tcfg.optimizer, tcfg.batch_size) == ("sgd", 1024)
    _, tcfg = split_params("biased_dot", {"batch_size": 64, "optimizer": "adam"})
    assert (tcfg.optimizer, tcfg.batch_size) == ("adam", 64)


def test_tables_may_take_their_own_rule_and_learning_rate(train):
    """table_optimizer gives the tables row-wise Adagrad (one accumulator per row) while the dense weights keep
    Adam, at table_learning_rate; giving optimizer alone drops a model's default table rule."""
    mcfg, tcfg = split_params("deep", {"embedding_dim": 4, "batch_size": 16})
    assert (tcfg.optimizer, tcfg.table_optimizer, tcfg.table_learning_rate) == ("adam", "adagrad", 0.05)
    _, plain = split_params("deep", {"optimizer": "sgd"})
    assert (plain.table_optimizer, plain.table_learning_rate) == ("same", None)
    with pytest.raises(ValueError, match="table_learning_rate must be a finite number"):
        split_params("deep", {"table_learning_rate": 0.0})
    with pytest.raises(ValueError, match="table_optimizer must be one of"):
        split_params("deep", {"table_optimizer": "lion"})
    rec = rc.Recommender("deep", random_state=0, epochs=1, verbose=0, embedding_dim=4, early_stopping=None)
    rec.fit(train)
    m = rec.state_.model
    trainer = compiled.CompiledTrainer(m, tcfg, 64)
    state = trainer.initial_state()
    assert all(len(s) == 1 and s[0].ndim == 1 for s in state["table_slots"])  # one accumulator per row
    assert all(len(s) == 2 for s in state["dense_slots"])  # Adam's two moments
    ids = {"user": jnp.asarray([1, 2, 1, 3] * 4, "int32"), "item": jnp.asarray([1, 1, 2, 2] * 4, "int32")}
    y = jnp.ones((16,), "float32")
    before = [np.asarray(t) for t in state["tables"]]
    new, _ = trainer._step(state, ids, y, jnp.float32(tcfg.learning_rate))
    acc = np.asarray(new["table_slots"][0][0])
    assert acc[1] > 0.1 and acc[2] > 0.1 and acc[4] == pytest.approx(0.1)  # touched rows only
    moved = np.abs(np.asarray(new["tables"][0]) - before[0]).sum(1)
    assert moved[1] > 0 and moved[4] == 0


def test_pairs_with_whole_catalogue_rows_are_scored_and_validated_in_bounded_chunks(monkeypatch):
    """implicit's pair outputs are normalised over every item: a chunk of 65,536 validation pairs over 59,047
    items asked for 31 GB. Chunks are sized by the model's rows per pair, with the same figures."""
    from ratecast import ranking
    from ratecast.models import ImplicitModel, TrainingConfig

    scale = {"minimum": 1.0, "maximum": 5.0, "step": 1.0}
    m = ImplicitModel({"embedding_dim": 4, "item_item_weight": 0.0, "set_model_weight": 0.0}, 30, 41,
                      rating_scale=scale, seed=0).build_now()
    assert m.pair_row_floats >= m.n_items - 1
    rng = np.random.default_rng(0)
    x = {"user": rng.integers(1, 30, 1000).astype("int32"), "item": rng.integers(1, 41, 1000).astype("int32")}
    y = m.output_rule.targets(rng.integers(1, 6, 1000).astype(float))
    trainer = compiled.CompiledTrainer(m, TrainingConfig(batch_size=100, engine="jax"), 1000)
    state = trainer.initial_state()
    whole = trainer.evaluate(state, x, y)
    monkeypatch.setattr(ranking, "SCORE_BUDGET", 300 * m.pair_row_floats)  # chunks of 300 pairs: four of them
    assert ranking.pair_chunk(m) == 300
    chunked = trainer.evaluate(state, x, y)
    assert chunked == pytest.approx(whole, rel=1e-5)
    out, _ = ranking.Scorer(m).pairs(x["user"], x["item"])
    np.testing.assert_allclose(out, np.asarray(m(x, training=False)), rtol=1e-4, atol=1e-4)

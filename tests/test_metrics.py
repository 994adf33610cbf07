import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import ndcg_score

from ratecast import metrics as M


def test_error_metrics_by_hand():
    t, p = [1, 2, 3, 4], [2, 2, 5, 4]
    assert M.mae(t, p) == pytest.approx(0.75)
    assert M.mse(t, p) == pytest.approx(1.25)
    assert M.rmse(t, p) == pytest.approx(np.sqrt(1.25))
    with pytest.raises(ValueError, match="same length, got 2 and 3"):
        M.mae([1, 2], [1, 2, 3])


def test_bootstrap_interval_brackets_the_estimate_and_narrows():
    rng = np.random.default_rng(0)
    t = rng.integers(1, 6, 4000).astype(float)
    p = t + rng.normal(0, 1, t.size)
    lo, hi = M.bootstrap_ci(t, p, "mae", n_resamples=300)
    assert lo < M.mae(t, p) < hi
    lo_s, hi_s = M.bootstrap_ci(t[:400], p[:400], "mae", n_resamples=300)
    assert (hi - lo) < (hi_s - lo_s)
    assert M.bootstrap_ci(t, p, "rmse", n_resamples=50, random_state=1) == M.bootstrap_ci(
        t, p, "rmse", n_resamples=50, random_state=1)
    with pytest.raises(ValueError, match=r"confidence must be in \(0, 1\), got 1.5"):
        M.bootstrap_ci(t, p, confidence=1.5)


def test_ranking_metrics_by_hand():
    # user 1: ranked [a(5), b(2), c(4)] -> relevant a, c; user 2: [d(3)] -> no relevant item
    frame = pd.DataFrame({"user_id": [1, 1, 1, 2], "rating": [5, 2, 4, 3], "score": [4.5, 4.0, 3.0, 4.0]})
    out = M.ranking_metrics(frame, k=2)
    assert out["precision@2"] == pytest.approx((1 / 2 + 0 / 1) / 2)  # users without relevant items count here
    assert out["recall@2"] == pytest.approx(1 / 2)  # ... and not here
    ideal = 1 + 1 / np.log2(3)
    assert out["ndcg@2"] == pytest.approx(1 / ideal)


def test_ndcg_agrees_with_scikit_learn():
    rng = np.random.default_rng(1)
    rows = []
    for user in range(50):
        n = rng.integers(2, 15)
        rows.append(pd.DataFrame({"user_id": user, "rating": rng.integers(1, 6, n), "score": rng.normal(size=n)}))
    frame = pd.concat(rows, ignore_index=True)
    ours = M.ranking_metrics(frame, k=5)["ndcg@5"]
    theirs = []
    for _, g in frame.groupby("user_id"):
        rel = (g["rating"] >= 4).astype(float).to_numpy()
        if rel.sum() and len(g) > 1:
            theirs.append(ndcg_score(rel[None, :], g["score"].to_numpy()[None, :], k=5))
    assert ours == pytest.approx(np.mean(theirs))


def naive_percentile_bootstrap(t, p, n_resamples, seed, confidence=0.95):
    """The textbook percentile bootstrap, one resample at a time."""
    rng = np.random.default_rng(seed)
    stats = []
    for _ in range(n_resamples):
        idx = rng.integers(0, t.size, size=t.size)
        stats.append(np.abs(t[idx] - p[idx]).mean())
    alpha = (1 - confidence) / 2
    return np.quantile(stats, [alpha, 1 - alpha])


def test_bootstrap_matches_the_naive_one():
    rng = np.random.default_rng(3)
    t = rng.integers(1, 6, 2000).astype(float)
    p = t + rng.normal(0, 1, t.size)
    ours = M.bootstrap_ci(t, p, "mae", n_resamples=400, random_state=5)
    naive = naive_percentile_bootstrap(t, p, 400, seed=5)
    assert ours == pytest.approx(tuple(naive), abs=2e-3)
    cis = M.bootstrap_cis(t, p, ["mae", "rmse"], n_resamples=400, random_state=5)
    assert cis["mae"] == ours and cis["rmse"][0] < M.rmse(t, p) < cis["rmse"][1]


def test_bootstrap_memory_does_not_grow_with_resamples(monkeypatch):
    import tracemalloc

    rng = np.random.default_rng(0)
    n = 400_000
    t = rng.integers(1, 6, n).astype(float)
    p = t + rng.normal(0, 1, n)
    monkeypatch.setattr(M, "_CHUNK", 1 << 20)  # at most ~1M indices in memory at once (8 MB)
    tracemalloc.start()
    try:
        M.bootstrap_ci(t, p, "mae", n_resamples=30, random_state=0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # 100 resamples of n indices at once would be 320 MB; one chunk plus per-rating arrays is a few tens of MB
    assert peak < 60e6, peak
    monkeypatch.setattr(M, "_CHUNK", 1 << 22)
    assert M.bootstrap_ci(t, p, "mae", n_resamples=30, random_state=0) == M.bootstrap_ci(
        t, p, "mae", n_resamples=30, random_state=0)


@pytest.mark.parametrize("call,error,match", [
    (lambda: M.mae([], []), ValueError, r"y_true and y_pred are empty"),
    (lambda: M.mae([1.0, np.nan], [1.0, 2.0]), ValueError, r"y_true must hold finite numbers, got nan at position 1"),
    (lambda: M.rmse([1.0, 2.0], [np.inf, 2.0]), ValueError, r"y_pred must hold finite numbers, got inf"),
    (lambda: M.mae(None, None), TypeError, r"y_true must be a list or array of numbers, got None"),
    (lambda: M.mae(np.ones((2, 3)), np.ones((3, 2))), ValueError, r"y_true must be 1-D, got shape \(2, 3\)"),
    (lambda: M.bootstrap_ci([1, 2], [1, 2], metric="r2"), ValueError, r"metric must be one of .*got 'r2'"),
    (lambda: M.bootstrap_ci([1, 2], [1, 2], confidence="0.9"), ValueError, r"confidence must be in \(0, 1\)"),
    (lambda: M.bootstrap_ci([1, 2], [1, 2], random_state=-1), ValueError, r"random_state must be an integer in"),
    (lambda: M.ranking_metrics(pd.DataFrame({"user_id": [1], "rating": [5.0], "score": [np.nan]})), ValueError,
     r"frame\['score'\] must hold finite numbers"),
    (lambda: M.ranking_metrics(pd.DataFrame({"user_id": [1], "rating": [5.0]})), ValueError, r"missing \['score'\]"),
    (lambda: M.ranking_metrics([1, 2]), TypeError, r"frame must be a DataFrame"),
    (lambda: M.ranking_metrics(pd.DataFrame({"user_id": [1], "rating": [5.0], "score": [1.0]}), threshold="4"),
     ValueError, r"threshold must be a finite number, got '4'"),
])
def test_bad_metric_inputs_are_refused(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_bootstrap_takes_one_metric_name_as_a_string():
    assert set(M.bootstrap_cis([1, 2, 3], [1, 2, 4], metrics="mae", n_resamples=20)) == {"mae"}


def test_undefined_ranking_metrics_are_none_not_nan():
    frame = pd.DataFrame({"user_id": [1, 1], "rating": [1.0, 2.0], "score": [3.0, 2.0]})
    out = M.ranking_metrics(frame, k=5)
    assert out["recall@5"] is None and out["ndcg@5"] is None and out["precision@5"] == 0.0


def test_large_sets_get_the_normal_interval_which_the_bootstrap_agrees_with(monkeypatch):
    from ratecast import metrics as M

    rng = np.random.default_rng(0)
    y = rng.integers(1, 6, 50_000).astype(float)
    p = np.clip(y + rng.normal(0, 0.9, len(y)), 1, 5)
    boot = M.bootstrap_cis(y, p, n_resamples=400, random_state=0)
    monkeypatch.setattr(M, "NORMAL_ABOVE", 10_000)  # this set now counts as large
    normal = M.bootstrap_cis(y, p, n_resamples=400, random_state=0)
    for name in ("mae", "mse", "rmse"):
        width = boot[name][1] - boot[name][0]
        assert normal[name] != boot[name]  # the other rule ran
        assert abs(normal[name][0] - boot[name][0]) < 0.15 * width and abs(normal[name][1] - boot[name][1]) < 0.15 * width
        value = {"mae": M.mae, "mse": M.mse, "rmse": M.rmse}[name](y, p)
        assert normal[name][0] < value < normal[name][1]

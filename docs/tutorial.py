# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Explicit-feedback neural recommender systems, with ratecast
#
# This tutorial walks through the classic explicit-feedback lab on MovieLens-100k — data exploration, four Keras
# models, their errors and loss curves, the learned embeddings, similar movies, maps of the embedding space, a
# hybrid model with metadata, recommendations and a classifier — using ratecast for each step.
#
# Two things are done differently from the original lab, on purpose:
#
# * **No test data in features.** The lab counts popularity over *all* ratings, test ones included, then feeds it
#   to the hybrid model. ratecast computes popularity (and fits every metadata transform) on the training set only.
# * **Recommendations map to the right titles.** The lab's `recommend()` sorted positions and looked titles up by
#   position, and never scored the last movie. `Recommender.recommend` returns item ids, titles and scores together.
#
# Set `RATECAST_DATA` to a folder holding `ml-100k/` to use a local copy; otherwise the data is downloaded from
# GroupLens and checked against its published md5.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

import ratecast as rc

# the lab's settings; RATECAST_TUTORIAL_EPOCHS shortens every run (used to keep the automated check quick)
EPOCHS = int(os.environ.get("RATECAST_TUTORIAL_EPOCHS", 10))
CLASSIFIER_EPOCHS = int(os.environ.get("RATECAST_TUTORIAL_EPOCHS", 15))

# %% [markdown]
# ## 1. The data
#
# Each rating is a (user, item, rating, timestamp) row; items come with a title, a release date and genre flags,
# users with age, gender, occupation and zip code.

# %%
ds = rc.datasets.load_movielens("ml-100k")
ds.ratings.head()

# %%
ds.items[["title", "release_date", "release_year"] + ds.genres[:4]].head()

# %%
ds.summary()

# %% [markdown]
# Release years (one movie has no release date: it stays missing rather than becoming a fake 1920), the rating
# distribution and popularity, i.e. how many ratings each movie received.

# %%
fig, axes = plt.subplots(1, 3, figsize=(15, 4))
ds.items["release_year"].dropna().astype(int).plot.hist(bins=50, ax=axes[0], title="release year")
rc.datasets.rating_distribution(ds.ratings).plot.bar(ax=axes[1], title="ratings")
popularity = rc.datasets.popularity(ds.ratings, ds.items.index)
popularity.sort_values(ascending=False).reset_index(drop=True).plot(ax=axes[2], logy=True, title="popularity")
plt.show()

# %%
top = popularity.nlargest(10).to_frame().join(ds.items["title"])
top

# %% [markdown]
# ## 2. A train/test split
#
# `holdout` reproduces the lab's `train_test_split(all_ratings, test_size=0.2, random_state=0)` row for row (the lab
# split its merged table, ordered by item id). The split reports movies that appear only in the test set.

# %%
train, test = split = rc.split.holdout(ds, test_size=0.2, random_state=0)
split.report()

# %% [markdown]
# ## 3. Matrix factorisation: a dot product of embeddings
#
# Users and items each get a 64-dimensional embedding; the predicted rating is their dot product. Training uses
# the MAE loss, batches of 64 and early stopping on a 10% validation split of the training set.

# %%
dot = rc.Recommender("dot", embedding_dim=64, epochs=EPOCHS, batch_size=64, random_state=0, verbose=0)
dot.fit(train)
dot.summary()["trainable_params"]

# %% [markdown]
# Before training, a random model is far off; after training, errors are much smaller. The lab's question: why is
# the first training loss higher than the validation loss? (Dropout and averaging over an epoch while the model
# improves; validation is measured at the end of the epoch.)

# %%
print("untrained model (random initialisation) on train:", {k: round(v, 3) for k, v in
                                                              dot.initial_train_metrics_.items()})
metrics = dot.evaluate(test)
print(f"test MAE {metrics['mae']:.3f} (95% CI {metrics['mae_ci95'][0]:.3f}-{metrics['mae_ci95'][1]:.3f}), "
      f"RMSE {metrics['rmse']:.3f}")

# %%
def plot_history(history, title):
    plt.plot(history["loss"], label="train")
    plt.plot(history["val_loss"], label="validation")
    plt.legend()
    plt.title(title)
    plt.show()


plot_history(dot.history_, "dot: loss per epoch")

# %%
def plot_predictions(rec, data, title):
    r = data.ratings
    plt.figure(figsize=(4, 4))
    plt.scatter(r["rating"], rec.predict(r["user_id"], r["item_id"]), s=60, alpha=0.01)
    plt.xlabel("true rating")
    plt.ylabel("predicted rating")
    plt.title(title)
    plt.show()


plot_predictions(dot, test, "dot: test set")

# %% [markdown]
# ## 4. Embeddings and similar movies
#
# The learned vectors come back as DataFrames indexed by raw id. Cosine similarity between two movies, then the
# most similar movies to one (the query excluded).

# %%
item_vectors = dot.item_embeddings()
item_vectors.loc[181].head()

# %%
for a, b in [(50, 181), (181, 288), (181, 1), (181, 181)]:
    print(f"{ds.items.loc[a, 'title']} / {ds.items.loc[b, 'title']}: {dot.similarity(a, b):.3f}")

# %%
plt.hist(dot.similarities(181), bins=30)
plt.title("similarity of every movie to Return of the Jedi")
plt.show()

# %%
dot.similar_items(50, k=10)

# %% [markdown]
# Rarely rated movies have noisy embeddings; keeping neighbours with at least 20 ratings helps.

# %%
dot.similar_items(227, k=10, min_ratings=20)

# %% [markdown]
# ## 5. Maps of the embedding space (t-SNE and UMAP)

# %%
from ratecast import viz

tsne_map = viz.embedding_map(dot, "item", method="tsne", perplexity=30)
plt.figure(figsize=(8, 8))
plt.scatter(tsne_map["x"], tsne_map["y"], c=np.log1p(tsne_map["popularity"]), s=6)
plt.xticks(())
plt.yticks(())
plt.show()

# %% [markdown]
# The interactive version (hover for title, release year, popularity and genres) is one self-contained HTML file:

# %%
viz.map_figure(tsne_map, color="popularity", title="dot model: item embeddings (t-SNE)")

# %%
umap_map = viz.embedding_map(dot, "item", method="umap")
umap_map[["x", "y"]].describe()

# %% [markdown]
# ## 6. A deep model
#
# The lab's exercise has four errors: dropout 0.99 (almost everything dropped), `Dense(2, tanh)` output (two
# outputs squashed to [-1, 1] for 1-5 star ratings) and a binary cross-entropy loss for a regression target. The
# corrected model: concatenated embeddings, dropout 0.5, `Dense(64, relu)`, `Dense(1)`, MAE loss.

# %%
deep = rc.Recommender("deep", embedding_dim=64, hidden=(64,), dropout=0.5, epochs=EPOCHS, batch_size=64,
                      random_state=0, verbose=0).fit(train)
plot_history(deep.history_, "deep: loss per epoch")
print({k: round(v, 3) for k, v in deep.evaluate(test, ci=False).items() if k in ("mae", "rmse")})

# %% [markdown]
# ## 7. A hybrid model with metadata
#
# Item popularity and release year (quantile-scaled), genres, and user age, gender and occupation are added to the
# embeddings. Every transform is fitted on the training set: popularity counts training ratings only.

# %%
hybrid = rc.Recommender("hybrid", embedding_dim=64, epochs=EPOCHS, batch_size=64, random_state=0, verbose=0)
hybrid.fit(train)
print(hybrid.encoder_.item_feature_names()[:5], hybrid.encoder_.user_feature_names()[:4])
print({k: round(v, 3) for k, v in hybrid.evaluate(test, ci=False).items() if k in ("mae", "rmse")})

# %% [markdown]
# ## 8. Recommendations
#
# Every movie user 5 has not rated is scored; the best come back with their titles.

# %%
seen = train.ratings.loc[train.ratings["user_id"] == 5, "item_id"]
print(f"user 5 rated {len(seen)} movies in training, e.g.:")
print(ds.items.loc[seen].assign(pop=popularity.loc[seen].to_numpy()).nlargest(5, "pop")["title"].tolist())
hybrid.recommend(5, k=10)

# %% [markdown]
# A new user with no ratings but demographics, and a new movie with only metadata:

# %%
hybrid.recommend_new_user({"age": 25, "gender": "F", "occupation": "student"}, k=5)

# %%
hybrid.predict_new_item({"release_year": 1998, "Sci-Fi": 1, "Action": 1}, [1, 2, 3])

# %% [markdown]
# ## 9. Ratings as classes
#
# The ratings take five values, so the model can output a probability per value (softmax, sparse categorical
# cross-entropy). The prediction can be the most likely class, the expected rating, or the median of the predicted
# distribution — the median minimises the expected absolute error, so it is the default.

# %%
clf = rc.Recommender("classification", embedding_dim=16, epochs=CLASSIFIER_EPOCHS, batch_size=64, random_state=0,
                     verbose=0).fit(train)
probs = clf.predict_proba([5], [50])
print(dict(zip(clf.rating_scale_.values, probs[0].round(3))))
print({k: round(v, 3) for k, v in clf.evaluate(test, ci=False).items() if k in ("mae", "rmse")})

# %% [markdown]
# ## 10. All four, side by side

# %%
import pandas as pd

rows = []
for name, rec in [("dot", dot), ("deep", deep), ("hybrid", hybrid), ("classification", clf)]:
    m = rec.evaluate(test)
    rows.append({"model": name, "MAE": m["mae"], "MAE 95% CI": m["mae_ci95"], "RMSE": m["rmse"],
                 "recall@10": m["recall@10"], "NDCG@10": m["ndcg@10"], "epochs": len(rec.history_["loss"])})
pd.DataFrame(rows)

# %% [markdown]
# ## 11. Lists a user would pick from
#
# `recall@10` and `NDCG@10` above score recommendation lists the way a user meets them: every item the user did not
# rate in training is ranked, and a test rating of 4 or more counts as a hit. Models trained only on rating values
# rank below plain popularity there, because they have no idea which items a user would choose to watch. The
# `implicit` model learns that too (the items a user rated feed the user's vector, and a second head predicts which
# item the user picks among the whole catalogue); the `topn` preset is its recommended configuration.

# %%
lists = {"popularity": rc.Recommender("popularity", random_state=0, verbose=0, epochs=EPOCHS).fit(train),
         "topn preset": rc.Recommender.from_preset("topn", random_state=0, verbose=0, epochs=EPOCHS).fit(train)}
pd.DataFrame([{"model": name, **{k: round(v, 3) for k, v in rec.top_n_metrics(test).items()
                                 if k in ("recall@10", "ndcg@10", "coverage@10", "long_tail_share@10")}}
              for name, rec in lists.items()])

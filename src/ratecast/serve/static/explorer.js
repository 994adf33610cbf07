// The explorer page: plain JavaScript over the /v1 API (no build step, no CDN).
"use strict";

const $ = (id) => document.getElementById(id);

async function getJSON(url) {
  const response = await fetch(url);
  const body = await response.json().catch(() => ({ error: response.statusText }));
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

// A resource the server is still making (503 with Retry-After, e.g. the item map right after start-up): asked
// again after the delay it names, for at most `minutes`.
async function getJSONWhenMade(url, minutes = 15) {
  const deadline = Date.now() + minutes * 60000;
  for (;;) {
    const response = await fetch(url);
    if (response.status !== 503 || Date.now() > deadline) {
      const body = await response.json().catch(() => ({ error: response.statusText }));
      if (!response.ok) throw new Error(body.error || response.statusText);
      return body;
    }
    const wait = Number(response.headers.get("Retry-After")) || 5;
    await new Promise((resolve) => setTimeout(resolve, wait * 1000));
  }
}

function fill(list, items, text) {
  list.replaceChildren(...items.map((item) => {
    const li = document.createElement("li");
    li.dataset.itemId = item.item_id;
    const title = document.createElement("span");
    title.className = "title";
    title.textContent = item.title ?? String(item.item_id);
    const extra = document.createElement("span");
    extra.className = "score";
    extra.textContent = text(item);
    li.append(title, extra);
    return li;
  }));
}

function note(id, message, isError = false) {
  $(id).textContent = message;
  $(id).className = isError ? "error" : "muted";
}

async function showUser(event) {
  event.preventDefault();
  const user = $("user-id").value.trim();
  const k = Number($("user-k").value) || 10;
  if (!user) return;
  note("user-note", "…");
  try {
    const recs = await getJSON(`/v1/users/${encodeURIComponent(user)}/recommendations?k=${k}`);
    fill($("recommendations"), recs.items, (i) => `predicted ${i.score.toFixed(2)}`);
    if (recs.fallback) {
      note("user-note", `user ${user} is not known to the model: the most popular items instead`);
      $("history").replaceChildren();
      return;
    }
    note("user-note", "");
    const history = await getJSON(`/v1/users/${encodeURIComponent(user)}/history?k=${k}`);
    fill($("history"), history.items, (i) => (i.rating == null ? "" : `rated ${i.rating}`));
  } catch (error) {
    note("user-note", error.message, true);
  }
}

async function showSimilar(itemId, title) {
  $("similar-title").textContent = `Most similar to ${title ?? itemId}`;
  try {
    const similar = await getJSON(`/v1/items/${encodeURIComponent(itemId)}/similar?k=10`);
    fill($("similar"), similar.items, (i) => `similarity ${i.similarity.toFixed(3)}`);
  } catch (error) {
    $("similar").replaceChildren();
    $("similar-title").textContent = error.message;
  }
}

async function search(event) {
  event.preventDefault();
  const q = $("title-query").value.trim();
  if (!q) return;
  const found = await getJSON(`/v1/items/search?q=${encodeURIComponent(q)}&limit=10`);
  $("search-results").replaceChildren(...found.items.map((item) => {
    const li = document.createElement("li");
    const button = document.createElement("button");
    button.className = "link";
    button.type = "button";
    button.textContent = `${item.title ?? item.item_id} (${item.ratings} ratings)`;
    button.addEventListener("click", () => showSimilar(item.item_id, item.title));
    li.append(button);
    return li;
  }));
  if (found.items.length) showSimilar(found.items[0].item_id, found.items[0].title);
}

async function showMap() {
  $("map-load").disabled = true;
  $("map").textContent = "loading the map…";
  try {
    const figure = await getJSONWhenMade("/v1/map");
    $("map").textContent = "";
    await Plotly.newPlot("map", figure.data, figure.layout, { responsive: true, scrollZoom: true });
    $("map").on("plotly_click", (data) => {
      const point = data.points[0];
      const id = point.customdata ? point.customdata[0] : point.text;
      const title = point.customdata ? point.customdata[1] : undefined;
      showSimilar(id, title);
      $("similar-title").scrollIntoView({ behavior: "smooth" });
    });
  } catch (error) {
    $("map").textContent = error.message;
  }
}

async function start() {
  $("user-form").addEventListener("submit", showUser);
  $("search-form").addEventListener("submit", search);
  $("map-load").addEventListener("click", showMap);
  try {
    const model = await getJSON("/v1/model");
    $("model").textContent = `${model.model} on ${model.dataset}, version ${model.version}`;
  } catch (error) {
    $("model").textContent = error.message;
  }
}

start();

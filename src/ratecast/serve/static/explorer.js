// The explorer page: plain JavaScript over the /v1 API (no build step, no CDN).
"use strict";

const $ = (id) => document.getElementById(id);

// The JSON body of an answer, or an Error with the API's one-line message.
async function read(response) {
  const body = await response.json().catch(() => ({ error: response.statusText }));
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

async function getJSON(url) {
  return read(await fetch(url));
}

async function postJSON(url, body) {
  return read(await fetch(url, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  }));
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

// --- a visitor who is not in the data: rate a few titles, get a list with its reasons ---------------------------
// id: made at the first rating ("visitor-" and 16 random hex digits); ratings: item id -> {item_id, title, rating};
// queue: one rating at a time, so that each list follows every rating before it
const visitor = { id: null, ratings: new Map(), stars: [1, 2, 3, 4, 5], queue: Promise.resolve() };

function visitorPath() {
  if (visitor.id === null) {
    const bytes = new Uint8Array(8);
    crypto.getRandomValues(bytes);
    visitor.id = "visitor-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }
  return `/v1/users/${encodeURIComponent(visitor.id)}`;
}

// The values a star can give on the model's rating scale (at most 10 stars).
function starValues(scale) {
  if (!scale) return [1, 2, 3, 4, 5];
  const values = [];
  for (let v = scale.minimum; v <= scale.maximum + 1e-9; v += scale.step) values.push(Math.round(v * 1e6) / 1e6);
  if (values.length <= 10) return values;
  const every = Math.ceil(values.length / 10);
  return values.filter((_, i) => (values.length - 1 - i) % every === 0);
}

// A reason in words, as `ratecast recommend --explain` prints it.
const PRIOR = "prior (the mean user)";
function reasonText(reason) {
  const amount = `(${reason.contribution < 0 ? "-" : "+"}${Math.abs(reason.contribution).toFixed(2)})`;
  if (reason.item_id !== null) return `because you rated ${reason.title ?? `item ${reason.item_id}`} ${amount}`;
  if (reason.feature === PRIOR) return `from the average user's taste ${amount}`;
  return `because of your ${reason.feature} ${amount}`;
}

function stars(item) {
  const span = document.createElement("span");
  span.className = "stars";
  const given = visitor.ratings.get(String(item.item_id))?.rating;
  for (const value of visitor.stars) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = "\u2605";
    button.dataset.stars = value;
    button.title = `rate ${value}`;
    button.setAttribute("aria-label", `rate ${item.title ?? item.item_id} ${value}`);
    if (given !== undefined && value <= given) button.classList.add("on");
    button.addEventListener("click", () => {
      visitor.queue = visitor.queue.then(() => rate(item, value, span));
    });
    span.append(button);
  }
  return span;
}

async function findToRate(event) {
  event.preventDefault();
  const q = $("rate-query").value.trim();
  if (!q) return;
  try {
    const found = await getJSON(`/v1/items/search?q=${encodeURIComponent(q)}&limit=10`);
    $("rate-results").replaceChildren(...found.items.map((item) => {
      const li = document.createElement("li");
      li.dataset.itemId = item.item_id;
      const title = document.createElement("span");
      title.className = "title";
      title.textContent = item.title ?? String(item.item_id);
      li.append(title, stars(item));
      return li;
    }));
    note("visitor-note", found.items.length ? "" : `no title contains ${JSON.stringify(q)}`);
  } catch (error) {
    note("visitor-note", error.message, true);
  }
}

async function rate(item, value, starsShown) {
  note("visitor-note", "…");
  try {
    const user = visitorPath();
    await postJSON(`${user}/ratings`, { ratings: [{ item_id: item.item_id, rating: value }] });
    visitor.ratings.set(String(item.item_id), { item_id: item.item_id, title: item.title, rating: value });
    starsShown.replaceWith(stars(item));
    fill($("my-ratings"), [...visitor.ratings.values()], (i) => `rated ${i.rating}`);
    const recs = await getJSON(`${user}/recommendations?k=10&explain=true`);
    showVisitorRecommendations(recs.items);
    $("visitor-recs").dataset.ratings = visitor.ratings.size; // the ratings the list follows
    note("visitor-note", "");
  } catch (error) {
    note("visitor-note", error.message, true);
  }
}

function showVisitorRecommendations(items) {
  fill($("visitor-recs"), items, (i) => `predicted ${i.score.toFixed(2)}`);
  for (const [n, li] of [...$("visitor-recs").children].entries()) {
    const reasons = document.createElement("ul");
    reasons.className = "reasons";
    reasons.replaceChildren(...(items[n].reasons ?? []).map((reason) => {
      const why = document.createElement("li");
      why.textContent = reasonText(reason);
      return why;
    }));
    li.append(reasons);
  }
}

async function start() {
  $("rate-form").addEventListener("submit", findToRate);
  $("user-form").addEventListener("submit", showUser);
  $("search-form").addEventListener("submit", search);
  $("map-load").addEventListener("click", showMap);
  try {
    const model = await getJSON("/v1/model");
    $("model").textContent = `${model.model} on ${model.dataset}, version ${model.version}`;
    visitor.stars = starValues(model.rating_scale);
  } catch (error) {
    $("model").textContent = error.message;
  }
}

start();

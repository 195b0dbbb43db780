// Strata's console: a small client of the public REST API. Pages are drawn from the
// API's JSON with DOM calls (never HTML strings), so no object key or error text can
// inject markup. The API token, when the service needs one, lives in this tab's
// sessionStorage only.
"use strict";

const TOKEN_KEY = "strata-api-token";
const REFRESH_MS = 2000;
const SVG = "http://www.w3.org/2000/svg";

// ---- API ----

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = "Bearer " + token;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401) {
    askForToken();
    throw new ApiError(401, "this action needs the API token");
  }
  const text = await response.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch (_) {
    json = null;
  }
  if (!response.ok) {
    const message = json && json.error ? json.error.message : text || response.statusText;
    throw new ApiError(response.status, message);
  }
  return json;
}

const get = (path) => api("GET", path);
const post = (path, body) => api("POST", path, body);
const put = (path, body) => api("PUT", path, body);
const del = (path) => api("DELETE", path);

function askForToken() {
  const form = document.getElementById("token-form");
  if (!form.hidden) return;
  form.hidden = false;
  document.getElementById("token").focus();
}

function setUpToken() {
  const form = document.getElementById("token-form");
  const forget = document.getElementById("forget-token");
  forget.hidden = !sessionStorage.getItem(TOKEN_KEY);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const input = document.getElementById("token");
    sessionStorage.setItem(TOKEN_KEY, input.value.trim());
    input.value = "";
    form.hidden = true;
    forget.hidden = false;
    route();
  });
  forget.addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    forget.hidden = true;
    route();
  });
}

// ---- DOM helpers ----

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (value === true) node.setAttribute(name, "");
    else node.setAttribute(name, String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, String(value));
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function bytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KB", "MB", "GB", "TB", "PB"];
  let value = n;
  let unit = 0;
  while (Math.abs(value) >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return (unit === 0 ? value : value.toFixed(value < 10 ? 2 : 1)) + " " + units[unit];
}

function number(n, digits) {
  if (n === null || n === undefined) return "–";
  return Number(n).toLocaleString("en", { maximumFractionDigits: digits === undefined ? 0 : digits });
}

function share(x) {
  return x === null || x === undefined ? "–" : (x * 100).toFixed(1) + " %";
}

function when(rfc3339) {
  if (!rfc3339) return "–";
  return new Date(rfc3339).toLocaleString("en-GB", { hour12: false });
}

function bar(fraction, label) {
  const clamped = Math.max(0, Math.min(1, fraction || 0));
  return el(
    "div",
    {
      class: clamped >= 0.999 ? "bar full" : "bar",
      role: "progressbar",
      "aria-label": label,
      "aria-valuemin": 0,
      "aria-valuemax": 100,
      "aria-valuenow": Math.round(clamped * 100),
    },
    el("span", { "data-width": clamped }),
  );
}

// Widths are set as properties: the content security policy forbids inline style
// attributes, not the CSSOM.
function applyWidths(root) {
  for (const span of root.querySelectorAll("[data-width]")) {
    span.style.width = (Number(span.dataset.width) * 100).toFixed(1) + "%";
  }
}

function moveProgress(move) {
  const fraction = move.bytes_total > 0 ? move.bytes_copied / move.bytes_total : move.status === "completed" ? 1 : 0;
  return el(
    "div",
    {},
    bar(fraction, "move " + move.id + " progress"),
    el("span", { class: "muted" }, bytes(move.bytes_copied) + " of " + bytes(move.bytes_total)),
  );
}

// A list of facts from `[label, value, attributes of the value]` rows; a falsy row is
// left out.
function facts(rows) {
  return el(
    "dl",
    { class: "facts" },
    rows.filter(Boolean).flatMap(([label, value, attrs]) => [el("dt", {}, label), el("dd", attrs || {}, value)]),
  );
}

function table(headers, rows) {
  return el(
    "div",
    { class: "table-wrap" },
    el(
      "table",
      {},
      el("thead", {}, el("tr", {}, headers)),
      el("tbody", {}, rows.length ? rows : el("tr", {}, el("td", { colspan: 99, class: "muted" }, "None."))),
    ),
  );
}

function th(label, numeric) {
  return el("th", { scope: "col", class: numeric ? "num" : undefined }, label);
}

function showError(container, error) {
  container.append(el("p", { class: "error", role: "status" }, String(error.message || error)));
}

// ---- pages ----

let current = null;
let timer = null;
let previousEvents = null;

const pages = {
  overview: { title: "Overview", render: overview, live: true },
  moves: { title: "Moves", render: moves, live: true },
  objects: { title: "Objects", render: objects, live: false },
  object: { title: "Object", render: objectPage, live: true },
  models: { title: "Models", render: models, live: false },
  rules: { title: "Rules", render: rules, live: true },
};

function parseHash() {
  const hash = location.hash.replace(/^#\/?/, "");
  const [path, query] = hash.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const params = new URLSearchParams(query || "");
  if (parts[0] === "objects" && parts[1]) return { page: "object", id: parts[1], params };
  if (pages[parts[0]]) return { page: parts[0], params };
  return { page: "overview", params };
}

async function route() {
  const where = parseHash();
  const page = pages[where.page];
  for (const link of document.querySelectorAll("nav a")) {
    const here = link.dataset.page === where.page || (where.page === "object" && link.dataset.page === "objects");
    if (here) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.title = page.title + " · Strata console";
  clearInterval(timer);
  const token = {};
  current = token;
  const main = document.getElementById("page");
  const draw = async (first) => {
    const next = el("div", {});
    try {
      await page.render(next, where, first);
    } catch (error) {
      showError(next, error);
    }
    if (current !== token) return;
    applyWidths(next);
    if (first) {
      main.replaceChildren(...next.childNodes);
    } else {
      // Live parts only: forms keep their state and focus.
      for (const part of main.querySelectorAll("[data-live]")) {
        const fresh = next.querySelector('[data-live="' + part.dataset.live + '"]');
        if (fresh) part.replaceWith(fresh);
      }
    }
  };
  await draw(true);
  if (page.live) timer = setInterval(() => draw(false), REFRESH_MS);
}

async function overview(root) {
  const [tiers, status, models, inFlight] = await Promise.all([
    get("/api/v1/tiers"),
    get("/api/v1/status"),
    get("/api/v1/models"),
    Promise.all(["copying", "verifying", "pending"].map((s) => get("/api/v1/migrations?limit=20&status=" + s))),
  ]);
  const problems = status.problems.slice();
  if (status.moves.failed_last_hour > 0) problems.push(status.moves.failed_last_hour + " moves failed in the last hour");
  if (previousEvents && status.events.lag > previousEvents.lag && status.events.lag > 1000) {
    problems.push("consumer lag is growing: " + number(status.events.lag) + " events unread");
  }
  const banner = document.getElementById("problems");
  banner.replaceChildren(problems.length ? el("ul", {}, problems.map((p) => el("li", {}, p))) : "");
  banner.hidden = problems.length === 0;

  root.append(el("h1", {}, "Overview"));
  root.append(
    el(
      "section",
      { "aria-labelledby": "tiers-heading", "data-live": "tiers" },
      el("h2", { id: "tiers-heading" }, "Tiers"),
      el(
        "div",
        { class: "cards" },
        tiers.items.map((tier) => {
          const capacity = tier.capacity_bytes;
          return el(
            "article",
            { class: "card tier", "data-tier": tier.name },
            el("h3", {}, tier.name, tier.default ? el("span", { class: "muted" }, " (new objects land here)") : ""),
            el("div", { class: "muted" }, tier.backend),
            capacity ? bar(tier.bytes / capacity, tier.name + " bytes used of capacity") : "",
            facts([
              ["Used", bytes(tier.bytes) + (capacity ? " of " + bytes(capacity) : " (no capacity set)")],
              ["Objects", number(tier.objects)],
              ["Cost", tier.cost.storage_gb_month > 0 ? "$" + number(tier.cost.storage_per_month, 2) + " a month" : "no price set"],
              ["Served, hour", share(tier.served.share_last_hour) + " (" + number(tier.served.last_hour) + ")"],
              ["Served, day", share(tier.served.share_last_day) + " (" + number(tier.served.last_day) + ")"],
              tier.bar_accesses_per_mb !== null && tier.bar_accesses_per_mb !== undefined && [
                "Bar",
                number(tier.bar_accesses_per_mb, 3) + " accesses/MB",
              ],
            ]),
          );
        }),
      ),
    ),
  );

  const at = Date.parse(status.at);
  let rate = "–";
  if (previousEvents && at > previousEvents.at) {
    rate = number(((status.events.consumed - previousEvents.consumed) * 1000) / (at - previousEvents.at), 1);
  }
  previousEvents = { at, consumed: status.events.consumed, lag: status.events.lag };
  const active = models.items.find((m) => m.active);
  root.append(
    el(
      "section",
      { "aria-labelledby": "activity-heading", "data-live": "activity" },
      el("h2", { id: "activity-heading" }, "Activity"),
      el(
        "div",
        { class: "cards" },
        el(
          "article",
          { class: "card" },
          el("h3", {}, "Events"),
          facts([
            ["Per second", rate],
            ["Counted", number(status.events.consumed)],
            ["Consumer lag", number(status.events.lag)],
          ]),
        ),
        el(
          "article",
          { class: "card" },
          el("h3", {}, "Moves"),
          facts([
            ["Pending", number(status.moves.pending)],
            ["Copying", number(status.moves.copying)],
            ["Verifying", number(status.moves.verifying)],
            ["Failed (1 h)", number(status.moves.failed_last_hour)],
          ]),
        ),
        el(
          "article",
          { class: "card" },
          el("h3", {}, "Model"),
          active
            ? facts([
                ["Active", active.name + " v" + active.version + (active.kind ? " (" + active.kind + ")" : "")],
                ["Trained", when(active.trained_at)],
                active.evaluation && [
                  "MAE",
                  number(active.evaluation.model.mae, 3) + " (persistence " + number(active.evaluation.persistence.mae, 3) + ")",
                ],
                active.evaluation && ["Beats baselines", active.evaluation.beats_baselines ? "yes" : "no"],
              ])
            : el("p", { class: "muted" }, "No model is active: train one on the Models page."),
        ),
      ),
    ),
  );

  const running = inFlight.flatMap((page) => page.items);
  root.append(
    el(
      "section",
      { "aria-labelledby": "inflight-heading", "data-live": "inflight" },
      el("h2", { id: "inflight-heading" }, "Moves in flight"),
      table(
        [th("Object"), th("From → to"), th("Reason", false), th("Status"), th("Progress")],
        running.map((m) =>
          el(
            "tr",
            {},
            el("td", {}, el("a", { href: "#/objects/" + encodeURIComponent(m.object_id) }, m.object_id)),
            el("td", {}, m.from_tier + " → " + m.to_tier),
            el("td", {}, m.reason),
            el("td", {}, m.status),
            el("td", {}, moveProgress(m)),
          ),
        ),
      ),
    ),
  );
}

// A form whose controls become the page's query when submitted: `fields` maps query
// names to the ids of their controls, `keep` holds values carried over as they are.
function queryForm(page, fields, keep, ...controls) {
  const form = el(
    "form",
    {
      class: "inline",
      onsubmit: (event) => {
        event.preventDefault();
        const next = new URLSearchParams(keep);
        for (const [name, id] of Object.entries(fields)) {
          const value = form.querySelector("#" + id).value;
          if (value) next.set(name, value);
        }
        location.hash = "#/" + page + (next.toString() ? "?" + next : "");
      },
    },
    ...controls,
  );
  return form;
}

const STATUSES = ["pending", "copying", "verifying", "completed", "failed", "cancelled"];
const REASONS = ["manual", "rule", "reactive_access_spike", "proactive_prediction", "capacity_rebalance"];

function select(id, label, options, value, any) {
  return el(
    "label",
    { for: id },
    label,
    el(
      "select",
      { id, name: id },
      any ? el("option", { value: "" }, any) : "",
      options.map((o) => el("option", { value: o, selected: o === value }, o)),
    ),
  );
}

// A button that asks once more before it acts: `label` (attribute `data-NAME` = `id`),
// then `confirm` (`data-confirm-NAME`) and "Keep"; `act` runs on confirmation, an error
// is shown beside it.
function confirmButton(label, confirm, name, id, act) {
  const cell = el("span", {});
  const ask = el(
    "button",
    {
      type: "button",
      class: "secondary",
      ["data-" + name]: id,
      onclick: () => {
        ask.hidden = true;
        cell.append(
          el(
            "button",
            {
              type: "button",
              class: "danger",
              ["data-confirm-" + name]: id,
              onclick: async () => {
                try {
                  await act();
                } catch (error) {
                  showError(cell, error);
                }
              },
            },
            confirm,
          ),
          el(
            "button",
            {
              type: "button",
              class: "secondary",
              onclick: () => {
                cell.replaceChildren(ask);
                ask.hidden = false;
              },
            },
            "Keep",
          ),
        );
      },
    },
    label,
  );
  cell.append(ask);
  return cell;
}

function cancelButton(move, after) {
  return confirmButton("Cancel", "Really cancel", "cancel", move.id, async () => {
    await post("/api/v1/migrations/" + encodeURIComponent(move.id) + "/cancel");
    after();
  });
}

async function moves(root, where, first) {
  const status = where.params.get("status") || "";
  const reason = where.params.get("reason") || "";
  const query = new URLSearchParams({ limit: "100" });
  if (status) query.set("status", status);
  if (reason) query.set("reason", reason);
  const page = await get("/api/v1/migrations?" + query);
  if (first) {
    root.append(el("h1", {}, "Moves"));
    root.append(
      queryForm(
        "moves",
        { status: "move-status", reason: "move-reason" },
        {},
        select("move-status", "Status", STATUSES, status, "any status"),
        select("move-reason", "Reason", REASONS, reason, "any reason"),
        el("button", { type: "submit" }, "Filter"),
      ),
    );
  }
  const refresh = () => route();
  root.append(
    el(
      "section",
      { "data-live": "moves", "aria-label": "Moves, newest first" },
      table(
        [th("Object"), th("From → to"), th("Reason"), th("Status"), th("Progress"), th("Created", false), th("Action")],
        page.items.map((m) =>
          el(
            "tr",
            { "data-move": m.id, "data-status": m.status },
            el("td", {}, el("a", { href: "#/objects/" + encodeURIComponent(m.object_id) }, m.object_id)),
            el("td", {}, m.from_tier + " → " + m.to_tier),
            el(
              "td",
              {},
              m.reason,
              m.rule_id ? el("div", { class: "muted" }, "rule " + m.rule_id) : "",
              m.batch_id ? el("div", { class: "muted" }, "batch " + m.batch_id) : "",
            ),
            el("td", { class: "status-" + m.status }, m.status, m.error ? el("div", { class: "error" }, m.error) : ""),
            el("td", {}, moveProgress(m)),
            el("td", { class: "hide-narrow" }, when(m.created_at)),
            el("td", {}, ["pending", "copying", "verifying"].includes(m.status) ? cancelButton(m, refresh) : ""),
          ),
        ),
      ),
    ),
  );
}

async function objects(root, where) {
  const prefix = where.params.get("prefix") || "";
  const tier = where.params.get("tier") || "";
  const sort = where.params.get("sort") || "";
  const tiers = await get("/api/v1/tiers");
  const query = new URLSearchParams({ limit: "200" });
  if (prefix) query.set("key_prefix", prefix);
  if (tier) query.set("tier", tier);
  const page = await get("/api/v1/objects?" + query);
  root.append(el("h1", {}, "Objects"));
  const form = queryForm(
    "objects",
    { prefix: "object-prefix", tier: "object-tier" },
    sort ? { sort } : {},
    el("label", { for: "object-prefix" }, "Key prefix", el("input", { id: "object-prefix", type: "search", value: prefix })),
    select(
      "object-tier",
      "Tier",
      tiers.items.map((t) => t.name),
      tier,
      "any tier",
    ),
    el("button", { type: "submit" }, "Search"),
  );
  root.append(form);
  const items = page.items.slice();
  if (sort) items.sort((a, b) => b.access[sort] - a.access[sort]);
  const sortBy = (field, label) => {
    const next = new URLSearchParams(where.params);
    next.set("sort", field);
    return el(
      "th",
      { scope: "col", class: "num", "aria-sort": sort === field ? "descending" : undefined },
      el("button", { type: "button", onclick: () => (location.hash = "#/objects?" + next) }, label + (sort === field ? " ▼" : "")),
    );
  };
  root.append(
    el("p", { class: "muted" }, page.next ? "The first " + items.length + " matching objects, in id order; narrow the prefix to see others." : items.length + " objects."),
    table(
      [th("Key"), th("Tier"), th("Size", true), sortBy("last_hour", "Last hour"), sortBy("last_day", "Last day"), sortBy("total", "Total")],
      items.map((o) =>
        el(
          "tr",
          { "data-object": o.id },
          el("td", {}, el("a", { href: "#/objects/" + encodeURIComponent(o.id) }, o.key)),
          el("td", {}, o.tier),
          el("td", { class: "num" }, bytes(o.size)),
          el("td", { class: "num" }, number(o.access.last_hour)),
          el("td", { class: "num" }, number(o.access.last_day)),
          el("td", { class: "num" }, number(o.access.total)),
        ),
      ),
    ),
  );
}

function accessChart(hours, prediction) {
  const width = 720;
  const height = 200;
  const pad = { left: 36, right: 44, top: 10, bottom: 22 };
  const perHour = prediction ? prediction.predicted_accesses / prediction.horizon_hours : null;
  const top = Math.max(1, perHour || 0, ...hours.map((h) => h.accesses));
  const slots = hours.length + (prediction ? prediction.horizon_hours : 0);
  const slot = (width - pad.left - pad.right) / slots;
  const y = (v) => pad.top + (height - pad.top - pad.bottom) * (1 - v / top);
  const chart = svg(
    "svg",
    { class: "chart", viewBox: "0 0 " + width + " " + height, role: "img", "aria-label": "Accesses per hour over the last " + hours.length + " hours, with the forecast" },
    svg("line", { class: "axis", x1: pad.left, y1: y(0), x2: width - pad.right, y2: y(0) }),
    svg("text", { x: 2, y: y(top) + 4 }, number(top)),
    svg("text", { x: 2, y: y(0) }, "0"),
    svg("text", { x: pad.left, y: height - 4 }, when(hours[0].start)),
    svg("text", { x: width - pad.right - 40, y: height - 4 }, "now"),
    hours.map((h, i) =>
      svg(
        "rect",
        { class: "actual", x: pad.left + i * slot, y: y(h.accesses), width: Math.max(1, slot - 0.5), height: y(0) - y(h.accesses) },
        svg("title", {}, when(h.start) + ": " + h.accesses),
      ),
    ),
  );
  if (prediction) {
    const x0 = pad.left + (hours.length - 1) * slot;
    const x1 = x0 + (prediction.horizon_hours + 1) * slot;
    chart.append(
      svg("path", { class: "forecast", d: "M" + x0 + " " + y(perHour) + " L" + x1 + " " + y(perHour) }, svg("title", {}, "forecast: " + number(perHour, 2) + " an hour")),
    );
  }
  return el(
    "figure",
    {},
    chart,
    el(
      "figcaption",
      { class: "legend" },
      el("span", {}, el("span", { class: "swatch", "data-swatch": "actual" }), "accesses per hour"),
      prediction ? el("span", {}, el("span", { class: "swatch", "data-swatch": "forecast" }), "forecast per hour over the next " + prediction.horizon_hours + " h") : "",
    ),
  );
}

async function download(object) {
  const headers = {};
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = "Bearer " + token;
  const response = await fetch("/api/v1/objects/" + encodeURIComponent(object.id) + "/content", { headers });
  if (!response.ok) throw new ApiError(response.status, "download failed: " + response.statusText);
  const url = URL.createObjectURL(await response.blob());
  const link = el("a", { href: url, download: object.key.split("/").pop() || object.id });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

async function objectPage(root, where, first) {
  const id = encodeURIComponent(where.id);
  const [object, hours, history, tiers, status] = await Promise.all([
    get("/api/v1/objects/" + id),
    first ? get("/api/v1/objects/" + id + "/accesses?hours=168") : null,
    get("/api/v1/migrations?limit=100&object_id=" + id),
    first ? get("/api/v1/tiers") : null,
    first ? get("/api/v1/status") : null,
  ]);
  // Asked only with a model active: the 503 otherwise would be an error in the console.
  const prediction = first && status.model ? await get("/api/v1/objects/" + id + "/prediction") : null;
  if (first) {
    root.append(el("h1", {}, object.key));
    const message = el("p", { role: "status", id: "move-message" });
    const form = el(
      "form",
      {
        class: "inline",
        id: "move-form",
        onsubmit: async (event) => {
          event.preventDefault();
          const to = form.querySelector("#move-to").value;
          try {
            const move = await post("/api/v1/objects/" + id + "/migrations", { to_tier: to });
            message.textContent = "Move " + move.id + " to " + to + " queued.";
            message.className = "";
          } catch (error) {
            message.textContent = error.message;
            message.className = "error";
          }
        },
      },
      select(
        "move-to",
        "Move to tier",
        tiers.items.map((t) => t.name).filter((t) => t !== object.tier),
        "",
      ),
      el("button", { type: "submit" }, "Move"),
      el(
        "button",
        {
          type: "button",
          class: "secondary",
          onclick: () => download(object).catch((error) => (message.textContent = error.message)),
        },
        "Download",
      ),
    );
    root.append(
      facts([
        ["Id", object.id],
        ["Bucket", object.bucket],
        ["Size", bytes(object.size) + " (" + number(object.size) + " bytes)"],
        ["Type", object.content_type],
        ["Checksum", object.checksum],
        ["Version", object.version],
        ["Created", when(object.created_at)],
        object.damage && ["Damage", object.damage, { class: "error" }],
      ]),
      form,
      message,
      el("h2", {}, "Accesses, last week"),
      accessChart(hours.hours, prediction),
    );
    if (prediction) {
      root.append(
        el("h2", {}, "Prediction"),
        facts([
          ["Expected accesses", number(prediction.predicted_accesses, 2) + " over " + prediction.horizon_hours + " h (" + prediction.basis + ")"],
          ["Tier it implies", prediction.predicted_tier],
          ["Model", prediction.model.name + " v" + prediction.model.version],
        ]),
        table(
          [th("Strongest features"), th("Value", true), th("Contribution", true)],
          prediction.top_features.map((f) =>
            el("tr", {}, el("td", {}, f.name), el("td", { class: "num" }, number(f.value, 3)), el("td", { class: "num" }, number(f.contribution, 3))),
          ),
        ),
      );
    } else {
      root.append(el("p", { class: "muted" }, "No prediction: no model is active."));
    }
  }
  root.append(
    el(
      "section",
      { "data-live": "object-tier", "aria-labelledby": "tier-heading" },
      el("h2", { id: "tier-heading" }, "Tier: ", el("span", { id: "object-tier-now" }, object.tier)),
      table(
        [th("Moved"), th("From → to"), th("Reason"), th("Status"), th("Progress")],
        history.items.map((m) =>
          el(
            "tr",
            { "data-move": m.id, "data-status": m.status },
            el("td", {}, when(m.finished_at || m.created_at)),
            el("td", {}, m.from_tier + " → " + m.to_tier),
            el(
              "td",
              {},
              m.reason,
              m.rule_id ? el("div", { class: "muted" }, "rule " + m.rule_id) : "",
              m.batch_id ? el("div", { class: "muted" }, "batch " + m.batch_id) : "",
            ),
            el("td", { class: "status-" + m.status }, m.status, m.error ? el("div", { class: "error" }, m.error) : ""),
            el("td", {}, moveProgress(m)),
          ),
        ),
      ),
    ),
  );
}

function captureChart(capture) {
  const width = 480;
  const height = 240;
  const pad = 34;
  // The shares are far apart in size (1 % to half the bytes): evenly spaced points.
  const last = Math.max(1, capture.byte_shares.length - 1);
  const x = (i) => pad + ((width - 2 * pad) * i) / last;
  const y = (v) => height - pad - (height - 2 * pad) * v;
  const line = (values, cls) =>
    svg("path", {
      class: cls,
      fill: "none",
      d: values.map((v, i) => (i ? "L" : "M") + x(i) + " " + y(v)).join(" "),
    });
  const series = [
    ["best", "best possible (actual)"],
    ["model", "model (predicted)"],
    ["persistence", "persistence"],
    ["moving_average", "moving average"],
  ];
  return el(
    "figure",
    {},
    svg(
      "svg",
      { class: "chart capture", viewBox: "0 0 " + width + " " + height, role: "img", "aria-label": "Share of actual accesses captured by the objects each predictor ranks hottest" },
      svg("line", { class: "axis", x1: pad, y1: y(0), x2: x(last), y2: y(0) }),
      svg("line", { class: "axis", x1: pad, y1: y(0), x2: pad, y2: y(1) }),
      svg("text", { x: 2, y: y(1) + 4 }, "100%"),
      svg("text", { x: 2, y: y(0) }, "0"),
      capture.byte_shares.map((b, i) => svg("text", { x: x(i) - 8, y: height - 18 }, share(b).replace(".0 ", ""))),
      svg("text", { x: pad, y: height - 4 }, "share of bytes placed hot"),
      series.map(([key]) => line(capture[key], "series-" + key)),
    ),
    el(
      "figcaption",
      { class: "legend" },
      series.map(([key, label]) => el("span", {}, el("span", { class: "swatch", "data-swatch": key }), label)),
    ),
  );
}

async function models(root) {
  const list = await get("/api/v1/models");
  root.append(el("h1", {}, "Models"));
  const message = el("p", { role: "status" });
  const form = el(
    "form",
    {
      class: "inline",
      onsubmit: async (event) => {
        event.preventDefault();
        const body = { activate: form.querySelector("#train-activate").checked };
        const name = form.querySelector("#train-name").value.trim();
        const horizon = form.querySelector("#train-horizon").value;
        if (name) body.name = name;
        if (horizon) body.horizon_hours = Number(horizon);
        try {
          await post("/api/v1/models/train", body);
          message.textContent = "Training started; the model appears here when it is registered.";
          message.className = "";
        } catch (error) {
          message.textContent = error.message;
          message.className = "error";
        }
      },
    },
    el("label", { for: "train-name" }, "Name", el("input", { id: "train-name", placeholder: "default", pattern: "[A-Za-z0-9_-]+" })),
    el("label", { for: "train-horizon" }, "Horizon (hours)", el("input", { id: "train-horizon", type: "number", min: 1, max: 168, placeholder: "1" })),
    el("label", { for: "train-activate" }, "Activate when trained", el("input", { id: "train-activate", type: "checkbox" })),
    el("button", { type: "submit" }, "Train a model"),
  );
  root.append(form, message);
  root.append(
    table(
      [th("Model"), th("Kind"), th("Trained"), th("MAE", true), th("Persistence MAE", true), th("Moving avg MAE", true), th("Beats baselines"), th("Active")],
      list.items.map((m) => {
        const e = m.evaluation;
        return el(
          "tr",
          { "data-model": m.id },
          el("td", {}, m.name + " v" + m.version, m.problem ? el("div", { class: "error" }, m.problem) : ""),
          el("td", {}, m.kind || "–"),
          el("td", {}, when(m.trained_at)),
          el("td", { class: "num" }, e ? number(e.model.mae, 3) : "–"),
          el("td", { class: "num" }, e ? number(e.persistence.mae, 3) : "–"),
          el("td", { class: "num" }, e ? number(e.moving_average.mae, 3) : "–"),
          el("td", {}, e ? (e.beats_baselines ? "yes" : "no") : "–"),
          el(
            "td",
            {},
            m.active
              ? el("span", { class: "badge" }, "active")
              : el(
                  "button",
                  {
                    type: "button",
                    class: "secondary",
                    onclick: async () => {
                      try {
                        await post("/api/v1/models/" + encodeURIComponent(m.id) + "/activate");
                        route();
                      } catch (error) {
                        message.textContent = error.message;
                        message.className = "error";
                      }
                    },
                  },
                  "Activate",
                ),
          ),
        );
      }),
    ),
  );
  const shown = list.items.find((m) => m.active && m.evaluation && m.evaluation.capture) || list.items.find((m) => m.evaluation && m.evaluation.capture);
  if (shown) {
    root.append(
      el("h2", {}, "Predicted against actual: " + shown.name + " v" + shown.version),
      el("p", { class: "muted" }, "Of the held-out hours' actual accesses, the share the objects each predictor ranks hottest would have served, by the share of bytes placed hot."),
      captureChart(shown.evaluation.capture),
    );
  }
}

// A rule's filter in words.
function filterText(filter) {
  if (filter.all) return "every object";
  return [
    filter.prefix !== undefined ? "keys " + filter.prefix + "…" : "",
    filter.content_type !== undefined ? filter.content_type : "",
    filter.min_size !== undefined ? "≥ " + bytes(filter.min_size) : "",
    filter.max_size !== undefined ? "≤ " + bytes(filter.max_size) : "",
  ]
    .filter(Boolean)
    .join(", ");
}

function ruleAction(rule) {
  const days = rule.after_days !== undefined ? " after " + rule.after_days + " days" : "";
  const since = rule.action === "transition" ? (rule.since === "creation" ? " since creation" : " since the last access") : "";
  return rule.action + (rule.tier ? " " + rule.tier : "") + days + since;
}

// The batch shown on the rules page, followed live until the page is left.
let shownBatch = null;

async function rules(root, where, first) {
  const [list, tiers] = await Promise.all([get("/api/v1/rules"), get("/api/v1/tiers")]);
  const names = tiers.items.map((t) => t.name);
  if (first) {
    shownBatch = null;
    root.append(el("h1", {}, "Rules"));
    root.append(
      el("p", { class: "muted" }, "The most specific rule that selects an object governs it: longest prefix, then most other criteria, then id. Placement rules and expire rules apply apart."),
      ruleForm(names),
    );
  }
  root.append(
    el(
      "section",
      { "data-live": "rules", "aria-label": "Rules, most specific first" },
      table(
        [th("Rule"), th("Objects"), th("Does"), th("In force"), th("Action")],
        list.items.map((r) =>
          el(
            "tr",
            { "data-rule": r.id },
            el("td", {}, r.id),
            el("td", {}, filterText(r.filter)),
            el("td", {}, ruleAction(r)),
            el("td", {}, r.in_force ? "yes" : el("span", { class: "error" }, "no: its tier is not configured")),
            el("td", {}, deleteRuleButton(r)),
          ),
        ),
      ),
    ),
  );
  if (first) {
    root.append(el("h2", {}, "Bulk move"), batchForm(names));
  }
  const batch = el("section", { "data-live": "batch", "aria-label": "Bulk move" });
  if (shownBatch) {
    const b = await get("/api/v1/migrations/batches/" + encodeURIComponent(shownBatch));
    const amount = (a) => a.objects + " (" + bytes(a.bytes) + ")";
    batch.append(
      facts([
        ["Batch", b.id],
        ["Queued", amount(b.queued)],
        ["Done", amount(b.done), { "data-batch-done": b.done.objects }],
        ["Failed", amount(b.failed)],
        ["Cancelled", amount(b.cancelled)],
        ["Remaining", amount(b.remaining)],
      ]),
      b.remaining.objects > 0 && !b.cancelled_at
        ? el(
            "button",
            {
              type: "button",
              class: "danger",
              "data-cancel-batch": b.id,
              onclick: async () => {
                try {
                  await post("/api/v1/migrations/batches/" + encodeURIComponent(b.id) + "/cancel");
                } catch (error) {
                  showError(batch, error);
                }
              },
            },
            "Cancel what has not started",
          )
        : "",
    );
  }
  root.append(batch);
}

function deleteRuleButton(rule) {
  return confirmButton("Delete", "Really delete", "delete-rule", rule.id, async () => {
    await del("/api/v1/rules/" + encodeURIComponent(rule.id));
    route();
  });
}

function ruleForm(tierNames) {
  const message = el("p", { role: "status" });
  const value = (id) => form.querySelector("#" + id).value.trim();
  const form = el(
    "form",
    {
      class: "inline",
      onsubmit: async (event) => {
        event.preventDefault();
        const action = value("rule-action");
        const rule = { filter: value("rule-prefix") ? { prefix: value("rule-prefix") } : { all: true }, action };
        if (action !== "expire") rule.tier = value("rule-tier");
        if (action === "transition" || action === "expire") rule.after_days = Number(value("rule-days"));
        try {
          await put("/api/v1/rules/" + encodeURIComponent(value("rule-id")), rule);
          route();
        } catch (error) {
          message.textContent = error.message;
          message.className = "error";
        }
      },
    },
    el("label", { for: "rule-id" }, "Id", el("input", { id: "rule-id", required: true, pattern: "[A-Za-z0-9._\\-]{1,64}" })),
    el("label", { for: "rule-prefix" }, "Key prefix (empty: every object)", el("input", { id: "rule-prefix" })),
    select("rule-action", "Action", ["pin", "floor", "ceiling", "transition", "expire"], "pin"),
    select("rule-tier", "Tier", tierNames, tierNames[0]),
    el("label", { for: "rule-days" }, "After days", el("input", { id: "rule-days", type: "number", min: 0, step: "any", placeholder: "transition, expire" })),
    el("button", { type: "submit", id: "rule-save" }, "Save rule"),
  );
  return el("div", {}, form, message);
}

function batchForm(tierNames) {
  const output = el("div", { role: "status" });
  const value = (id) => form.querySelector("#" + id).value.trim();
  const request = (dryRun) => ({ filter: { prefix: value("batch-prefix") }, to_tier: value("batch-tier"), dry_run: dryRun });
  const queue = el(
    "button",
    {
      type: "button",
      hidden: true,
      "data-queue-batch": "",
      onclick: async () => {
        try {
          const batch = await post("/api/v1/migrations/batches", request(false));
          shownBatch = batch.id;
          queue.hidden = true;
          output.replaceChildren(el("p", {}, "Queued batch " + batch.id + "; its progress is below."));
        } catch (error) {
          showError(output, error);
        }
      },
    },
    "Queue these moves",
  );
  const form = el(
    "form",
    {
      class: "inline",
      onsubmit: async (event) => {
        event.preventDefault();
        output.replaceChildren();
        try {
          const plan = await post("/api/v1/migrations/batches", request(true));
          const c = plan.capacity;
          output.append(
            facts([
              ["Objects", number(plan.objects), { "data-plan-objects": plan.objects }],
              ["Bytes", bytes(plan.bytes)],
              ["Copying takes about", number(plan.estimated_seconds, 0) + " s"],
              ["On " + plan.to_tier + " after", bytes(c.after_bytes) + (c.capacity_bytes === null ? "" : " of " + bytes(c.capacity_bytes) + (c.fits ? "" : " (does not fit)"))],
              ["Monthly storage cost", number(plan.monthly_cost_before, 2) + " → " + number(plan.monthly_cost_after, 2)],
              ["Left out", plan.already_there + " already there, " + plan.moving + " moving, " + Object.values(plan.held_by_rules).reduce((a, b) => a + b, 0) + " held by rules"],
            ]),
          );
          queue.hidden = plan.objects === 0;
        } catch (error) {
          showError(output, error);
        }
      },
    },
    el("label", { for: "batch-prefix" }, "Key prefix", el("input", { id: "batch-prefix", required: true })),
    select("batch-tier", "To tier", tierNames, tierNames[0]),
    el("button", { type: "submit", id: "batch-plan" }, "Plan"),
    queue,
  );
  return el("div", {}, form, output);
}

setUpToken();
window.addEventListener("hashchange", route);
route();

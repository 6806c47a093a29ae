// TaskFlow dashboard: a single page over the JSON of ./api/. Plain JavaScript, no build step.
// Pages are chosen by the URL's hash (#/tasks?state=failed, #/tasks/ID, #/dags/ID, ...) and
// redrawn from fresh JSON every POLL_MS while "Live" is on and the tab is visible.

import { lineChart, dagGraph, STATES } from "./charts.js";

const POLL_MS = 2000;
const API = "api";
const main = document.getElementById("main");
const statusLine = document.getElementById("status"); // not a live region: it changes every poll
const alertLine = document.getElementById("alert"); // problems, read out once
const liveButton = document.getElementById("live");
const namespaceSelect = document.getElementById("namespace");

const state = {
  config: null,
  live: true,
  timer: null,
  namespace: sessionStorage.getItem("taskflow.namespace") || "default",
  token: sessionStorage.getItem("taskflow.token") || "",
  renderedKey: "",
  extraPages: [], // tasks loaded with "Load more" on the current list
};

// -- helpers -------------------------------------------------------------------------------

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function badge(value) {
  return h("span", { class: `badge ${value}` }, value);
}

// Ids are time-ordered (UUIDv7): their first digits are alike, their last ones tell apart.
function short(id) {
  return id ? `…${id.slice(-8)}` : "";
}

function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return d.toLocaleString(undefined, { hour12: false });
}

function ago(iso) {
  if (!iso) return "";
  const s = (Date.now() - new Date(iso).getTime()) / 1000;
  const past = s >= 0;
  const a = Math.abs(s);
  let text;
  if (a < 60) text = `${Math.round(a)}s`;
  else if (a < 3600) text = `${Math.round(a / 60)}m`;
  else if (a < 86400) text = `${Math.round(a / 3600)}h`;
  else text = `${Math.round(a / 86400)}d`;
  return past ? `${text} ago` : `in ${text}`;
}

function seconds(value) {
  if (value === null || value === undefined) return "";
  if (value < 1) return `${Math.round(value * 1000)} ms`;
  if (value < 120) return `${value.toFixed(value < 10 ? 2 : 1)} s`;
  return `${(value / 60).toFixed(1)} min`;
}

function timeCell(iso) {
  return iso ? h("time", { datetime: iso, title: when(iso) }, ago(iso)) : "";
}

function pretty(jsonText) {
  if (jsonText === null || jsonText === undefined) return "";
  try {
    return JSON.stringify(JSON.parse(jsonText), null, 2);
  } catch {
    return jsonText;
  }
}

function table(headers, rows, empty) {
  if (!rows.length) return h("div", { class: "table-wrap" }, h("p", { class: "empty" }, empty));
  const head = h("tr", {}, headers.map(([label, cls]) => h("th", { scope: "col", class: cls }, label)));
  return h("div", { class: "table-wrap" }, h("table", {}, h("thead", {}, head), h("tbody", {}, rows)));
}

// A problem stays shown at least ALERT_MS, so the next poll does not wipe it before it is read.
const ALERT_MS = 8000;
let alertUntil = 0;

function setStatus(text, isError = false) {
  if (isError) {
    if (alertLine.textContent !== text) alertLine.textContent = text;
    alertUntil = Date.now() + ALERT_MS;
    return;
  }
  if (Date.now() > alertUntil) alertLine.textContent = "";
  statusLine.textContent = text;
}

class HttpError extends Error {
  constructor(status, message, field) {
    super(message);
    this.status = status;
    this.field = field;
  }
}

async function api(path, { method = "GET", body } = {}) {
  const headers = { Accept: "application/json" };
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(`${API}/${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
  });
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = { error: `HTTP ${response.status}` };
  }
  if (!response.ok) throw new HttpError(response.status, data.error || `HTTP ${response.status}`, data.field);
  return data;
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  const text = q.toString();
  return text ? `?${text}` : "";
}

// -- routing -------------------------------------------------------------------------------

function route() {
  const hash = location.hash.replace(/^#\/?/, "") || "queues";
  const [path, search = ""] = hash.split("?");
  const parts = path.split("/").filter(Boolean);
  return { page: parts[0] || "queues", id: parts[1] ? decodeURIComponent(parts[1]) : null, params: new URLSearchParams(search) };
}

const PAGES = {
  queues: { title: "Queues", render: renderQueues },
  tasks: { title: "Tasks", render: renderTasks, detail: renderTask },
  dags: { title: "DAG runs", render: renderRuns, detail: renderRun },
  workers: { title: "Workers", render: renderWorkers },
  schedules: { title: "Schedules", render: renderSchedules },
};

async function refresh({ navigated = false } = {}) {
  clearTimeout(state.timer);
  const r = route();
  const page = PAGES[r.page];
  for (const link of document.querySelectorAll("nav a[data-page]")) {
    if (link.dataset.page === r.page) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (navigated) state.extraPages = [];
  try {
    if (!page) {
      swap(h("section", {}, h("h1", {}, "Not found"), h("p", {}, "No such page. ", h("a", { href: "#/queues" }, "Queues"))), "none");
    } else if (state.config && state.config.auth_required && !state.token) {
      swap(tokenForm(), "token");
    } else {
      const view = await (r.id && page.detail ? page.detail(r.id, r.params) : page.render(r.params));
      const title = view.dataset.title || page.title;
      document.title = `${title} · TaskFlow`;
      swap(view, location.hash);
      setStatus(state.live ? `Live · updated ${new Date().toLocaleTimeString(undefined, { hour12: false })}` : "Paused");
    }
  } catch (err) {
    if (err instanceof HttpError && err.status === 401) {
      state.token = "";
      sessionStorage.removeItem("taskflow.token");
      swap(tokenForm(err.message), "token");
      setStatus("The API needs a token", true);
    } else if (err instanceof HttpError && err.status === 404 && r.id) {
      swap(h("section", {}, h("h1", {}, "Not found"), h("p", {}, err.message)), location.hash);
      setStatus(err.message, true);
    } else {
      setStatus(`Could not load: ${err.message}`, true);
    }
  }
  if (navigated) main.focus({ preventScroll: true });
  // A hidden tab stops polling; "visibilitychange" starts it again.
  if (state.live) state.timer = setTimeout(() => (document.hidden ? null : refresh()), POLL_MS);
}

// Replace the page's content, keeping the focused control (by its data-key) and the scroll.
function swap(view, key) {
  const active = document.activeElement;
  const focusKey = active && main.contains(active) ? active.dataset.key : null;
  const typing = focusKey && active.tagName === "INPUT";
  const value = typing ? active.value : null;
  const selection = typing ? [active.selectionStart, active.selectionEnd] : null;
  const scroll = window.scrollY;
  const sameView = state.renderedKey === key;
  main.replaceChildren(view);
  state.renderedKey = key;
  if (sameView) window.scrollTo(0, scroll);
  if (focusKey) {
    const again = main.querySelector(`[data-key="${CSS.escape(focusKey)}"]`);
    if (again) {
      if (typing) again.value = value;
      again.focus({ preventScroll: true });
      if (selection && selection[0] !== null) {
        try { again.setSelectionRange(...selection); } catch { /* not a text field */ }
      }
    }
  }
}

function tokenForm(problem) {
  const input = h("input", { id: "token", type: "password", autocomplete: "current-password", required: true, "data-key": "token" });
  const form = h(
    "form",
    {
      class: "panel token-form",
      onsubmit: (event) => {
        event.preventDefault();
        state.token = input.value.trim();
        sessionStorage.setItem("taskflow.token", state.token);
        refresh({ navigated: true });
      },
    },
    h("h1", {}, "API token"),
    h("p", {}, "This TaskFlow API needs its token (TASKFLOW_API_TOKEN). It is kept in this tab only."),
    problem ? h("p", { class: "error-box", role: "alert" }, problem) : null,
    h("label", { for: "token" }, "Token"),
    input,
    h("button", { class: "primary", type: "submit" }, "Use token"),
  );
  form.dataset.title = "API token";
  return form;
}

// -- queues --------------------------------------------------------------------------------

const SERIES = [
  { key: "backlog", label: "Backlog", unit: "tasks", color: "#1d4ed8", format: (v) => String(Math.round(v)), integer: true },
  { key: "running", label: "Running", unit: "tasks", color: "#a16207", format: (v) => String(Math.round(v)), integer: true },
  { key: "throughput", label: "Throughput", unit: "tasks/s", color: "#15803d", format: (v) => (v >= 10 ? v.toFixed(0) : v.toFixed(1)) },
  { key: "failure_rate", label: "Failure rate", unit: "%", color: "#b91c1c", format: (v) => `${(v * 100).toFixed(v < 0.1 && v > 0 ? 1 : 0)}%`, max: 1 },
];

async function renderQueues() {
  const data = await api(`queues${query({ namespace: state.namespace })}`);
  updateNamespaces(data.queues);
  const rows = data.queues.map((q) =>
    h(
      "tr",
      {},
      h("th", { scope: "row" }, h("a", { href: `#/tasks?queue=${encodeURIComponent(q.queue)}` }, q.queue)),
      h("td", { class: "num" }, q.ready),
      h("td", { class: "num" }, q.scheduled),
      h("td", { class: "num" }, q.running),
      h("td", { class: "num" }, q.backlog),
      h("td", { class: "num" }, q.succeeded),
      h("td", { class: "num" }, q.failed),
      h("td", { class: "num" }, q.dead_letters ? h("a", { href: `#/tasks?queue=${encodeURIComponent(q.queue)}&state=failed`, "aria-label": `${q.dead_letters} dead letters in ${q.queue}` }, q.dead_letters) : "0"),
    ),
  );
  const charts = data.queues.map((q) => {
    const points = data.history[`${q.namespace}/${q.queue}`] || [];
    return h(
      "section",
      { class: "queue-block", "aria-labelledby": `chart-${q.queue}` },
      h("h2", { id: `chart-${q.queue}` }, `${q.queue} over time`, h("span", { class: "sub" }, ` · a sample every ${data.sample_seconds}s`)),
      h(
        "div",
        { class: "cards" },
        SERIES.map((s) => {
          const values = points.map((p) => [p.at, p[s.key]]);
          const latest = values.length ? values[values.length - 1][1] : 0;
          return h(
            "figure",
            { class: "card" },
            h("h3", {}, h("span", {}, s.label), h("span", { class: "value" }, s.format(latest))),
            lineChart(values, { label: `${s.label} of ${q.queue}, ${s.unit}`, color: s.color, format: s.format, max: s.max, integer: s.integer }),
          );
        }),
      ),
    );
  });
  const view = h(
    "section",
    {},
    h("h1", {}, "Queues"),
    table(
      [["Queue"], ["Ready", "num"], ["Scheduled", "num"], ["Running", "num"], ["Backlog", "num"], ["Succeeded", "num"], ["Failed", "num"], ["Dead letters", "num"]],
      rows,
      `No queues in namespace ${state.namespace} yet: submit a task (taskflow submit QUEUE HANDLER).`,
    ),
    charts,
  );
  return view;
}

function updateNamespaces(queues) {
  const names = new Set([state.namespace, "default", ...queues.map((q) => q.namespace)]);
  const have = [...namespaceSelect.options].map((o) => o.value);
  if (names.size === have.length && have.every((n) => names.has(n))) return;
  namespaceSelect.replaceChildren(...[...names].sort().map((n) => h("option", { value: n, selected: n === state.namespace }, n)));
}

async function loadNamespaces() {
  try {
    const all = await api("queues");
    updateNamespaces(all.queues);
  } catch {
    /* shown by the page itself */
  }
}

// -- tasks ---------------------------------------------------------------------------------

async function renderTasks(params) {
  const filter = {
    namespace: state.namespace,
    queue: params.get("queue") || "",
    state: params.get("state") || "",
    handler: params.get("handler") || "",
    id: params.get("id") || "",
  };
  const [data, queues, handlers] = await Promise.all([
    api(`tasks${query({ ...filter, limit: 50 })}`),
    api(`queues${query({ namespace: state.namespace })}`),
    api(`handlers${query({ namespace: state.namespace })}`),
  ]);
  const tasks = [...data.tasks];
  let next = data.next;
  for (const page of state.extraPages) {
    tasks.push(...page.tasks);
    next = page.next;
  }
  const seen = new Set();
  const unique = tasks.filter((t) => !seen.has(t.id) && seen.add(t.id));

  const select = (name, label, options) =>
    h(
      "label",
      {},
      label,
      h(
        "select",
        { name, "data-key": `filter-${name}`, onchange: (e) => setFilter(name, e.target.value) },
        h("option", { value: "" }, "any"),
        options.map((o) => h("option", { value: o, selected: o === filter[name] }, o)),
      ),
    );
  const idInput = h("input", { name: "id", type: "search", value: filter.id, placeholder: "id or first 8+ hex digits", "data-key": "filter-id", spellcheck: "false" });
  const filters = h(
    "form",
    {
      class: "filters",
      "aria-label": "Filter tasks",
      onsubmit: (e) => {
        e.preventDefault();
        setFilter("id", idInput.value.trim());
      },
    },
    select("queue", "Queue", queues.queues.map((q) => q.queue)),
    select("state", "State", STATES.filter((s) => s !== "skipped")),
    select("handler", "Handler", handlers.handlers),
    h("label", {}, "Id", idInput),
    h("button", { type: "submit" }, "Search"),
    Object.values(filter).slice(1).some(Boolean) ? h("a", { href: "#/tasks" }, "Clear filters") : null,
  );
  const rows = unique.map((t) =>
    h(
      "tr",
      {},
      h("td", {}, h("a", { href: `#/tasks/${t.id}`, class: "mono", "aria-label": `task ${t.id}`, title: t.id, "data-key": `task-${t.id}` }, short(t.id))),
      h("td", {}, badge(t.state)),
      h("td", {}, t.queue),
      h("td", {}, t.handler, t.step ? h("span", { class: "sub" }, ` · step ${t.step}`) : null),
      h("td", { class: "num" }, t.attempts),
      h("td", { class: "hide-narrow" }, timeCell(t.created_at)),
      h("td", { class: "num hide-narrow" }, t.started_at && t.finished_at ? seconds((new Date(t.finished_at) - new Date(t.started_at)) / 1000) : ""),
      h("td", { class: "err" }, t.error || ""),
    ),
  );
  const more = next
    ? h(
        "button",
        {
          class: "more",
          type: "button",
          "data-key": "more",
          onclick: async () => {
            state.extraPages.push(await api(`tasks${query({ ...filter, limit: 50, before: next })}`));
            refresh();
          },
        },
        "Load more",
      )
    : null;
  return h(
    "section",
    {},
    h("h1", {}, "Tasks", h("span", { class: "sub" }, ` · ${unique.length}${next ? "+" : ""} shown, newest first`)),
    filters,
    table(
      [["Id"], ["State"], ["Queue"], ["Handler"], ["Attempts", "num"], ["Created", "hide-narrow"], ["Ran", "num hide-narrow"], ["Error"]],
      rows,
      "No task matches.",
    ),
    more,
  );
}

function setFilter(name, value) {
  const r = route();
  const params = new URLSearchParams(r.params);
  if (value) params.set(name, value);
  else params.delete(name);
  const q = params.toString();
  location.hash = `#/tasks${q ? `?${q}` : ""}`;
}

async function renderTask(id) {
  const t = await api(`tasks/${encodeURIComponent(id)}`);
  const truncated = (flag) => (flag ? h("p", { class: "note" }, "Cut short: the whole value is in taskflow status --json.") : null);
  const fields = [
    ["Id", h("span", { class: "mono" }, t.id)],
    ["Queue", h("a", { href: `#/tasks?queue=${encodeURIComponent(t.queue)}` }, `${t.namespace}/${t.queue}`)],
    ["Handler", t.handler],
    ["Priority", t.priority],
    ["Attempts", `${t.attempts} (failures ${t.failures}, max retries ${t.max_retries})`],
    t.run_id ? ["DAG run", h("a", { href: `#/dags/${t.run_id}` }, `${short(t.run_id)} · step ${t.step}`)] : null,
    t.idempotency_key ? ["Idempotency key", t.idempotency_key] : null,
    t.timeout_seconds ? ["Timeout", seconds(t.timeout_seconds)] : null,
    Object.keys(t.labels || {}).length ? ["Labels", Object.entries(t.labels).map(([k, v]) => `${k}=${v}`).join(", ")] : null,
    t.progress !== null && t.state === "running" ? ["Progress", `${Math.round(t.progress * 100)}% ${t.progress_message || ""}`] : null,
  ].filter(Boolean);
  const timing = [
    ["Created", when(t.created_at)],
    t.run_at ? ["Due", when(t.run_at)] : null,
    ["Started", when(t.started_at) || "not yet"],
    ["Finished", when(t.finished_at) || "not yet"],
    ["Waited", seconds(t.wait_seconds)],
    ["Ran", seconds(t.run_seconds)],
  ].filter(Boolean);
  const dl = (items) => h("dl", { class: "fields" }, items.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
  const attempts = t.attempt_history.map((a) =>
    h(
      "tr",
      {},
      h("td", { class: "num" }, `#${a.number}`),
      h("td", {}, badge(a.outcome === "timeout" || a.outcome === "lost" ? "failed" : a.outcome), a.outcome === "timeout" || a.outcome === "lost" ? ` ${a.outcome}` : ""),
      h("td", { class: "mono" }, a.worker || ""),
      h("td", {}, when(a.started_at)),
      h("td", { class: "num" }, seconds(a.seconds)),
      h("td", { class: "err" }, a.error || ""),
    ),
  );
  const view = h(
    "section",
    {},
    h("p", {}, h("a", { href: `#/tasks?queue=${encodeURIComponent(t.queue)}` }, `← tasks of ${t.queue}`)),
    h("h1", {}, `${t.handler} `, badge(t.state), h("span", { class: "sub mono" }, ` ${short(t.id)}`)),
    actionButtons(t.actions, {
      cancel: ["Cancel task", () => act(`tasks/${t.id}/cancel`, `Cancel task ${t.id}?`)],
      replay: ["Replay", () => act(`tasks/${t.id}/replay`, `Run task ${t.id} again?`)],
    }),
    t.error ? h("section", { "aria-labelledby": "error-h" }, h("h2", { id: "error-h" }, "Error"), h("p", { class: "error-box" }, t.error), truncated(t.error_truncated)) : null,
    t.traceback
      ? h("section", { "aria-labelledby": "tb-h" }, h("h2", { id: "tb-h" }, "Traceback"), h("pre", { class: "block traceback", tabindex: "0", "aria-label": "traceback" }, t.traceback), truncated(t.traceback_truncated))
      : null,
    h("div", { class: "grid-2" }, h("div", { class: "panel" }, h("h2", {}, "Task"), dl(fields)), h("div", { class: "panel" }, h("h2", {}, "Timing"), dl(timing))),
    h("h2", {}, "Attempts"),
    table([["#", "num"], ["Outcome"], ["Worker"], ["Started"], ["Took", "num"], ["Error"]], attempts, "Not claimed yet."),
    h(
      "div",
      { class: "grid-2" },
      h("section", {}, h("h2", {}, "Payload"), h("pre", { class: "block", tabindex: "0", "aria-label": "payload" }, pretty(t.payload_json)), truncated(t.payload_truncated)),
      h("section", {}, h("h2", {}, "Result"), t.result_json !== null ? h("pre", { class: "block", tabindex: "0", "aria-label": "result" }, pretty(t.result_json)) : h("p", { class: "note" }, "No result."), truncated(t.result_truncated)),
    ),
  );
  view.dataset.title = `Task ${short(t.id)}`;
  return view;
}

function actionButtons(allowed, buttons) {
  const shown = Object.entries(buttons).filter(([name]) => allowed && allowed[name]);
  if (!shown.length) return null;
  return h(
    "div",
    { class: "actions" },
    shown.map(([name, [label, onclick]]) => h("button", { type: "button", class: name === "cancel" ? "danger" : "primary", onclick, "data-key": `action-${name}` }, label)),
  );
}

async function act(path, question) {
  if (!window.confirm(question)) return;
  try {
    await api(path, { method: "POST", body: {} });
    setStatus("Done");
  } catch (err) {
    setStatus(`Refused: ${err.message}`, true);
  }
  refresh();
}

// -- DAG runs ------------------------------------------------------------------------------

function counts(stepCounts) {
  return Object.entries(stepCounts || {})
    .sort()
    .map(([s, n]) => `${n} ${s}`)
    .join(", ");
}

async function renderRuns(params) {
  const data = await api(`dags${query({ namespace: state.namespace, state: params.get("state") || "", limit: 50 })}`);
  const rows = data.runs.map((r) =>
    h(
      "tr",
      {},
      h("td", {}, h("a", { href: `#/dags/${r.id}`, class: "mono", "aria-label": `run ${r.name || ""} ${r.id}`, "data-key": `run-${r.id}` }, short(r.id))),
      h("td", {}, r.name || ""),
      h("td", {}, badge(r.state)),
      h("td", {}, r.queue),
      h("td", {}, `${r.steps_total}: ${counts(r.step_counts)}`),
      h("td", { class: "hide-narrow" }, timeCell(r.created_at)),
    ),
  );
  return h(
    "section",
    {},
    h("h1", {}, "DAG runs"),
    table([["Run"], ["Name"], ["State"], ["Queue"], ["Steps"], ["Created", "hide-narrow"]], rows, "No DAG runs yet (taskflow dag submit FILE)."),
  );
}

async function renderRun(id) {
  const run = await api(`dags/${encodeURIComponent(id)}`);
  const steps = run.steps.map((s) =>
    h(
      "tr",
      {},
      h("th", { scope: "row" }, h("a", { href: `#/tasks/${s.task_id}`, "data-key": `step-${s.name}` }, s.name)),
      h("td", {}, badge(s.state)),
      h("td", {}, s.depends_on.join(", ") || "–"),
      h("td", {}, s.handler),
      h("td", { class: "num" }, s.attempts),
      h("td", { class: "num" }, seconds(s.run_seconds)),
      h("td", { class: "err" }, s.error || ""),
    ),
  );
  const view = h(
    "section",
    {},
    h("p", {}, h("a", { href: "#/dags" }, "← DAG runs")),
    h("h1", {}, `${run.name || "run"} `, badge(run.state), h("span", { class: "sub mono" }, ` ${short(run.id)}`)),
    h("p", { class: "sub" }, `${run.namespace}/${run.queue} · ${run.failure_policy} · ${run.steps_total} steps: ${counts(run.step_counts)} · created ${when(run.created_at)}`),
    actionButtons(run.actions, {
      cancel: ["Cancel run", () => act(`dags/${run.id}/cancel`, `Cancel run ${run.id}?`)],
      retry: ["Retry failed steps", () => act(`dags/${run.id}/retry`, `Run the steps of ${run.id} that did not succeed again?`)],
    }),
    h("div", { class: "graph-wrap" }, dagGraph(run.steps, { label: `Graph of run ${run.name || run.id}: ${counts(run.step_counts)}` })),
    h("ul", { class: "legend", "aria-label": "Legend" }, STATES.map((s) => h("li", {}, badge(s)))),
    h("h2", {}, "Steps"),
    run.steps_truncated ? h("p", { class: "note" }, `The first ${run.steps.length} of ${run.steps_total} steps; taskflow dag status ${run.id} lists them all.`) : null,
    table([["Step"], ["State"], ["After"], ["Handler"], ["Attempts", "num"], ["Ran", "num"], ["Error"]], steps, "No steps."),
  );
  view.dataset.title = `Run ${run.name || short(run.id)}`;
  return view;
}

// -- workers and schedules -----------------------------------------------------------------

async function renderWorkers() {
  const data = await api("workers");
  const rows = data.workers.map((w) => {
    const bar = h("span", { class: "bar", "aria-hidden": "true" }, h("span"));
    bar.firstChild.style.width = `${Math.min(100, (100 * w.in_flight) / Math.max(1, w.concurrency))}%`;
    return h(
      "tr",
      {},
      h("th", { scope: "row", class: "mono" }, w.name),
      h("td", {}, w.queues.join(", ")),
      h("td", {}, bar, `${w.in_flight} / ${w.concurrency}`),
      h("td", { class: "num" }, w.claimed),
      h("td", { class: "num" }, w.finished),
      h("td", { class: "num" }, w.abandoned),
      h("td", { class: "hide-narrow" }, timeCell(w.started_at)),
      h("td", {}, `${w.seen_seconds_ago.toFixed(0)}s ago`),
    );
  });
  return h(
    "section",
    {},
    h("h1", {}, "Workers", h("span", { class: "sub" }, ` · ${data.workers.length} alive`)),
    table(
      [["Worker"], ["Queues"], ["In flight"], ["Claimed", "num"], ["Finished", "num"], ["Abandoned", "num"], ["Started", "hide-narrow"], ["Last seen"]],
      rows,
      "No worker is running (taskflow worker --app MODULE:OBJ --queue Q).",
    ),
    data.stale_hidden ? h("p", { class: "note" }, `${data.stale_hidden} worker(s) stopped heartbeating and are not shown.`) : null,
  );
}

async function renderSchedules() {
  const data = await api(`schedules${query({ namespace: state.namespace, limit: 200 })}`);
  const rows = data.schedules.map((s) =>
    h(
      "tr",
      {},
      h("th", { scope: "row" }, s.name),
      h("td", { class: "mono" }, s.cron),
      h("td", {}, s.timezone),
      h("td", {}, s.kind === "dag" ? "DAG run" : `${s.queue || ""} · ${s.handler || ""}`),
      h("td", {}, s.concurrency_policy),
      h("td", {}, s.suspend ? "suspended" : s.next_fire_at ? h("time", { datetime: s.next_fire_at, title: when(s.next_fire_at) }, `${ago(s.next_fire_at)} (${when(s.next_fire_at)})`) : ""),
      h("td", {}, s.last_fire_at ? h("span", {}, timeCell(s.last_fire_at), s.last_task_id ? [" · ", h("a", { href: s.kind === "dag" ? `#/dags/${s.last_task_id}` : `#/tasks/${s.last_task_id}` }, short(s.last_task_id))] : null) : "never"),
      h("td", { class: "num" }, s.fire_count),
      h("td", { class: "num", title: s.last_skip_reason || "" }, s.skip_count),
    ),
  );
  return h(
    "section",
    {},
    h("h1", {}, "Schedules"),
    table([["Name"], ["Cron"], ["Time zone"], ["Fires"], ["Policy"], ["Next fire"], ["Last fire"], ["Fired", "num"], ["Skipped", "num"]], rows, "No schedules (taskflow schedules apply FILE)."),
  );
}

// -- start ---------------------------------------------------------------------------------

document.getElementById("search").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = document.getElementById("search-id");
  const id = input.value.trim();
  if (!id) return;
  const full = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i.test(id);
  if (full) {
    try {
      await api(`tasks/${encodeURIComponent(id)}`);
      location.hash = `#/tasks/${id}`;
      return;
    } catch (err) {
      if (!(err instanceof HttpError) || err.status !== 404) return setStatus(err.message, true);
    }
    try {
      await api(`dags/${encodeURIComponent(id)}`);
      location.hash = `#/dags/${id}`;
      return;
    } catch (err) {
      return setStatus(err instanceof HttpError && err.status === 404 ? `No task or run ${id}` : err.message, true);
    }
  }
  location.hash = `#/tasks?id=${encodeURIComponent(id)}`;
});

liveButton.addEventListener("click", () => {
  state.live = !state.live;
  liveButton.setAttribute("aria-pressed", String(state.live));
  liveButton.textContent = state.live ? "Live" : "Paused";
  refresh();
});

namespaceSelect.addEventListener("change", () => {
  state.namespace = namespaceSelect.value;
  sessionStorage.setItem("taskflow.namespace", state.namespace);
  refresh({ navigated: true });
});

document.addEventListener("visibilitychange", () => {
  if (!document.hidden && state.live) refresh();
});

window.addEventListener("hashchange", () => refresh({ navigated: true }));

(async () => {
  try {
    state.config = await api("config");
  } catch (err) {
    setStatus(`Could not reach the API: ${err.message}`, true);
  }
  await loadNamespaces();
  refresh({ navigated: false });
})();

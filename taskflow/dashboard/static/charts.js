// Inline SVG drawings of the dashboard: line charts of a queue's history and the graph of a
// DAG run (layered left to right, each step coloured by its state and labelled with it).

const SVG = "http://www.w3.org/2000/svg";

export const STATES = ["waiting", "scheduled", "queued", "running", "retrying", "succeeded", "failed", "cancelled", "skipped"];

// Fill and text colour per state: white text on each fill is at least 4.5:1 (WCAG AA).
const FILL = {
  waiting: "#6b21a8",
  scheduled: "#5b21b6",
  queued: "#1d4ed8",
  running: "#a16207",
  retrying: "#c2410c",
  succeeded: "#15803d",
  failed: "#b91c1c",
  cancelled: "#4b5563",
  skipped: "#e5e7eb",
};
const INK = { skipped: "#374151" };

function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value !== null && value !== undefined) el.setAttribute(key, String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function span(secondsTotal) {
  if (secondsTotal < 90) return `${Math.round(secondsTotal)}s`;
  return `${Math.round(secondsTotal / 60)}m`;
}

// The top of a chart's scale: a round number at or above ``value``; for counts, one whose
// half (the middle grid line) is a whole number too.
function niceMax(value, integer) {
  const steps = integer ? [2, 4, 6, 10] : [1, 2, 2.5, 5, 10];
  if (value <= 0) return integer ? 2 : 1;
  const p = 10 ** Math.floor(Math.log10(value));
  const unit = integer ? Math.max(p, 1) : p;
  for (const m of steps) if (value <= m * unit) return m * unit;
  return 10 * unit;
}

/** A line chart of ``values`` ([[unix seconds, value], ...], oldest first). */
export function lineChart(values, { label, color, format, max, integer = false }) {
  const W = 260;
  const H = 112;
  const left = 40;
  const right = 254;
  const top = 8;
  const bottom = 88;
  const latest = values.length ? values[values.length - 1][1] : 0;
  const peak = values.reduce((m, [, v]) => Math.max(m, v), 0);
  const yMax = max !== undefined ? Math.min(max, niceMax(peak || max / 10, false)) : niceMax(peak, integer);
  const t0 = values.length ? values[0][0] : 0;
  const t1 = values.length ? values[values.length - 1][0] : 1;
  const x = (t) => (t1 === t0 ? right : left + ((t - t0) / (t1 - t0)) * (right - left));
  const y = (v) => bottom - (Math.min(v, yMax) / yMax) * (bottom - top);
  const summary = values.length
    ? `${label}: now ${format(latest)}, peak ${format(peak)} over the last ${span(t1 - t0)}`
    : `${label}: no samples yet`;
  const svg = s("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": summary }, s("title", {}, summary));
  for (const v of [0, yMax / 2, yMax]) {
    svg.append(
      s("line", { class: "grid", x1: left, x2: right, y1: y(v), y2: y(v) }),
      s("text", { class: "axis", x: left - 4, y: y(v) + 3, "text-anchor": "end" }, format(v)),
    );
  }
  if (!values.length) {
    svg.append(s("text", { class: "axis", x: (left + right) / 2, y: (top + bottom) / 2, "text-anchor": "middle" }, "collecting samples…"));
    return svg;
  }
  const pts = values.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`);
  svg.append(
    s("polygon", { class: "area", fill: color, points: `${x(t0).toFixed(1)},${bottom} ${pts.join(" ")} ${x(t1).toFixed(1)},${bottom}` }),
    s("polyline", { class: "line", stroke: color, points: pts.join(" ") }),
    s("text", { class: "axis", x: left, y: H - 6 }, `−${span(t1 - t0)}`),
    s("text", { class: "axis", x: right, y: H - 6, "text-anchor": "end" }, "now"),
  );
  return svg;
}

/** Each step's layer: the length of the longest path from a step without parents. */
function layers(steps) {
  const byName = new Map(steps.map((st) => [st.name, st]));
  const depth = new Map();
  const visit = (name) => {
    if (depth.has(name)) return depth.get(name);
    depth.set(name, 0); // a cycle cannot happen (checked at submission); this guards anyway
    const st = byName.get(name);
    const d = st && st.depends_on.length ? 1 + Math.max(...st.depends_on.filter((p) => byName.has(p)).map(visit), -1) : 0;
    depth.set(name, d);
    return d;
  };
  steps.forEach((st) => visit(st.name));
  return depth;
}

const MAX_DRAWN = 400;

/** The graph of a run's steps (``{name, state, depends_on, task_id}``). */
export function dagGraph(steps, { label }) {
  const drawn = steps.slice(0, MAX_DRAWN);
  const depth = layers(drawn);
  const columns = [];
  for (const st of drawn) (columns[depth.get(st.name)] ||= []).push(st);
  // Order each column by the mean row of its parents (one downward sweep): fewer crossings.
  const row = new Map();
  columns.forEach((column) => {
    column.forEach((st, i) => {
      const parents = st.depends_on.filter((p) => row.has(p)).map((p) => row.get(p));
      st._key = parents.length ? parents.reduce((a, b) => a + b, 0) / parents.length : i;
    });
    column.sort((a, b) => a._key - b._key);
    column.forEach((st, i) => row.set(st.name, i));
  });
  const NW = 156;
  const NH = 46;
  const GX = 64;
  const GY = 18;
  const PAD = 12;
  const tallest = Math.max(1, ...columns.map((c) => c.length));
  const width = PAD * 2 + columns.length * NW + Math.max(0, columns.length - 1) * GX;
  const height = PAD * 2 + tallest * NH + (tallest - 1) * GY;
  const pos = new Map();
  columns.forEach((column, ci) => {
    const offset = ((tallest - column.length) * (NH + GY)) / 2;
    column.forEach((st, ri) => pos.set(st.name, { x: PAD + ci * (NW + GX), y: PAD + offset + ri * (NH + GY) }));
  });
  const svg = s("svg", { class: "graph", width, height, viewBox: `0 0 ${width} ${height}`, role: "group", "aria-label": label });
  const markerId = `arrow-${Math.random().toString(36).slice(2, 8)}`;
  svg.append(
    s("title", {}, label),
    s("defs", {}, s("marker", { id: markerId, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" }, s("path", { d: "M0,0 L10,5 L0,10 z", fill: "#6b7280" }))),
  );
  const edges = s("g", { "aria-hidden": "true" });
  for (const st of drawn) {
    const to = pos.get(st.name);
    for (const parent of st.depends_on) {
      const from = pos.get(parent);
      if (!from) continue;
      const x1 = from.x + NW;
      const y1 = from.y + NH / 2;
      const x2 = to.x - 2;
      const y2 = to.y + NH / 2;
      const mid = (x1 + x2) / 2;
      edges.append(s("path", { class: "edge", d: `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}`, "marker-end": `url(#${markerId})` }));
    }
  }
  svg.append(edges);
  for (const st of drawn) {
    const p = pos.get(st.name);
    const name = st.name.length > 20 ? `${st.name.slice(0, 19)}…` : st.name;
    const after = st.depends_on.length ? `, after ${st.depends_on.join(", ")}` : "";
    const ink = INK[st.state] || "#ffffff";
    svg.append(
      s(
        "a",
        { href: `#/tasks/${st.task_id}`, class: `node ${st.state}`, "aria-label": `step ${st.name}: ${st.state}${after}`, "data-step": st.name, "data-state": st.state },
        s("title", {}, `${st.name}: ${st.state}`),
        s("rect", { x: p.x, y: p.y, width: NW, height: NH, rx: 8, fill: FILL[st.state] || "#4b5563" }),
        s("text", { x: p.x + 10, y: p.y + 19, fill: ink, "font-weight": 600 }, name),
        s("text", { x: p.x + 10, y: p.y + 36, fill: ink }, st.state),
      ),
    );
  }
  const wrap = document.createElement("div");
  wrap.append(svg);
  if (steps.length > MAX_DRAWN) {
    const note = document.createElement("p");
    note.className = "note";
    note.textContent = `The graph shows the first ${MAX_DRAWN} of ${steps.length} steps; the table below lists them all.`;
    wrap.append(note);
  }
  return wrap;
}

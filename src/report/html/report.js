"use strict";
// runner report: the table, curves and sweep plots of report.html, drawn from the JSON in
// #report-data. Plain DOM, canvas and SVG; no libraries, no network.

const D = JSON.parse(document.getElementById("report-data").textContent);
// Tableau 20, as `runner plot` uses: distinct colours for 20 groups.
const COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
  "#7f7f7f", "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5",
  "#c49c94", "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5"];
const SVG = "http://www.w3.org/2000/svg";
const state = { sort: null, desc: false, filter: "", selected: null, smoothing: 0.6 };
const colour = (g) => COLOURS[g % COLOURS.length];

// ---- formatting -------------------------------------------------------------------------
function fmt(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return "";
  if (typeof v !== "number") return String(v);
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-3) return Number(v.toPrecision(3)).toExponential();
  return String(Number(v.toPrecision(4)));
}
// Accuracies are fractions in the data (as in every --json output) and percentages on screen.
const percent = (v) => (v === null || v === undefined ? "" : (100 * v).toFixed(2) + "%");
const METRIC_COLUMNS = [
  ["test_accuracy", "test acc", "%"], ["best_test_accuracy", "best acc", "%"],
  ["val_accuracy", "val acc", "%"], ["test_loss", "test loss", ""],
  ["val_loss", "val loss", ""], ["train_loss", "train loss", ""], ["ms_per_step", "ms/step", ""],
];

// ---- the runs table ---------------------------------------------------------------------
function columns() {
  const cols = [
    { id: "run", label: "run", get: (r) => r.id },
    { id: "status", label: "status", get: (r) => r.status },
    { id: "steps", label: "steps", get: (r) => r.steps_done, num: true,
      show: (r) => `${r.steps_done}/${r.steps}` },
  ];
  for (const k of D.keys) {
    cols.push({ id: k, label: k, get: (r) => asValue(r.config[k]), show: (r) => r.config[k] });
  }
  for (const [name, label, unit] of METRIC_COLUMNS) {
    if (!D.runs.some((r) => r.metrics[name] !== undefined)) continue;
    cols.push({ id: name, label, num: true, get: (r) => r.metrics[name],
      show: (r) => r.metrics[name] === undefined ? "" : unit ? percent(r.metrics[name]) : fmt(r.metrics[name]) });
  }
  if (D.runs.some((r) => Object.keys(r.tags).length)) {
    cols.push({ id: "tags", label: "tags",
      get: (r) => Object.entries(r.tags).map(([k, v]) => `${k}=${v}`).join(" ") });
  }
  return cols;
}
function asValue(text) {
  if (text === undefined || text === "-") return null;
  const n = Number(text);
  return text !== "" && Number.isFinite(n) ? n : text;
}
const COLS = columns();

function buildTable() {
  const head = document.querySelector("#runs thead");
  const tr = document.createElement("tr");
  for (const c of COLS) {
    const th = document.createElement("th");
    th.textContent = c.label;
    th.dataset.col = c.id;
    th.addEventListener("click", () => {
      if (state.sort === c.id) state.desc = !state.desc;
      else { state.sort = c.id; state.desc = false; }
      saveHash();
      renderTable();
    });
    tr.appendChild(th);
  }
  head.appendChild(tr);
  const body = document.querySelector("#runs tbody");
  D.runs.forEach((r, i) => {
    const row = document.createElement("tr");
    row.dataset.run = r.id;
    row.dataset.index = i;
    COLS.forEach((c, j) => {
      const td = document.createElement("td");
      const text = c.show ? c.show(r) : String(c.get(r) ?? "");
      if (j === 0) {
        const sw = document.createElement("span");
        sw.className = "swatch";
        sw.style.background = colour(r.group);
        td.appendChild(sw);
      }
      td.appendChild(document.createTextNode(text));
      if (c.num) td.className = "num";
      if (c.id === "status") td.className = "status-" + r.status;
      row.appendChild(td);
    });
    row.addEventListener("click", () => select(r.group));
    r.text = COLS.map((c) => (c.show ? c.show(r) : String(c.get(r) ?? ""))).join(" ").toLowerCase();
    r.row = row;
    body.appendChild(row);
  });
}

function compareValues(a, b) {
  if (a === null || a === undefined) return b === null || b === undefined ? 0 : 1;
  if (b === null || b === undefined) return -1;
  if (typeof a === "number" && typeof b === "number") return a - b;
  return String(a).localeCompare(String(b), undefined, { numeric: true });
}

function renderTable() {
  const body = document.querySelector("#runs tbody");
  let order = D.runs.map((_, i) => i);
  const col = COLS.find((c) => c.id === state.sort);
  if (col) {
    order.sort((i, j) => {
      const a = col.get(D.runs[i]), b = col.get(D.runs[j]);
      const missing = (a === null || a === undefined) - (b === null || b === undefined);
      if (missing) return missing; // missing values last in either direction
      const c = compareValues(a, b);
      return (state.desc ? -c : c) || i - j;
    });
  }
  const f = state.filter.toLowerCase();
  let shown = 0;
  for (const i of order) {
    const r = D.runs[i];
    r.visible = !f || r.text.includes(f);
    r.row.hidden = !r.visible;
    r.row.classList.toggle("selected", state.selected === r.group);
    shown += r.visible;
    body.appendChild(r.row);
  }
  document.querySelectorAll("#runs th").forEach((th) => {
    th.classList.toggle("sorted", th.dataset.col === state.sort);
    th.classList.toggle("desc", th.dataset.col === state.sort && state.desc);
  });
  const running = D.runs.filter((r) => r.status === "running").length;
  document.getElementById("shown").textContent =
    `${shown} of ${D.runs.length} runs shown` + (running ? `, ${running} running` : "");
  drawCurves();
  drawSweep();
}

function select(group) {
  state.selected = state.selected === group ? null : group;
  renderTable();
}

// ---- the URL fragment: sort, direction and filter, so a view can be linked ----------------
function loadHash() {
  const p = new URLSearchParams(location.hash.slice(1));
  if (p.has("sort") && COLS.some((c) => c.id === p.get("sort"))) {
    state.sort = p.get("sort");
    state.desc = p.get("desc") === "1";
  } else if (COLS.some((c) => c.id === D.metric.name)) {
    // By default, best first by the report's metric (a sweep's own, when it is a sweep).
    state.sort = D.metric.name;
    state.desc = D.metric.maximize;
  }
  state.filter = p.get("filter") || "";
  document.getElementById("filter").value = state.filter;
}
function saveHash() {
  const p = new URLSearchParams();
  if (state.sort) p.set("sort", state.sort);
  if (state.desc) p.set("desc", "1");
  if (state.filter) p.set("filter", state.filter);
  history.replaceState(null, "", "#" + p.toString());
}

// ---- curves -----------------------------------------------------------------------------
const PANELS = [
  { id: "loss", title: "Training loss", series: [["loss", false]], x: "x", log: "log-loss" },
  { id: "eval-loss", title: "Test loss (validation dashed)",
    series: [["test_loss", false], ["val_loss", true]], x: "ex", log: "log-loss" },
  { id: "accuracy", title: "Test accuracy, % (validation dashed)",
    series: [["test_accuracy", false], ["val_accuracy", true]], x: "ex", scale: 100 },
  { id: "lr", title: "Learning rate", series: [["lr", false]], x: "x", log: "log-lr" },
];

function ema(ys, w) {
  let last = null;
  return ys.map((y) => {
    if (y === null) return null;
    last = last === null ? y : w * last + (1 - w) * y;
    return last;
  });
}

// One drawn line per group of visible runs: the run's own series, or the mean of the group's
// runs at each step with the min and max around it.
function groupCurves(panel) {
  const out = [];
  D.groups.forEach((g, gi) => {
    const members = g.runs.map((i) => D.runs[i]).filter((r) => r.visible);
    if (!members.length) return;
    for (const [name, dashed] of panel.series) {
      const per = members
        .map((r) => {
          let ys = r.curves[name];
          if (!ys) return null;
          if (panel.scale) ys = ys.map((y) => (y === null ? null : y * panel.scale));
          if (name === "loss") ys = ema(ys, state.smoothing);
          return { xs: r.curves[panel.x], ys };
        })
        .filter(Boolean);
      if (!per.length) continue;
      const at = new Map();
      for (const c of per) {
        c.xs.forEach((x, k) => {
          const y = c.ys[k];
          if (y === null || !Number.isFinite(y)) return;
          if (!at.has(x)) at.set(x, []);
          at.get(x).push(y);
        });
      }
      const xs = [...at.keys()].sort((a, b) => a - b);
      const pts = xs.map((x) => {
        const v = at.get(x);
        return [x, v.reduce((s, y) => s + y, 0) / v.length, Math.min(...v), Math.max(...v)];
      });
      if (pts.length) out.push({ group: gi, dashed, band: per.length > 1, pts });
    }
  });
  return out;
}

function niceTicks(lo, hi, count) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => (hi - lo) / s <= count) || 10 * mag;
  const ticks = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) {
    ticks.push(Number(t.toPrecision(12)));
  }
  return ticks;
}
function logTicks(lo, hi) {
  const ticks = [];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
    for (const m of hi / lo < 100 ? [1, 2, 5] : [1]) {
      const t = m * Math.pow(10, e);
      if (t >= lo * 0.999 && t <= hi * 1.001) ticks.push(Number(t.toPrecision(12)));
    }
  }
  return ticks.length >= 2 ? ticks : niceTicks(lo, hi, 5);
}

const drawn = {}; // per panel: its curves and scales, for hover and click

function drawPanel(panel, canvas) {
  const curves = groupCurves(panel);
  canvas.dataset.curves = curves.length;
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || 460, h = canvas.clientHeight || 280;
  canvas.width = Math.round(w * dpr);
  canvas.height = Math.round(h * dpr);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const box = { l: 58, r: 24, t: 10, b: 36 };
  const log = panel.log && document.getElementById(panel.log).checked;
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (const c of curves) {
    for (const [x, , lo, hi] of c.pts) {
      if (log && lo <= 0) continue;
      x0 = Math.min(x0, x); x1 = Math.max(x1, x);
      y0 = Math.min(y0, lo); y1 = Math.max(y1, hi);
    }
  }
  ctx.font = "11px system-ui, sans-serif";
  ctx.fillStyle = "#5f6b7a";
  if (!Number.isFinite(x0)) {
    ctx.fillText("no data", w / 2 - 20, h / 2);
    drawn[panel.id] = null;
    return;
  }
  if (x1 === x0) x1 = x0 + 1;
  if (y1 === y0) { y0 -= Math.abs(y0) * 0.05 || 1; y1 += Math.abs(y1) * 0.05 || 1; }
  const fy = log ? Math.log10 : (v) => v;
  const Y0 = fy(y0), Y1 = fy(y1);
  const sx = (x) => box.l + ((x - x0) / (x1 - x0)) * (w - box.l - box.r);
  const sy = (y) => h - box.b - ((fy(y) - Y0) / (Y1 - Y0)) * (h - box.t - box.b);
  // Axes and grid.
  ctx.strokeStyle = "#e6e9ee";
  ctx.lineWidth = 1;
  ctx.textAlign = "right";
  for (const t of log ? logTicks(y0, y1) : niceTicks(y0, y1, 5)) {
    const y = sy(t);
    ctx.beginPath(); ctx.moveTo(box.l, y); ctx.lineTo(w - box.r, y); ctx.stroke();
    ctx.fillText(fmt(t), box.l - 4, y + 4);
  }
  ctx.textAlign = "center";
  for (const t of niceTicks(x0, x1, 6)) {
    const x = sx(t);
    ctx.beginPath(); ctx.moveTo(x, box.t); ctx.lineTo(x, h - box.b); ctx.stroke();
    ctx.fillText(fmt(t), x, h - box.b + 14);
  }
  ctx.fillText("step", (box.l + w - box.r) / 2, h - 4);
  // Curves: the selected group last and thick, the others faded while one is selected.
  const order = curves.slice().sort((a, b) => (a.group === state.selected) - (b.group === state.selected));
  const ok = (p) => !log || p[2] > 0;
  for (const c of order) {
    const faded = state.selected !== null && c.group !== state.selected;
    const col = colour(c.group);
    const pts = c.pts.filter(ok);
    if (c.band) {
      ctx.globalAlpha = faded ? 0.04 : 0.18;
      ctx.fillStyle = col;
      ctx.beginPath();
      pts.forEach((p, k) => (k ? ctx.lineTo(sx(p[0]), sy(p[3])) : ctx.moveTo(sx(p[0]), sy(p[3]))));
      for (let k = pts.length - 1; k >= 0; k--) ctx.lineTo(sx(pts[k][0]), sy(Math.max(pts[k][2], log ? y0 : -Infinity)));
      ctx.closePath();
      ctx.fill();
    }
    ctx.globalAlpha = faded ? 0.2 : 1;
    ctx.strokeStyle = col;
    ctx.lineWidth = c.group === state.selected ? 3 : 1.4;
    ctx.setLineDash(c.dashed ? [5, 4] : []);
    ctx.beginPath();
    pts.forEach((p, k) => (k ? ctx.lineTo(sx(p[0]), sy(p[1])) : ctx.moveTo(sx(p[0]), sy(p[1]))));
    if (pts.length === 1) ctx.arc(sx(pts[0][0]), sy(pts[0][1]), 2, 0, 2 * Math.PI);
    ctx.stroke();
    ctx.setLineDash([]);
  }
  ctx.globalAlpha = 1;
  drawn[panel.id] = { curves, sx, sy, log };
}

function drawCurves() {
  for (const panel of PANELS) drawPanel(panel, document.querySelector(`canvas[data-panel="${panel.id}"]`));
}

// The drawn point nearest the mouse, within 12 px.
function nearest(panelId, mx, my) {
  const d = drawn[panelId];
  if (!d) return null;
  let best = null, bestDist = 144;
  for (const c of d.curves) {
    const pts = c.pts;
    let lo = 0, hi = pts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (d.sx(pts[mid][0]) < mx) lo = mid + 1; else hi = mid;
    }
    for (const k of [lo - 1, lo]) {
      const p = pts[k];
      if (!p || (d.log && p[1] <= 0)) continue;
      const dx = d.sx(p[0]) - mx, dy = d.sy(p[1]) - my, dist = dx * dx + dy * dy;
      if (dist < bestDist) { bestDist = dist; best = { c, p }; }
    }
  }
  return best;
}

function buildPanels() {
  const root = document.getElementById("panels");
  const tip = document.getElementById("tooltip");
  for (const panel of PANELS) {
    const div = document.createElement("div");
    div.className = "panel";
    const h = document.createElement("h3");
    h.textContent = panel.title;
    const canvas = document.createElement("canvas");
    canvas.dataset.panel = panel.id;
    div.append(h, canvas);
    root.appendChild(div);
    const at = (e) => {
      const r = canvas.getBoundingClientRect();
      return nearest(panel.id, e.clientX - r.left, e.clientY - r.top);
    };
    canvas.addEventListener("mousemove", (e) => {
      const hit = at(e);
      if (!hit) { tip.hidden = true; return; }
      const g = D.groups[hit.c.group];
      const range = hit.c.band ? ` (min ${fmt(hit.p[2])}, max ${fmt(hit.p[3])})` : "";
      tip.textContent = `${g.label}: step ${hit.p[0]}, ${fmt(hit.p[1])}${range}`;
      tip.style.left = e.clientX + 14 + "px";
      tip.style.top = e.clientY + 10 + "px";
      tip.hidden = false;
    });
    canvas.addEventListener("mouseleave", () => { tip.hidden = true; });
    canvas.addEventListener("click", (e) => {
      const hit = at(e);
      if (!hit) return;
      select(hit.c.group);
      const row = D.runs[D.groups[hit.c.group].runs[0]].row;
      if (row.scrollIntoView) row.scrollIntoView({ block: "nearest" });
    });
  }
  const groups = D.groups.length;
  if (groups > COLOURS.length) {
    document.getElementById("colour-note").textContent =
      `${groups} groups share ${COLOURS.length} colours: hover or click a curve to tell them apart.`;
  }
}

// ---- sweep plots: parallel coordinates and one scatter per key against the metric --------
function el(name, attrs, parent) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
}

// A scale for one key: numeric (log when positive over 10x or more) or categorical.
function scaleFor(values) {
  const present = values.filter((v) => v !== null && v !== undefined);
  const numeric = present.length && present.every((v) => typeof v === "number");
  if (numeric) {
    let lo = Math.min(...present), hi = Math.max(...present);
    const log = lo > 0 && hi / lo >= 10;
    if (hi === lo) { lo -= 1; hi += 1; }
    const f = log ? Math.log10 : (v) => v;
    const ticks = log ? logTicks(lo, hi) : niceTicks(lo, hi, 4);
    return { pos: (v) => (v === null || v === undefined ? null : (f(v) - f(lo)) / (f(hi) - f(lo))),
      ticks: ticks.map((t) => [t, fmt(t)]), log };
  }
  const cats = [...new Set(present.map(String))].sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
  const pos = (v) => (v === null || v === undefined ? null
    : cats.length === 1 ? 0.5 : cats.indexOf(String(v)) / (cats.length - 1));
  return { pos, ticks: cats.map((c) => [c, c]), cats };
}

function metricColour(t) {
  // Light to dark blue: better runs darker.
  const a = [198, 219, 239], b = [8, 48, 107];
  const c = a.map((x, i) => Math.round(x + (b[i] - x) * t));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

function sweepAxes() {
  const axes = D.axes.map((k) => ({ key: k, label: k, get: (r) => asValue(r.config[k]) }));
  const pct = D.metric.name.endsWith("accuracy");
  const value = (r) => r.metrics[D.metric.name];
  axes.push({ key: D.metric.name, label: D.metric.label + (pct ? " (%)" : ""), metric: true,
    get: (r) => (value(r) === undefined ? null : pct ? 100 * value(r) : value(r)) });
  for (const a of axes) a.scale = scaleFor(D.runs.map(a.get));
  return axes;
}

function drawSweep() {
  if (!D.axes.length || D.runs.length < 2) return;
  const section = document.getElementById("sweep-section");
  section.hidden = false;
  document.getElementById("sweep-title").textContent =
    (D.sweep ? `Sweep ${D.sweep}: ` : "") + `${D.axes.join(", ")} against ${D.metric.label}` +
    " (darker: better; dashed: stopped early; grey: no value yet)";
  const axes = sweepAxes();
  const metric = axes[axes.length - 1];
  const quality = (r) => {
    const p = metric.scale.pos(metric.get(r));
    return p === null ? null : D.metric.maximize ? p : 1 - p;
  };
  // Parallel coordinates.
  const svg = document.getElementById("parallel");
  svg.textContent = "";
  const W = svg.clientWidth || 900, H = svg.clientHeight || 340, top = 40, bottom = 24;
  const xOf = (i) => 70 + (i * (W - 160)) / Math.max(1, axes.length - 1);
  const yOf = (p) => (p === null ? H - 8 : top + (1 - p) * (H - top - bottom));
  const lines = el("g", { class: "lines" }, svg);
  const visible = D.runs.filter((r) => r.visible);
  // Worse runs first, so the best lie on top.
  visible.sort((a, b) => (quality(a) ?? -1) - (quality(b) ?? -1));
  for (const r of visible) {
    const q = quality(r);
    const d = axes.map((a, i) => `${i ? "L" : "M"}${xOf(i).toFixed(1)},${yOf(a.scale.pos(a.get(r))).toFixed(1)}`).join("");
    const path = el("path", { d, stroke: q === null ? "#c7c7c7" : metricColour(q), "data-run": r.id }, lines);
    if (r.status === "pruned") path.classList.add("pruned");
    if (state.selected === r.group) path.classList.add("selected");
    const title = el("title", {}, path);
    title.textContent = `${r.id} (${r.status}): ${fmt(metric.get(r))}`;
    path.addEventListener("click", () => select(r.group));
  }
  axes.forEach((a, i) => {
    const g = el("g", { class: "axis pc-axis", "data-key": a.key, transform: `translate(${xOf(i)},0)` }, svg);
    el("line", { x1: 0, x2: 0, y1: top, y2: H - bottom }, g);
    const t = el("text", { x: 0, y: 16, "text-anchor": "middle", class: "axis-title" }, g);
    t.textContent = a.label + (a.scale.log ? " (log)" : "");
    for (const [v, label] of a.scale.ticks) {
      const y = yOf(a.scale.pos(v));
      el("line", { x1: -4, x2: 0, y1: y, y2: y }, g);
      const tt = el("text", { x: -7, y: y + 4, "text-anchor": "end" }, g);
      tt.textContent = label;
    }
  });
  // Scatters.
  const root = document.getElementById("scatters");
  root.textContent = "";
  for (const a of axes.slice(0, -1)) {
    const s = el("svg", { class: "scatter", "data-key": a.key, viewBox: "0 0 300 220" }, root);
    const x = (p) => 50 + p * 230, y = (p) => 190 - p * 170;
    const axisX = el("g", { class: "axis" }, s);
    el("line", { x1: 50, x2: 280, y1: 195, y2: 195 }, axisX);
    for (const [v, label] of a.scale.ticks.slice(0, 8)) {
      const tt = el("text", { x: x(a.scale.pos(v)), y: 208, "text-anchor": "middle" }, axisX);
      tt.textContent = label;
    }
    const title = el("text", { x: 165, y: 219, "text-anchor": "middle", class: "axis-title" }, axisX);
    title.textContent = a.label + (a.scale.log ? " (log)" : "");
    const axisY = el("g", { class: "axis" }, s);
    el("line", { x1: 45, x2: 45, y1: 20, y2: 190 }, axisY);
    for (const [v, label] of metric.scale.ticks) {
      const tt = el("text", { x: 42, y: y(metric.scale.pos(v)) + 4, "text-anchor": "end" }, axisY);
      tt.textContent = label;
    }
    const my = el("text", { x: 48, y: 12 }, axisY);
    my.textContent = D.metric.label;
    for (const r of visible) {
      const px = a.scale.pos(a.get(r)), py = metric.scale.pos(metric.get(r));
      if (px === null || py === null) continue;
      // Categorical keys: spread the points of one category a little, the same way each time.
      const jitter = a.scale.cats ? ((r.group * 37) % 11 - 5) * 1.2 : 0;
      const c = el("circle", { cx: x(px) + jitter, cy: y(py), r: state.selected === r.group ? 5 : 3.2,
        fill: colour(r.group), stroke: colour(r.group), "data-run": r.id }, s);
      if (r.status === "pruned") c.classList.add("pruned");
      const t = el("title", {}, c);
      t.textContent = `${r.id} (${r.status}): ${a.key}=${r.config[a.key]}, ${fmt(metric.get(r))}`;
      c.addEventListener("click", () => select(r.group));
    }
  }
}

// ---- start ------------------------------------------------------------------------------
function start() {
  const running = D.runs.filter((r) => r.status === "running").length;
  document.getElementById("about").textContent =
    `${D.runs.length} runs in ${D.groups.length} groups` + (running ? ` (${running} still running when made)` : "") +
    `. Made ${D.made_at} by runner ${D.version}: ${D.source}`;
  const slider = document.getElementById("smoothing");
  const showSmoothing = () => { document.getElementById("smoothing-value").textContent = state.smoothing.toFixed(2); };
  slider.addEventListener("input", () => { state.smoothing = Number(slider.value); showSmoothing(); drawCurves(); });
  showSmoothing();
  for (const id of ["log-loss", "log-lr"]) document.getElementById(id).addEventListener("change", drawCurves);
  document.getElementById("filter").addEventListener("input", (e) => {
    state.filter = e.target.value;
    saveHash();
    renderTable();
  });
  window.addEventListener("resize", () => { drawCurves(); drawSweep(); });
  buildTable();
  buildPanels();
  loadHash();
  renderTable();
  document.body.dataset.ready = "1";
  // Milliseconds from navigation to the first complete drawing (what the tests and notes time).
  document.body.dataset.renderMs = Math.round(performance.now());
}
start();

// Runs: the list (pick several to compare), one run's curves and spec, and the
// comparison page (final metrics side by side plus overlaid curves per metric).

import { get } from "./api.js";
import { COLORS, curves, overlay } from "./charts.js";
import { ago, badge, errorBox, fmt, h, link, section, table } from "./dom.js";
import { modelLink } from "./jobs.js";

function testMetric(run, key) {
  const test = (run.summary && run.summary.test) || {};
  return test[key];
}

export async function listView(el) {
  const { runs } = await get("/v1/runs?limit=100");
  const chosen = new Set();
  const compare = h("button", { id: "compare-runs", disabled: true, onclick: () => {
    location.hash = `#/compare/${[...chosen].join(",")}`;
  } }, "Compare selected");
  const pick = (run) => h("input", { type: "checkbox", class: "pick", dataset: { run: run.id }, onchange: (event) => {
    if (event.target.checked) chosen.add(run.id); else chosen.delete(run.id);
    compare.disabled = chosen.size < 1;
    compare.textContent = `Compare selected (${chosen.size})`;
  } });
  el.append(h("h1", {}, "Runs"), section("Training runs", h("div", { class: "actions" }, compare), table([
    { label: "", cell: pick },
    { label: "Run", cell: (r) => link(`#/runs/${r.id}`, r.id) },
    { label: "Name", cell: (r) => r.name },
    { label: "Status", cell: (r) => badge(r.status) },
    { label: "Epochs", cell: (r) => r.epochs },
    { label: "Test accuracy", class: "num", cell: (r) => fmt(testMetric(r, "accuracy")) },
    { label: "Test loss", class: "num", cell: (r) => fmt(testMetric(r, "loss")) },
    { label: "Duration", class: "num", cell: (r) => (r.duration_s ? `${fmt(r.duration_s, 1)} s` : "–") },
    { label: "Created", cell: (r) => ago(r.created_at) },
    { label: "Model", cell: (r) => (r.model_ref ? modelLink(r.model_ref) : "–") },
  ], runs, { empty: "No runs yet: submit a job." })));
}

export async function detailView(el, id) {
  const run = await get(`/v1/runs/${id}`);
  el.append(h("h1", {}, `Run ${run.name} `, h("span", { class: "muted small" }, run.id)));
  const facts = [["Status", badge(run.status)], ["Created", ago(run.created_at)],
    ["Duration", run.duration_s ? `${fmt(run.duration_s, 1)} s` : "–"], ["Model", run.model_ref ? modelLink(run.model_ref) : "–"]];
  el.append(section("Summary", h("dl", { class: "facts" }, facts.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
    run.error ? errorBox(run.error) : null, metricsTable([{ label: run.id, run }])));
  const card = section("Learning curves");
  el.append(card);
  curves(card, run.name).update(run.history);
  el.append(section("Resolved spec", h("pre", { class: "code" }, JSON.stringify(run.spec, null, 2))));
}

function best(history, key) {
  const values = history.map((row) => row[key]).filter((v) => typeof v === "number");
  if (!values.length) return undefined;
  return key.includes("loss") ? Math.min(...values) : Math.max(...values);
}

// One row per run: test metrics, best validation values, epochs and duration.
export function metricsTable(items) {
  const testKeys = [];
  const valKeys = [];
  for (const { run } of items) {
    for (const [k, v] of Object.entries((run.summary && run.summary.test) || {})) if (typeof v === "number" && !testKeys.includes(k)) testKeys.push(k);
    for (const row of run.history || []) for (const k of Object.keys(row)) if (k.startsWith("val_") && !valKeys.includes(k)) valKeys.push(k);
  }
  return h("table", { class: "grid", id: "compare-table" },
    h("thead", {}, h("tr", {}, h("th", {}, "Run"), testKeys.map((k) => h("th", {}, `test ${k}`)), valKeys.map((k) => h("th", {}, `best ${k}`)),
      h("th", {}, "epochs"), h("th", {}, "duration"))),
    h("tbody", {}, items.map(({ label, run }, i) => h("tr", {},
      h("td", {}, h("span", { class: "swatch", style: `background:${COLORS[i % COLORS.length]}` }), " ", link(`#/runs/${run.id}`, label)),
      testKeys.map((k) => h("td", { class: "num" }, fmt(testMetric(run, k)))),
      valKeys.map((k) => h("td", { class: "num" }, fmt(best(run.history || [], k)))),
      h("td", { class: "num" }, (run.history || []).length),
      h("td", { class: "num" }, run.duration_s ? `${fmt(run.duration_s, 1)} s` : "–")))));
}

export async function compareView(el, ids) {
  const list = ids.split(",").filter(Boolean);
  el.append(h("h1", {}, `Compare ${list.length} run${list.length === 1 ? "" : "s"}`));
  const runs = [];
  for (const id of list) {
    try {
      runs.push(await get(`/v1/runs/${id}`));
    } catch (error) {
      el.append(errorBox(error));
    }
  }
  const items = runs.map((run) => ({ label: `${run.name} ${run.id.slice(-6)}`, run }));
  el.append(section("Metrics", metricsTable(items)));
  const card = section("Curves (one chart per metric, one line per run)");
  el.append(card);
  overlay(card, items.map(({ label, run }) => ({ label, history: run.history || [] })));
}

// Tunes: the studies in the store, and one study's trials, best so far, optimisation history
// (each completed trial's value and the best up to it) and parameter importances.

import { get } from "./api.js";
import { lineChart } from "./charts.js";
import { badge, fmt, h, link, section, table } from "./dom.js";
import { modelLink } from "./jobs.js";
import { STATUS } from "./status.js";

export async function listView(el) {
  const { studies } = await get("/v1/tunes");
  el.append(h("h1", {}, "Tunes"), section("Studies", table([
    { label: "Study", cell: (name) => link(`#/tunes/${encodeURIComponent(name)}`, name) },
  ], studies, { empty: "No tunes yet: modelyard tune SPEC --search PATH=DIST, or POST /v1/tunes." })));
}

function params(p) {
  return Object.entries(p || {}).map(([k, v]) => `${k}=${typeof v === "number" ? fmt(v, 4) : v}`).join(", ");
}

export async function detailView(el, name) {
  const study = await get(`/v1/tunes/${encodeURIComponent(name)}`);
  const best = study.best || {};
  el.append(h("h1", {}, `Tune ${study.study}`));
  const facts = [["Metric", `${study.metric} (${study.direction})`], ["Trials", `${study.trials.length} of ${study.config.trials}`],
    ["Epochs trained", study.epochs], ["Best trial", best.trial ?? "–"], ["Best value", fmt(best.value)],
    ["Best parameters", params(best.params) || "–"], ["Model", best.model_ref ? modelLink(best.model_ref) : "–"]];
  el.append(section("Summary", h("dl", { class: "facts" }, facts.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]))));
  const card = section("Optimisation history");
  el.append(card);
  const chart = lineChart(card, { title: `${study.metric} by trial`, xLabel: "trial",
    series: [{ label: "trial value" }, { label: "best so far", dash: [6, 3] }] });
  chart.update(study.history.map((p) => p.trial), [study.history.map((p) => p.value), study.history.map((p) => p.best)]);
  const importances = Object.entries(study.importances || {});
  el.append(section("Parameter importances (fANOVA)", table([
    { label: "Parameter", cell: ([k]) => k },
    { label: "Importance", class: "num", cell: ([, v]) => fmt(v, 3) },
  ], importances, { empty: "Needs two completed trials." })));
  const bestSoFar = new Map(study.history.map((p) => [p.trial, p.best]));
  let running;
  el.append(section("Trials", table([
    { label: "Trial", cell: (t) => t.number },
    { label: "State", cell: (t) => badge(t.state === "complete" ? STATUS.SUCCEEDED : t.state) },
    { label: "Value", class: "num", cell: (t) => fmt(t.value) },
    { label: "Best so far", class: "num", cell: (t) => { running = bestSoFar.get(t.number) ?? running; return fmt(running); } },
    { label: "Epochs", class: "num", cell: (t) => t.epochs },
    { label: "Run", cell: (t) => (t.run_id ? link(`#/runs/${t.run_id}`, t.run_id) : "–") },
    { label: "Parameters", cell: (t) => params(t.params) },
  ], study.trials, { empty: "No trial yet." })));
}

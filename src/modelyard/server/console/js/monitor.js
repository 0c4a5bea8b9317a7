// Monitor: the monitoring checks of a deployment's last window of logged requests
// (GET /v1/deployments/{name}/monitor?window=N&replica=I, one replica's request log): data
// quality, feature drift, output shift, live accuracy and the alerts. The last report shown is
// kept in `window.modelyard.monitor` for scripts and tests.

import { get } from "./api.js";
import { badge, errorBox, fmt, h, link, section, table } from "./dom.js";
import { modelLink } from "./jobs.js";

const SHOWN_FEATURES = 10; // the most drifted features listed, as `modelyard monitor` does
const monitored = (d) => (d.options.monitor_sample || 0) > 0;
const facts = (pairs) => h("dl", { class: "facts" }, pairs.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
const state = (alert) => h("span", { class: `badge check-${alert ? "alert" : "ok"}` }, alert ? "alert" : "pass");
const num = (v) => h("span", { class: "value" }, fmt(v));

export async function pickView(el) {
  const { deployments } = await get("/v1/deployments");
  el.append(h("h1", {}, "Monitor"), section("Pick a deployment", table([
    { label: "Deployment", cell: (d) => link(`#/monitor/${d.name}`, d.name) },
    { label: "Model", cell: (d) => modelLink(d.model) },
    { label: "Status", cell: (d) => badge(d.status) },
    { label: "Monitoring", cell: (d) => (monitored(d)
      ? `${fmt(100 * d.options.monitor_sample, 1)} % of requests logged, checks of ${d.options.monitor_window}`
      : "off (deploy with a monitor sample above 0)") },
  ], deployments, { empty: "No deployments yet: deploy a model version with monitoring first." })));
}

// One row per check: [key, check, value, threshold, alert (true/false, null: no alert for it)].
function checkRows(r) {
  const s = r.schema;
  if (!s.ok) {
    return [["schema", "schema", `${s.received_features} features, ${s.received_outputs} outputs`,
      `${s.expected_features} features, ${s.expected_outputs} outputs`, true]];
  }
  const q = r.quality, f = r.features, o = r.outputs;
  return [
    ["schema", "schema", `${s.features} features, ${s.outputs} outputs`, "the reference's", false],
    ["missing", "missing values (NaN)", num(q.missing_rate), "a feature's training NaN rate", q.missing_features.length > 0],
    ["out_of_range", "out of the training range", num(q.out_of_range_rate), ["> ", num(q.out_of_range_alert)],
      q.out_of_range_rate > q.out_of_range_alert],
    ["feature_drift", `feature drift (${f.test}, ${f.correction})`, `${f.drifted_features.length} of ${f.per_feature.length} features`,
      ["p < α = ", num(f.alpha)], f.drift],
    ["max_psi", "largest PSI", num(f.max_psi), "–", null],
    ["output_shift", `output shift (${o.test}, ${o.correction})`, ["p = ", num(o.p_value)], ["p < α = ", num(o.alpha)], o.drift],
    ["accuracy", "live accuracy", [num(r.accuracy.accuracy), ` (${r.accuracy.labelled} labelled)`], "–", null],
  ];
}

function reportView(r, replica) {
  const checks = table([
    { label: "Check", cell: (c) => c[1] },
    { label: "Value", class: "num", cell: (c) => c[2] },
    { label: "Threshold", class: "num", cell: (c) => c[3] },
    { label: "State", cell: (c) => (c[4] === null ? "–" : state(c[4])) },
  ], checkRows(r), { rowAttrs: (c) => ({ dataset: { check: c[0] } }) });
  checks.id = "monitor-checks";
  const summary = facts([["Model", modelLink(r.ref)], ["Replica", String(replica)], ["Window", `${r.window} instances`],
    ["Logged", `${r.logged} instances (${fmt(100 * r.sample, 1)} % of requests)`],
    ["Latency p50 / p95", `${fmt(1000 * r.latency_s.p50, 2)} / ${fmt(1000 * r.latency_s.p95, 2)} ms`],
    ["Live accuracy", h("span", { id: "monitor-accuracy" }, fmt(r.accuracy.accuracy))],
    ["Labelled", h("span", { id: "monitor-labelled" }, String(r.accuracy.labelled))],
    ["Alerts", r.alerts.length ? h("span", { class: "badge check-alert" }, String(r.alerts.length)) : "none"]]);
  const parts = [section("Last window", summary), section("Checks", checks)];
  if (r.schema.ok) {
    const rows = [...r.features.per_feature].sort((a, b) => a.ks_p_holm - b.ks_p_holm).slice(0, SHOWN_FEATURES);
    const drifted = new Set(r.features.drifted_features);
    const features = table([
      { label: "Feature", cell: (f) => String(f.feature) },
      { label: "KS p (Holm)", class: "num", cell: (f) => num(f.ks_p_holm) },
      { label: "KS p", class: "num", cell: (f) => num(f.ks_p) },
      { label: "χ² p", class: "num", cell: (f) => num(f.chi2_p) },
      { label: "PSI", class: "num", cell: (f) => num(f.psi) },
      { label: "Wasserstein", class: "num", cell: (f) => num(f.wasserstein) },
      { label: "Drifted", cell: (f) => state(drifted.has(f.feature)) },
    ], rows, { rowAttrs: (f) => ({ dataset: { feature: String(f.feature) } }) });
    features.id = "monitor-features";
    parts.push(section(`Most drifted features (${rows.length} of ${r.features.per_feature.length}, by KS p after Holm)`, features));
  }
  parts.push(section("Alerts", r.alerts.length
    ? h("ul", { id: "monitor-alerts" }, r.alerts.map((line) => h("li", {}, line)))
    : h("p", { class: "muted", id: "monitor-alerts" }, "No alerts in this window.")));
  return parts;
}

export async function view(el, name) {
  const d = await get(`/v1/deployments/${encodeURIComponent(name)}`);
  el.append(h("h1", {}, `Monitor ${name}`));
  const size = h("input", { id: "monitor-window", type: "number", step: 1, value: d.options.monitor_window ?? "" });
  const first = (d.replicas.find((r) => r.state === "running") || { index: 0 }).index;
  const replica = h("select", { id: "monitor-replica" }, Array.from({ length: d.replica_count }, (_, i) =>
    h("option", { value: String(i), selected: i === first }, `replica ${i}`)));
  const out = h("div", { id: "monitor-report" });
  const load = async () => {
    const query = new URLSearchParams({ replica: replica.value });
    if (size.value.trim() !== "") query.set("window", size.value.trim());
    out.replaceChildren(h("p", { class: "muted" }, "Checking…"));
    try {
      const report = await get(`/v1/deployments/${encodeURIComponent(name)}/monitor?${query}`);
      window.modelyard.monitor = { deployment: name, replica: Number(replica.value), report };
      out.replaceChildren(...reportView(report, replica.value));
    } catch (error) {
      window.modelyard.monitor = { deployment: name, replica: Number(replica.value), error: error.message };
      out.replaceChildren(errorBox(error));
    }
  };
  const form = h("form", { id: "monitor-form", onsubmit: (event) => { event.preventDefault(); load(); } },
    h("div", { class: "row" }, h("label", {}, "Window (logged instances) ", size),
      d.replica_count > 1 ? h("label", {}, "Replica (each logs its own requests) ", replica) : null,
      h("button", { type: "submit", id: "monitor-check" }, "Check")),
    h("p", { class: "muted small" }, monitored(d)
      ? `${fmt(100 * d.options.monitor_sample, 1)} % of requests are logged; each replica keeps its last ${d.options.monitor_capacity}.`
      : "This deployment does not log requests."));
  el.append(section("Deployment", facts([["Model", modelLink(d.model)], ["Status", badge(d.status)],
    ["Deployment", link(`#/deployments/${name}`, name)]]), form), out);
  await load();
}

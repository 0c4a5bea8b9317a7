// Model versions: the list (with each version's kind, parent and aliases), and one version
// with its metrics, training curve, confusion matrix, lineage, input schema and a form that
// deploys it.

import { get, post } from "./api.js";
import { curves } from "./charts.js";
import { ago, errorBox, fmt, h, link, section, table } from "./dom.js";

// "name:3" → a link to that version's page, or plain text once that version is deleted.
function versionLink(ref, deleted) {
  if (!ref) return "–";
  const [name, number] = ref.split(":");
  return deleted ? `${ref} (deleted)` : link(`#/models/${name}/${number}`, ref);
}

function aliasBadges(aliases) {
  return aliases && aliases.length ? aliases.map((a) => h("span", { class: "badge alias" }, a)) : "–";
}

export async function listView(el) {
  const { models } = await get("/v1/models");
  const metric = (m, key) => fmt(m.metrics && m.metrics.test ? m.metrics.test[key] : undefined);
  const known = new Set(models.map((m) => m.ref));
  el.append(h("h1", {}, "Models"), section("Registered versions", table([
    { label: "Version", cell: (m) => link(`#/models/${m.name}/${m.version}`, m.ref) },
    { label: "Kind", cell: (m) => m.kind || "–" },
    { label: "Parent", cell: (m) => versionLink(m.parent, m.parent && !known.has(m.parent)) },
    { label: "Aliases", cell: (m) => aliasBadges(m.aliases) },
    { label: "Task", cell: (m) => m.task || "–" },
    { label: "Test accuracy", class: "num", cell: (m) => metric(m, "accuracy") },
    { label: "Test loss", class: "num", cell: (m) => metric(m, "loss") },
    { label: "Size", class: "num", cell: (m) => `${fmt(m.size_bytes / 1024, 1)} KiB` },
    { label: "Registered", cell: (m) => ago(m.created_at) },
    { label: "Run", cell: (m) => (m.run_id ? link(`#/runs/${m.run_id}`, m.run_id) : "–") },
  ], models, { empty: "No models yet: a finished job registers one." })));
}

function metricsTable(test) {
  const rows = Object.entries(test || {}).filter(([, v]) => typeof v === "number" || typeof v === "string");
  return table([{ label: "Metric", cell: ([k]) => k }, { label: "Value", class: "num", cell: ([, v]) => fmt(v) }], rows,
    { empty: "No test metrics recorded." });
}

// Rows are the true class, columns the predicted one; cell shade follows the row's share.
export function confusionMatrix(cm) {
  const total = cm.matrix.reduce((sum, row) => sum + row.reduce((a, b) => a + b, 0), 0);
  return h("div", {},
    h("table", { class: "confusion", id: "confusion-matrix" },
      h("thead", {}, h("tr", {}, h("th", { class: "corner" }, "true \\ predicted"), cm.labels.map((l) => h("th", {}, l)))),
      h("tbody", {}, cm.matrix.map((row, i) => {
        const total = row.reduce((a, b) => a + b, 0) || 1;
        return h("tr", {}, h("th", {}, cm.labels[i]), row.map((count, j) => {
          const share = count / total;
          const cls = i === j ? "diag" : "off";
          return h("td", { class: cls, title: `${cm.labels[i]} → ${cm.labels[j]}: ${count}`,
            style: `--share:${share.toFixed(3)}` }, count);
        }));
      }))),
    h("p", { class: "muted small" }, `On the ${cm.split || "evaluation"} split (${cm.source === "computed" ? "computed now from the stored model" : "recorded at training"}), ${total} samples. Rows: true class; columns: predicted.`));
}

function deployForm(version) {
  const name = h("input", { id: "deploy-name", value: version.name, required: true, pattern: "[a-z0-9][a-z0-9_.\\-]{0,63}" });
  const replicas = h("input", { id: "deploy-replicas", type: "number", min: 1, max: 16, value: 1 });
  const batch = h("input", { id: "deploy-batch", type: "number", min: 1, value: 64 });
  const wait = h("input", { id: "deploy-wait", type: "number", min: 0, step: "0.5", value: 2 });
  const backend = h("select", { id: "deploy-backend" }, ["auto", "torch", "onnx"].map((b) => h("option", { value: b }, b)));
  const monitor = h("input", { id: "deploy-monitor", type: "number", min: 0, max: 1, step: "0.05", value: 0 });
  // local: supervised `modelyard serve` processes; ray: a Ray Serve application (docs/console.md).
  const engine = h("select", { id: "deploy-engine" }, ["local", "ray"].map((e) => h("option", { value: e }, e)));
  const cpus = h("input", { id: "deploy-cpus", type: "number", min: 0.05, step: "0.05", value: 1 });
  const status = h("div", { class: "form-status" });
  return h("form", { id: "deploy-form", onsubmit: async (event) => {
    event.preventDefault();
    status.replaceChildren(h("span", { class: "muted" }, "Starting replicas…"));
    try {
      const created = await post("/v1/deployments", {
        name: name.value.trim(), model: version.ref, replicas: Number(replicas.value),
        max_batch_size: Number(batch.value), max_wait_ms: Number(wait.value), backend: backend.value,
        ...(engine.value === "ray" ? { engine: "ray", num_cpus: Number(cpus.value) } : { monitor_sample: Number(monitor.value) }),
      });
      location.hash = `#/deployments/${created.name}`;
    } catch (error) {
      status.replaceChildren(errorBox(error));
    }
  } },
  h("div", { class: "row" }, h("label", {}, "Deployment name ", name), h("label", {}, "Replicas ", replicas),
    h("label", {}, "Max batch size ", batch), h("label", {}, "Max wait (ms) ", wait), h("label", {}, "Backend ", backend),
    h("label", { title: "Share of predict requests each replica logs for the Monitor page (0: off; engine local)" }, "Monitor sample (0–1) ", monitor),
    h("label", { title: "local: supervised serving processes; ray: Ray Serve replicas (modelyard[ray])" }, "Engine ", engine),
    h("label", { title: "CPUs Ray reserves per replica (engine ray; fractions allowed)" }, "CPUs per replica ", cpus)),
  h("button", { type: "submit", id: "deploy-submit" }, `Deploy ${version.ref}`), status);
}

// A DP-trained version's guarantee, as training/privacy.py recorded it (the privacy key of its metrics).
function privacyFacts(p) {
  const facts = [["Epsilon spent", fmt(p.epsilon)], ["Delta", String(p.delta)], ["Target epsilon", fmt(p.target_epsilon)],
    ["Mechanism", p.mechanism], ["Noise multiplier", fmt(p.noise_multiplier)], ["Max grad norm", fmt(p.max_grad_norm)],
    ["Clipping", p.clipping], ["Steps", String(p.steps)], ["Sample rate (Poisson)", fmt(p.sample_rate)],
    ["Accountant", p.accountant]];
  return h("dl", { class: "facts", id: "privacy-facts" }, facts.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

export async function versionView(el, name, number) {
  const version = await get(`/v1/models/${name}/versions/${number}`);
  const schema = version.schema || {};
  el.append(h("h1", {}, `Model ${version.ref}`));
  el.append(section("Deploy", deployForm(version)));
  const test = (version.metrics && version.metrics.test) || {};
  el.append(section("Test metrics", metricsTable(test)));
  const privacy = version.metrics && version.metrics.privacy;
  if (privacy) el.append(section("Differential privacy", privacyFacts(privacy)));
  const cmBox = h("div", { id: "confusion-box" });
  if (version.task === "classification") el.append(section("Confusion matrix", cmBox));
  if (version.confusion_matrix) {
    cmBox.append(confusionMatrix(version.confusion_matrix));
  } else if (version.task === "classification") {
    cmBox.append(h("p", { class: "muted" }, "Computing on the model's evaluation split…"));
    get(`/v1/models/${name}/versions/${number}/confusion_matrix`)
      .then((cm) => cmBox.replaceChildren(confusionMatrix(cm)))
      .catch((error) => cmBox.replaceChildren(errorBox(error)));
  }
  const curveCard = section("Training curve");
  el.append(curveCard);
  curves(curveCard, version.ref).update(version.history || []);
  const derived = (version.derived || []).map((d) => [versionLink(d.model), ` (${d.kind}) `]);
  const facts = [["Kind", version.kind], ["Parent", versionLink(version.parent, version.parent_deleted)],
    ["Derived", derived.length ? derived : "–"], ["Aliases", aliasBadges(version.aliases)], ["Task", version.task], ["Input shape", JSON.stringify(schema.input_shape)],
    ["Classes", (schema.class_names || []).join(", ") || "–"], ["Registered", ago(version.created_at)],
    ["Run", version.run_id ? link(`#/runs/${version.run_id}`, version.run_id) : "–"], ["Size", `${fmt(version.size_bytes / 1024, 1)} KiB`]];
  el.append(section("Schema and lineage", h("dl", { class: "facts" }, facts.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
    h("pre", { class: "code" }, JSON.stringify(version.lineage || {}, null, 2))));
}

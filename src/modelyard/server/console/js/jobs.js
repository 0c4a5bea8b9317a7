// Jobs: submit a spec, list jobs, and follow one job live (status, learning curves, log)
// through the server-sent events of /v1/jobs/{id}/events, polling if the stream breaks.

import { get, post, text } from "./api.js";
import { curves } from "./charts.js";
import { ago, badge, errorBox, h, link, progressBar, section, table } from "./dom.js";
import { FINAL, STATUS } from "./status.js";

const EXAMPLE = `# A small MLP on scikit-learn's 8x8 digits (trains in seconds on a CPU).
name: digits-mlp
seed: 0
data:
  source: digits
  validation: 0.15
  test: 0.2
  preprocess: [standardize]
model:
  input: [64]
  layers:
    - {dense: 64, activation: relu}
    - {dense: 10, activation: softmax}
train:
  loss: cross_entropy
  optimizer: adam
  lr: 0.003
  batch_size: 64
  epochs: 15
  metrics: [accuracy, f1, confusion_matrix]
`;
const LOG_LIMIT = 200000;

function submitForm() {
  const spec = h("textarea", { id: "job-spec", rows: 18, spellcheck: false }, EXAMPLE);
  const overrides = h("input", { id: "job-overrides", placeholder: "train.epochs=5, train.lr=0.01", size: 40 });
  const attempts = h("input", { id: "job-attempts", type: "number", min: 1, max: 10, value: 3 });
  const status = h("div", { class: "form-status" });
  const form = h("form", { id: "job-form", onsubmit: async (event) => {
    event.preventDefault();
    status.replaceChildren(h("span", { class: "muted" }, "Submitting…"));
    const body = {
      spec: spec.value,
      overrides: overrides.value.split(/[,\n]/).map((s) => s.trim()).filter(Boolean),
      max_attempts: Number(attempts.value) || 3,
    };
    try {
      const job = await post("/v1/jobs", body);
      location.hash = `#/jobs/${job.id}`;
    } catch (error) {
      status.replaceChildren(errorBox(error));
    }
  } },
  h("label", { for: "job-spec" }, "Spec (YAML or JSON)"), spec,
  h("div", { class: "row" }, h("label", {}, "Overrides ", overrides), h("label", {}, "Max attempts ", attempts),
    h("button", { type: "submit", id: "job-submit" }, "Submit job")),
  status);
  return section("Submit a training job", form);
}

export async function listView(el) {
  el.append(h("h1", {}, "Jobs"), submitForm());
  const box = h("div");
  el.append(section("Recent jobs", box));
  const refresh = async () => {
    try {
      const { jobs } = await get("/v1/jobs?limit=50");
      box.replaceChildren(table([
        { label: "Job", cell: (j) => link(`#/jobs/${j.id}`, j.id) },
        { label: "Name", cell: (j) => j.name },
        { label: "Status", cell: (j) => badge(j.status) },
        { label: "Progress", cell: (j) => progressBar(j.progress ? j.progress.fraction : j.status === STATUS.SUCCEEDED ? 1 : 0) },
        { label: "Attempts", cell: (j) => `${j.attempts}/${j.max_attempts}` },
        { label: "Submitted", cell: (j) => ago(j.created_at) },
        { label: "Model", cell: (j) => (j.model_ref ? modelLink(j.model_ref) : "–") },
      ], jobs, { empty: "No jobs yet: submit a spec above." }));
    } catch (error) {
      box.replaceChildren(errorBox(error));
    }
  };
  await refresh();
  const timer = setInterval(refresh, 3000);
  return () => clearInterval(timer);
}

export function modelLink(ref) {
  const [name, version] = ref.split(":");
  return link(`#/models/${name}/${version}`, ref);
}

function summary(job) {
  const p = job.progress || {};
  const items = [
    ["Status", badge(job.status)], ["Attempts", `${job.attempts}/${job.max_attempts}`],
    ["Epoch", p.epochs ? `${p.epoch ?? 0} / ${p.epochs}` : "–"], ["Submitted", ago(job.created_at)],
    ["Started", ago(job.started_at)], ["Finished", job.finished_at ? ago(job.finished_at) : "–"],
    ["Run", job.run_id ? link(`#/runs/${job.run_id}`, job.run_id) : "–"],
    ["Model", job.model_ref ? modelLink(job.model_ref) : "–"],
  ];
  return h("div", {},
    h("dl", { class: "facts" }, items.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
    progressBar(p.fraction ?? (job.status === STATUS.SUCCEEDED ? 1 : 0)),
    job.error ? errorBox(job.error) : null);
}

export async function detailView(el, id) {
  let job = await get(`/v1/jobs/${id}`);
  const epochs = new Map((job.history || []).map((row) => [row.epoch, row]));
  const head = h("div", { id: "job-summary" });
  const actions = h("div", { class: "actions" });
  const logBox = h("pre", { class: "log", id: "job-log" });
  el.append(h("h1", {}, `Job ${job.name} `, h("span", { class: "muted small" }, id)), section("Status", head, actions));
  const curveCard = section("Learning curves");
  el.append(curveCard, section("Log", logBox));
  const chart = curves(curveCard, job.name);
  let stream = null;
  let poller = null;
  let logTimer = null;
  let logOffset = 0;

  const render = () => {
    head.replaceChildren(summary(job));
    const buttons = [];
    if (!FINAL.has(job.status)) {
      buttons.push(h("button", { class: "danger", id: "job-cancel", onclick: async () => {
        try { job = await post(`/v1/jobs/${id}/cancel`); render(); } catch (error) { actions.append(errorBox(error)); }
      } }, "Cancel job"));
    }
    if (job.model_ref) {
      const [name, version] = job.model_ref.split(":");
      buttons.push(h("a", { class: "button", id: "job-model", href: `#/models/${name}/${version}` }, `Open ${job.model_ref} (deploy, metrics)`));
    }
    actions.replaceChildren(...buttons);
    el.dataset.status = job.status;
  };
  const redraw = () => chart.update([...epochs.values()]);
  const addLog = (line) => {
    logBox.textContent = (logBox.textContent + line).slice(-LOG_LIMIT);
    logBox.scrollTop = logBox.scrollHeight;
  };
  let logBusy = false;
  const pollLogs = async () => {
    if (logBusy) return;  // one read at a time, or the same offset is read twice
    logBusy = true;
    try {
      const { text: chunk, next } = await text(`/v1/jobs/${id}/logs?offset=${logOffset}`);
      if (chunk) addLog(chunk);
      if (next !== null) logOffset = Number(next);
      else logOffset += new TextEncoder().encode(chunk).length;
    } catch (_) { /* logs are best effort */ } finally {
      logBusy = false;
    }
  };
  const poll = async () => {
    try {
      job = await get(`/v1/jobs/${id}`);
      for (const row of job.history || []) epochs.set(row.epoch, row);
      render();
      redraw();
      await pollLogs();
      if (FINAL.has(job.status)) clearInterval(poller);
    } catch (_) { /* keep trying */ }
  };
  render();
  redraw();
  await pollLogs();
  if (!FINAL.has(job.status)) {
    // The log is read by offset (never twice); the event stream carries status and epochs.
    logTimer = setInterval(() => { pollLogs(); if (FINAL.has(job.status)) clearInterval(logTimer); }, 2000);
    if (window.EventSource) {
      stream = new EventSource(`/v1/jobs/${id}/events`);
      const parse = (event) => { try { return JSON.parse(event.data); } catch (_) { return event.data; } };
      stream.addEventListener("status", (event) => { job = { ...job, ...parse(event) }; render(); });
      const seen = (window.modelyard.jobEvents = { job: id, epochs: 0 });
      stream.addEventListener("epoch", (event) => {
        const row = parse(event);
        seen.epochs += 1;
        epochs.set(row.epoch, { ...epochs.get(row.epoch), ...row });
        redraw();
      });
      stream.addEventListener("end", (event) => {
        stream.close();
        job = { ...job, ...parse(event) };
        for (const row of job.history || []) epochs.set(row.epoch, row);
        render();
        redraw();
        pollLogs();
      });
      stream.onerror = () => {  // stream broken (proxy, server restart): fall back to polling
        if (stream.readyState === EventSource.CLOSED || !FINAL.has(job.status)) {
          stream.close();
          if (!poller) poller = setInterval(poll, 2000);
        }
      };
    } else {
      poller = setInterval(poll, 2000);
    }
  }
  return () => {
    if (stream) stream.close();
    if (poller) clearInterval(poller);
    if (logTimer) clearInterval(logTimer);
  };
}

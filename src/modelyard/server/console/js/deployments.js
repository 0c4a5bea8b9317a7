// Deployments: status of every deployment, and one deployment's replicas with its
// request rate and latency over time (sampled from GET /v1/deployments/{name}).

import { del, get } from "./api.js";
import { halfWidth, lineChart } from "./charts.js";
import { badge, errorBox, fmt, h, link, section, table } from "./dom.js";
import { modelLink } from "./jobs.js";

const ms = (v) => (v === null || v === undefined ? "–" : `${fmt(v, 1)} ms`);
// Running replicas of the count asked for, or of Ray Serve's autoscaling range (engine ray).
const running = (d) => {
  const ready = d.replicas.filter((r) => r.state === "running").length;
  const [low, high] = d.replica_range || [d.replica_count, d.replica_count];
  return low === high ? `${ready}/${low}` : `${ready} (${low}–${high})`;
};

async function remove(name, after) {
  if (!window.confirm(`Stop and delete deployment ${name}?`)) return;
  await del(`/v1/deployments/${name}`);
  after();
}

export async function listView(el) {
  const box = h("div");
  el.append(h("h1", {}, "Deployments"), section("Deployments", box));
  const refresh = async () => {
    try {
      const { deployments } = await get("/v1/deployments");
      box.replaceChildren(table([
        { label: "Name", cell: (d) => link(`#/deployments/${d.name}`, d.name) },
        { label: "Model", cell: (d) => modelLink(d.model) },
        { label: "Engine", cell: (d) => d.engine },
        { label: "Status", cell: (d) => badge(d.status) },
        { label: "Replicas", class: "num", cell: running },
        { label: "Requests/s", class: "num", cell: (d) => fmt(d.metrics.requests_per_s, 2) },
        { label: "p50", class: "num", cell: (d) => ms(d.metrics.p50_ms) },
        { label: "p99", class: "num", cell: (d) => ms(d.metrics.p99_ms) },
        { label: "Restarts", class: "num", cell: (d) => d.restarts },
        { label: "", cell: (d) => [link(`#/playground/${d.name}`, "Playground"), " ",
          h("button", { class: "danger small", onclick: () => remove(d.name, refresh).catch((e) => box.prepend(errorBox(e))) }, "Delete")] },
      ], deployments, { empty: "No deployments: open a model version and deploy it." }));
    } catch (error) {
      box.replaceChildren(errorBox(error));
    }
  };
  await refresh();
  const timer = setInterval(refresh, 2000);
  return () => clearInterval(timer);
}

export async function detailView(el, name) {
  const head = h("div", { id: "deployment-summary" });
  const replicas = h("div");
  el.append(h("h1", {}, `Deployment ${name}`), section("Status", head), section("Replicas", replicas));
  const traffic = section("Traffic (sampled every 2 s while this page is open)");
  el.append(traffic);
  const pair = h("div", { class: "curves" });
  traffic.append(pair);
  const rate = lineChart(pair, { title: "Requests per second", xLabel: "seconds", series: [{ label: "req/s" }], height: 200, width: halfWidth(traffic) });
  const latency = lineChart(pair, { title: "Latency (ms)", xLabel: "seconds", series: [{ label: "p50" }, { label: "p99", color: "#dc2626" }],
    height: 200, width: halfWidth(traffic) });
  const t0 = Date.now();
  const samples = [];
  const refresh = async () => {
    let d;
    try {
      d = await get(`/v1/deployments/${name}`);
    } catch (error) {
      head.replaceChildren(errorBox(error));
      return;
    }
    el.dataset.status = d.status;
    const m = d.metrics;
    const facts = [["Status", badge(d.status)], ["Model", modelLink(d.model)],
      ["Engine", d.engine === "ray" ? `Ray Serve (${fmt(d.options.num_cpus ?? 1, 2)} CPU per replica)` : "local processes"],
      ["Replicas running", running(d)],
      ["Restarts", d.restarts], ["Requests/s", fmt(m.requests_per_s, 2)], ["p50 / p99", `${ms(m.p50_ms)} / ${ms(m.p99_ms)}`],
      ["Requests", m.requests_total], ["Errors", `${fmt(100 * m.error_rate, 1)} %`],
      ["Batching", `≤ ${d.options.max_batch_size} rows, ≤ ${d.options.max_wait_ms} ms wait, ${d.options.backend}`],
      ["Monitoring", d.options.monitor_sample > 0 ? `${fmt(100 * d.options.monitor_sample, 1)} % of requests logged` : "off"],
      ["Endpoint", h("code", {}, `POST ${d.endpoint}`)]];
    el.dataset.requests = String(m.requests_total);
    head.replaceChildren(h("div", {}, h("dl", { class: "facts" }, facts.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
      d.error ? errorBox(d.error) : null),
      h("div", { class: "actions" }, h("a", { class: "button", id: "open-playground", href: `#/playground/${name}` }, "Open playground"), " ",
        d.options.monitor_sample > 0 ? [h("a", { class: "button", id: "open-monitor", href: `#/monitor/${name}` }, "Monitor"), " "] : null,
        h("button", { class: "danger", onclick: () => remove(name, () => { location.hash = "#/deployments"; }).catch((e) => head.append(errorBox(e))) }, "Delete")));
    replicas.replaceChildren(table([
      { label: "#", cell: (r) => r.index }, { label: "State", cell: (r) => badge(r.state) },
      { label: "PID", class: "num", cell: (r) => r.pid ?? "–" }, { label: "Port", class: "num", cell: (r) => r.port ?? "–" },
      { label: "Restarts", class: "num", cell: (r) => r.restarts }, { label: "Up", class: "num", cell: (r) => (r.uptime_s ? `${fmt(r.uptime_s, 0)} s` : "–") },
      { label: "Last error", cell: (r) => r.error || "" },
    ], d.replicas, { empty: "No replicas are running (the server may have been restarted or the deployment stopped)." }));
    samples.push({ t: (Date.now() - t0) / 1000, rate: m.requests_per_s, p50: m.p50_ms, p99: m.p99_ms });
    if (samples.length > 300) samples.shift();
    const xs = samples.map((s) => Number(s.t.toFixed(1)));
    rate.update(xs, [samples.map((s) => s.rate)]);
    latency.update(xs, [samples.map((s) => s.p50), samples.map((s) => s.p99)]);
  };
  await refresh();
  const timer = setInterval(refresh, 2000);
  return () => clearInterval(timer);
}

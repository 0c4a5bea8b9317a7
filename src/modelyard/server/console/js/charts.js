// Line charts on uPlot (vendored, global `uPlot`): learning curves, run comparisons,
// deployment traffic. Each chart keeps its own data and redraws with setData.

import { h } from "./dom.js";

export const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777", "#4b5563", "#65a30d"];
const SKIP = new Set(["epoch", "lr", "time_s", "samples_per_s"]);

// Metric names of a history, split into loss-like and score-like groups.
export function metricGroups(history) {
  const keys = [];
  for (const row of history) for (const key of Object.keys(row)) if (!SKIP.has(key) && !keys.includes(key)) keys.push(key);
  const losses = keys.filter((k) => k.includes("loss") || ["mse", "mae", "rmse"].some((m) => k.endsWith(m)));
  const scores = keys.filter((k) => !losses.includes(k));
  return [{ title: "Loss", keys: losses }, { title: "Metrics", keys: scores }].filter((g) => g.keys.length);
}

function width(el) {
  return Math.max(280, Math.min(720, (el.clientWidth || 640) - 8));
}

// Two charts side by side in `el` (one per row on a narrow screen).
export function halfWidth(el) {
  const inner = (el.clientWidth || 1100) - 40;
  return inner < 640 ? Math.max(280, inner) : Math.min(620, Math.floor(inner / 2) - 12);
}

// Train and validation values of one metric share a colour; validation is dashed.
function seriesOf(keys) {
  const bases = [];
  return keys.map((key) => {
    const base = key.replace(/^val_/, "");
    if (!bases.includes(base)) bases.push(base);
    return { label: key, color: COLORS[bases.indexOf(base) % COLORS.length], dash: key.startsWith("val_") ? [6, 3] : undefined };
  });
}

// A chart whose x axis is `xLabel` and whose series are named; update(xs, ys[]) redraws.
export function lineChart(container, { title, xLabel = "epoch", series, height = 240, yRange, width: fixed }) {
  const box = h("div", { class: "chart", dataset: { title, points: "0" } });
  container.append(box);
  const opts = {
    title,
    width: fixed || width(container),
    height,
    scales: { x: { time: false }, y: yRange ? { range: yRange } : {} },
    axes: [{ label: xLabel }, {}],
    series: [{ label: xLabel }, ...series.map((s, i) => ({
      label: s.label, stroke: s.color || COLORS[i % COLORS.length], width: 2, spanGaps: true,
      points: { size: 5 }, dash: s.dash,
    }))],
  };
  const data = [[], ...series.map(() => [])];
  const plot = new uPlot(opts, data, box);
  return {
    element: box,
    update(xs, ys) {
      plot.setData([xs, ...ys]);
      box.dataset.points = String(xs.length);
    },
    destroy() {
      plot.destroy();
    },
  };
}

// Learning curves of one history: a loss chart and a metrics chart, updated in place.
export function curves(container, title) {
  const holder = h("div", { class: "curves", dataset: { chart: title } });
  container.append(holder);
  let charts = [];
  let signature = "";
  return {
    holder,
    update(history) {
      const rows = [...history].sort((a, b) => a.epoch - b.epoch);
      const groups = metricGroups(rows);
      const sig = JSON.stringify(groups);
      if (sig !== signature) {  // new metric names appeared: rebuild the charts
        charts.forEach((c) => c.chart.destroy());
        holder.replaceChildren();
        charts = groups.map((g) => ({
          group: g,
          chart: lineChart(holder, { title: `${title} — ${g.title}`, series: seriesOf(g.keys), width: halfWidth(container) }),
        }));
        signature = sig;
      }
      const xs = rows.map((r) => r.epoch);
      for (const { group, chart } of charts) chart.update(xs, group.keys.map((k) => rows.map((r) => (r[k] ?? null))));
      holder.dataset.points = String(rows.length);
      if (!rows.length && !holder.firstChild) holder.append(h("p", { class: "muted" }, "Waiting for the first epoch…"));
    },
  };
}

// Several runs on one chart per metric: xs are the union of epochs, gaps where a run has none.
export function overlay(container, runs) {
  const keys = [];
  for (const run of runs) for (const g of metricGroups(run.history)) for (const k of g.keys) if (!keys.includes(k)) keys.push(k);
  const epochs = [...new Set(runs.flatMap((r) => r.history.map((row) => row.epoch)))].sort((a, b) => a - b);
  const holder = h("div", { class: "curves" });
  container.append(holder);
  for (const key of keys) {
    const chart = lineChart(holder, { title: key, series: runs.map((r, i) => ({ label: r.label, color: COLORS[i % COLORS.length] })),
      width: halfWidth(container) });
    chart.update(epochs, runs.map((r) => {
      const byEpoch = new Map(r.history.map((row) => [row.epoch, row[key]]));
      return epochs.map((e) => (byEpoch.has(e) && byEpoch.get(e) !== undefined ? byEpoch.get(e) : null));
    }));
  }
}

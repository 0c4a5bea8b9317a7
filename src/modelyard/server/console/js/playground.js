// Playground: send one input to a deployment and see its prediction. Inputs: a drawing
// (image models), an uploaded PNG/JPEG (sent as its bytes), one field per feature
// (tabular models), a text box (text models: Predict, and Explain for token attributions
// drawn over the typed text), the microphone or a WAV file (audio models and voice
// pipelines: playground_audio.js) or raw JSON instances. The last request and answer (and the
// last explanation and recording) are kept in `window.modelyard.playground` for scripts and tests.

import { get, request } from "./api.js";
import { badge, errorBox, fmt, h, link, section, table } from "./dom.js";
import { downsample, drawingPad, preview, toInstance } from "./draw.js";
import { audioCard, pipelineAnswer, pipelineView } from "./playground_audio.js";

export async function pickView(el) {
  const { deployments } = await get("/v1/deployments");
  el.append(h("h1", {}, "Playground"), section("Pick a deployment", table([
    { label: "Deployment", cell: (d) => link(`#/playground/${d.name}`, d.name) },
    { label: "Model", cell: (d) => d.model },
    { label: "Status", cell: (d) => badge(d.status) },
  ], deployments, { empty: "No deployments yet: deploy a model version first." })));
}

function resultView(answer, schema, millis) {
  const spoken = pipelineAnswer(answer);
  if (spoken) return pipelineView(spoken, millis);
  const rows = answer.predictions || [];
  const first = rows[0] || {};
  const parts = [];
  if ("label" in first) {
    parts.push(h("div", { class: "prediction", id: "prediction-label" }, String(first.label)));
    const names = schema.class_names || first.probabilities.map((_, i) => String(i));
    const ranked = first.probabilities.map((p, i) => [names[i], p]).sort((a, b) => b[1] - a[1]);
    parts.push(h("div", { class: "bars", id: "prediction-probabilities" }, ranked.map(([name, p]) => h("div", { class: "bar-row" },
      h("span", { class: "bar-label" }, name), h("span", { class: "bar" }, h("span", { style: `width:${(100 * (p || 0)).toFixed(1)}%` })),
      h("span", { class: "bar-value" }, fmt(p, 3))))));
  } else {
    parts.push(h("div", { class: "prediction", id: "prediction-label" }, (first.value || []).map((v) => fmt(v)).join(", ")));
  }
  if (rows.length > 1) parts.push(h("p", { class: "muted" }, `${rows.length} instances; showing the first.`));
  for (const warning of answer.warnings || []) parts.push(errorBox(warning));
  parts.push(h("p", { class: "muted small" }, `${answer.ref} on ${answer.backend}, ${fmt(millis, 1)} ms round trip.`));
  return h("div", { id: "prediction", dataset: { label: String(first.label ?? "") } }, parts);
}

export async function view(el, name) {
  const deployment = await get(`/v1/deployments/${name}`);
  const [model, version] = deployment.model.split(":");
  const info = await get(`/v1/models/${model}/versions/${version}`);
  const schema = info.schema;
  const hints = schema.input_hints || {};
  const shape = schema.input_shape;
  const out = h("div", { id: "prediction-box" }, h("p", { class: "muted" }, "The prediction appears here."));
  const state = (window.modelyard.playground = { deployment: name, schema, lastRequest: null, lastAnswer: null, lastExplanation: null, lastRecording: null });

  const send = async (body, contentType) => {
    out.replaceChildren(h("p", { class: "muted" }, "Predicting…"));
    const started = performance.now();
    let parsed = null;
    try { parsed = contentType === "application/json" ? JSON.parse(body) : null; } catch (_) { /* the server says what is wrong */ }
    state.lastRequest = { body: parsed, contentType };
    state.lastAnswer = null;
    try {
      const answer = await request("POST", `/v1/deployments/${name}/predict`, body, { raw: true, contentType });
      state.lastAnswer = answer;
      out.replaceChildren(resultView(answer, schema, performance.now() - started));
    } catch (error) {
      state.lastAnswer = { error: error.message };
      out.replaceChildren(errorBox(error));
    }
  };
  const sendInstances = (instances) => send(JSON.stringify({ instances }), "application/json");

  el.append(h("h1", {}, `Playground: ${name} `, badge(deployment.status)),
    h("p", { class: "muted" }, `Model ${deployment.model} (${schema.task}); input ${inputWords(hints, shape)}.`));
  const explained = h("div", { id: "explanation-box" });
  const explainText = async (text) => {
    explained.replaceChildren(h("p", { class: "muted" }, "Explaining…"));
    state.lastExplanation = null;
    const started = performance.now();
    try {
      const answer = await request("POST", `/v1/deployments/${name}/explain`, JSON.stringify({ instances: [text] }),
        { raw: true, contentType: "application/json" });
      state.lastExplanation = answer;
      explained.replaceChildren(explanationView(answer, performance.now() - started));
    } catch (error) {
      state.lastExplanation = { error: error.message };
      explained.replaceChildren(errorBox(error));
    }
  };
  const inputs = [];
  if (hints.text) inputs.push(textCard(hints.text, sendInstances, explainText));
  if (hints.image) inputs.push(drawCard(hints.image, shape, sendInstances), uploadCard(hints.image, send));
  if (hints.features) inputs.push(featuresCard(hints.features, sendInstances));
  let cleanup = null;
  if (hints.audio) {
    const [card, release] = audioCard(hints.audio, send, state);
    inputs.push(card);
    cleanup = release;
  }
  if (!(hints.audio && hints.audio.pipeline)) inputs.push(jsonCard(shape, send, Boolean(hints.text)));  // a pipeline takes audio only
  el.append(h("div", { class: "playground" }, h("div", { class: "inputs" }, inputs),
    section("Prediction", out, hints.text ? explained : null)));
  return cleanup;
}

function inputWords(hints, shape) {
  if (hints.text) return "text";
  if (hints.audio) return `audio at ${hints.audio.sample_rate} Hz (${fmt(hints.audio.seconds, 2)} s)`;
  return `shape ${JSON.stringify(shape)}`;
}

function drawCard(image, shape, sendInstances) {
  const { height: rows, width: cols } = image;
  const canvas = h("canvas", { id: "draw-canvas", width: 280, height: 280, class: "pad" });
  const small = h("canvas", { id: "draw-preview", class: "pixels" });
  const pad = drawingPad(canvas, { lineWidth: 22 });
  const pixels = () => downsample(pad.ink(), canvas.width, canvas.height, { rows, cols, fit: image.fit });
  const predict = () => {
    const px = pixels();
    preview(small, px, rows, cols);
    sendInstances([toInstance(px, shape, image)]);
  };
  window.modelyard.draw = { pad, pixels, canvas };
  return section(`Draw (${cols}x${rows} input, values 0–${image.max_value})`,
    h("div", { class: "draw" }, canvas, h("div", {}, h("p", { class: "muted small" }, "What the model sees:"), small)),
    h("div", { class: "actions" }, h("button", { id: "draw-predict", onclick: predict }, "Predict"), " ",
      h("button", { class: "secondary", id: "draw-clear", onclick: () => { pad.clear(); preview(small, new Float32Array(rows * cols), rows, cols); } }, "Clear")));
}

function uploadCard(image, send) {
  const input = h("input", { type: "file", id: "upload-file", accept: "image/png,image/jpeg" });
  const shown = h("img", { id: "upload-preview", class: "pixels", alt: "" });
  input.addEventListener("change", async () => {
    const file = input.files[0];
    if (!file) return;
    shown.src = URL.createObjectURL(file);
    await send(await file.arrayBuffer(), file.type || "image/png");
  });
  return section(`Upload an image (PNG or JPEG, ${image.width}x${image.height} pixels)`, input, shown,
    h("p", { class: "muted small" }, "The file is sent as it is; the server decodes it and applies the model's preprocessing."));
}

function featuresCard(names, sendInstances) {
  const fields = names.map((feature) => h("input", { type: "number", step: "any", value: 0, name: feature, class: "feature" }));
  return section("Feature values", h("form", { id: "features-form", class: "features", onsubmit: (event) => {
    event.preventDefault();
    sendInstances([fields.map((f) => Number(f.value))]);
  } }, names.map((feature, i) => h("label", {}, feature, fields[i])), h("button", { type: "submit", id: "features-predict" }, "Predict")));
}

function textCard(text, sendInstances, explainText) {
  const area = h("textarea", { id: "text-input", rows: 4, placeholder: "Type a sentence", spellcheck: false });
  const limit = text.max_tokens ? ` (at most ${text.max_tokens} tokens)` : "";
  return section(`Text${limit}`, area, h("div", { class: "actions" },
    h("button", { id: "text-predict", onclick: () => sendInstances([area.value]) }, "Predict"), " ",
    h("button", { class: "secondary", id: "text-explain", onclick: () => explainText(area.value) }, "Explain")),
  h("p", { class: "muted small" }, "Explain: integrated gradients over the token embeddings from an all-[PAD] baseline; "
    + "green tokens raised the predicted class's probability, red ones lowered it."));
}

// One token attribution as a background: green raised the explained output, red lowered it,
// more opaque the larger |attribution| relative to the text's largest.
function tint(value, scale) {
  const alpha = scale > 0 ? 0.12 + 0.68 * Math.min(1, Math.abs(value) / scale) : 0;
  return value >= 0 ? `rgba(22, 163, 74, ${alpha.toFixed(3)})` : `rgba(220, 38, 38, ${alpha.toFixed(3)})`;
}

function explanationView(answer, millis) {
  const item = answer.explanations[0];
  const chars = Array.from(item.text); // offsets count code points, as Python indexes strings
  const pieces = item.tokens.filter((t) => !t.special);
  const scale = Math.max(0, ...item.tokens.map((t) => Math.abs(t.attribution)));
  const spans = [];
  let at = 0;
  for (const piece of pieces) {
    const start = Math.max(at, piece.start);
    if (start > at) spans.push(chars.slice(at, start).join(""));
    spans.push(h("span", {
      class: "token", title: `${piece.token}: ${fmt(piece.attribution, 4)}`, style: `background:${tint(piece.attribution, scale)}`,
      dataset: { token: piece.token, attribution: String(piece.attribution), start: String(piece.start), end: String(piece.end) },
    }, chars.slice(start, piece.end).join("")));
    at = Math.max(at, piece.end);
  }
  if (at < chars.length) spans.push(chars.slice(at).join(""));
  const specials = item.tokens.filter((t) => t.special).map((t) => `${t.token} ${t.attribution >= 0 ? "+" : ""}${fmt(t.attribution, 4)}`);
  return h("div", { id: "explanation", dataset: { label: String(item.label) } },
    h("p", {}, `Why ${item.label}: probability ${fmt(item.output, 3)}, ${fmt(item.baseline_output, 3)} for the all-[PAD] `
      + `baseline; the attributions sum to ${fmt(item.attribution_sum, 4)} (convergence delta ${fmt(item.convergence_delta)}).`),
    h("div", { id: "explanation-text", class: "tokens" }, spans),
    specials.length ? h("p", { class: "muted small" }, `Special tokens: ${specials.join(", ")}.`) : null,
    h("p", { class: "muted small" }, `${answer.ref}, ${answer.details.steps} steps, ${fmt(millis, 1)} ms round trip.`));
}

function jsonCard(shape, send, text = false) {
  const example = text ? JSON.stringify({ instances: ["a sentence"] })
    : JSON.stringify({ instances: [toInstance(new Float32Array(shape.reduce((a, b) => a * b, 1)), shape, { max_value: 0 })] });
  const area = h("textarea", { id: "json-body", rows: 4, spellcheck: false }, example.length < 2000 ? example : '{"instances": [...]}');
  return h("details", { class: "card" }, h("summary", {}, "Raw JSON request"), area,
    h("div", { class: "actions" }, h("button", { id: "json-predict", onclick: () => send(area.value, "application/json") }, "Send")));
}

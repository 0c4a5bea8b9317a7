// The playground's audio input and the voice pipeline's answer. Input: Record / Stop (the
// microphone through audio.js, resampled to the model's rate and sent as a 16-bit PCM mono WAV)
// or a WAV/FLAC file sent as it is (the server decodes it and checks its rate and length).
// Answer of a voice pipeline (docs/console.md): transcript, intent and confidence, answer text,
// per-stage timings and the spoken reply, played from its base64 WAV.

import { MAX_RECORD_S, Recorder, encodeWav, resample } from "./audio.js";
import { errorBox, fmt, h, section } from "./dom.js";

function base64(buffer) {
  const bytes = new Uint8Array(buffer);
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(text);
}

// audio: the version's hints ({sample_rate, seconds}); send(body, contentType) posts to predict;
// state: window.modelyard.playground (lastRecording: the WAV the page sent, for scripts and tests).
// Returns [card, cleanup]: cleanup releases the microphone when the page is left mid-recording.
export function audioCard(audio, send, state) {
  const rate = audio.sample_rate;
  const recorder = new Recorder();
  const record = h("button", { id: "audio-record" }, "Record");
  const stop = h("button", { class: "secondary", id: "audio-stop", disabled: true }, "Stop");
  const status = h("div", { id: "audio-status", class: "muted small" }, audio.pipeline
    ? `Records at ${rate} Hz, up to ${fmt(audio.seconds, 0)} s; the voice pipeline hears the whole utterance.`
    : `Records at ${rate} Hz; the model hears ${fmt(audio.seconds, 2)} s (longer clips are trimmed, shorter ones padded).`);
  const preview = h("audio", { id: "audio-preview", controls: true, hidden: true });
  let timer = null;

  const finish = async () => {
    clearInterval(timer);
    stop.disabled = true;
    record.disabled = false;
    const { samples, rate: captured } = await recorder.stop();
    if (!samples.length) {
      status.replaceChildren(errorBox("Nothing was recorded: the microphone gave no audio."));
      return;
    }
    const wav = encodeWav(resample(samples, captured, rate), rate);
    state.lastRecording = { base64: base64(wav), sample_rate: rate, capture_rate: captured, seconds: samples.length / captured };
    preview.src = URL.createObjectURL(new Blob([wav], { type: "audio/wav" }));
    preview.hidden = false;
    status.replaceChildren(`Recorded ${fmt(samples.length / captured, 2)} s at ${captured} Hz, sent as ${rate} Hz 16-bit WAV.`);
    await send(wav, "audio/wav");
  };
  record.addEventListener("click", async () => {
    record.disabled = true;
    try {
      await recorder.start();
    } catch (error) {
      record.disabled = false;
      status.replaceChildren(errorBox(error));
      return;
    }
    stop.disabled = false;
    status.replaceChildren(h("span", { id: "audio-recording" }, "Recording… 0.0 s"));
    timer = setInterval(() => {
      const seconds = recorder.seconds();
      status.firstChild.textContent = `Recording… ${seconds.toFixed(1)} s`;
      if (seconds >= (audio.pipeline ? audio.seconds : MAX_RECORD_S)) finish();
    }, 100);
  });
  stop.addEventListener("click", finish);

  const file = h("input", { type: "file", id: "audio-file", accept: "audio/wav,audio/x-wav,audio/flac,.wav,.flac" });
  file.addEventListener("change", async () => {
    const chosen = file.files[0];
    if (!chosen) return;
    preview.src = URL.createObjectURL(chosen);
    preview.hidden = false;
    const flac = /\.flac$/i.test(chosen.name) || /flac/.test(chosen.type);
    await send(await chosen.arrayBuffer(), flac ? "audio/flac" : "audio/wav");
  });
  const card = section(`Speak or upload audio (${rate} Hz)`,
    h("div", { class: "actions" }, record, " ", stop), status, preview,
    h("p", { class: "muted small" }, "Or upload a WAV or FLAC file (sent as it is; the server checks its sample rate and length):"), file);
  return [card, () => { clearInterval(timer); recorder.cancel(); }];
}

// A voice pipeline's predict answer (one utterance, or the first of `predictions`), else null.
export function pipelineAnswer(answer) {
  if (answer && typeof answer.transcript === "string") return answer;
  const first = answer && Array.isArray(answer.predictions) ? answer.predictions[0] : null;
  return first && typeof first.transcript === "string" ? first : null;
}

const STAGES = [["speech_to_text", "Speech to text"], ["intent", "Intent"], ["answer", "Answer"], ["speech", "Speech"], ["total", "Total"]];

export function pipelineView(item, millis) {
  const timings = item.timings_ms || {};
  const reply = item.audio && item.audio.base64
    ? h("audio", { id: "pipeline-audio", controls: true, src: `data:audio/wav;base64,${item.audio.base64}` }) : null;
  const facts = [
    ["Transcript", h("span", { id: "pipeline-transcript" }, item.transcript || "(nothing recognised)")],
    ["Wake phrase", item.wake_phrase_heard === undefined || item.wake_phrase_heard === null ? "–" : (item.wake_phrase_heard ? "heard" : "not heard")],
    ["Intent", h("span", { id: "pipeline-intent" }, item.intent ?? "–")],
    ["Confidence", h("span", { id: "pipeline-confidence" }, fmt(item.confidence, 3))],
    ["Answer", h("span", { id: "pipeline-answer" }, item.answer ?? "–")],
  ];
  return h("div", { id: "prediction", class: "pipeline", dataset: { intent: String(item.intent ?? "") } },
    h("dl", { class: "facts" }, facts.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
    reply, reply ? h("p", { class: "muted small" }, `Reply: ${item.audio.sample_rate} Hz WAV.`) : null,
    h("table", { class: "grid", id: "pipeline-timings" },
      h("thead", {}, h("tr", {}, h("th", {}, "Stage"), h("th", {}, "ms"))),
      h("tbody", {}, STAGES.filter(([key]) => key in timings).map(([key, label]) => h("tr", { dataset: { stage: key } },
        h("td", {}, label), h("td", { class: "num" }, fmt(timings[key], 1)))))),
    h("p", { class: "muted small" }, `${fmt(millis, 1)} ms round trip.`));
}

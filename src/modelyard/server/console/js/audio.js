// Microphone capture for the playground, and the two pieces of signal work it needs: a
// resampler and a 16-bit PCM WAV encoder. The server decodes WAV and FLAC only (MediaRecorder
// gives webm/opus), so the page records raw PCM through an AudioWorklet and writes the WAV itself.
//
// The AudioContext runs at the device's rate (typically 48 kHz); `resample` brings the clip to
// the model's rate with a Blackman-windowed sinc low-pass (Smith, "Digital Audio Resampling",
// ccrma.stanford.edu/~jos/resample): 16 zero crossings a side, cutoff 0.95 of the lower Nyquist.

const ZERO_CROSSINGS = 16;
const ROLLOFF = 0.95;
export const MAX_RECORD_S = 60; // a forgotten Stop ends here; the server has its own (lower) limit

function blackman(u) { // u in [-1, 1]
  return 0.42 + 0.5 * Math.cos(Math.PI * u) + 0.08 * Math.cos(2 * Math.PI * u);
}

// samples: Float32Array at `from` Hz → Float32Array at `to` Hz (same duration, rounded).
export function resample(samples, from, to) {
  if (from === to) return Float32Array.from(samples);
  const ratio = to / from;
  const cutoff = 0.5 * Math.min(1, ratio) * ROLLOFF; // cycles per input sample
  const radius = ZERO_CROSSINGS / (2 * cutoff); // kernel half-width in input samples
  const out = new Float32Array(Math.round(samples.length * ratio));
  for (let n = 0; n < out.length; n++) {
    const x = n / ratio; // this output sample's position on the input's time axis
    const first = Math.max(0, Math.ceil(x - radius));
    const last = Math.min(samples.length - 1, Math.floor(x + radius));
    let sum = 0;
    let weight = 0;
    for (let k = first; k <= last; k++) {
      const d = k - x;
      const arg = 2 * cutoff * d;
      const sinc = arg === 0 ? 1 : Math.sin(Math.PI * arg) / (Math.PI * arg);
      const w = sinc * blackman(d / radius);
      sum += w * samples[k];
      weight += w;
    }
    out[n] = weight !== 0 ? sum / weight : 0; // unit gain at DC, also where the kernel meets the clip's ends
  }
  return out;
}

// Float32Array in [-1, 1] → a RIFF/WAVE file: PCM, 16 bits, one channel.
export function encodeWav(samples, rate) {
  const buffer = new ArrayBuffer(44 + 2 * samples.length);
  const view = new DataView(buffer);
  const ascii = (at, text) => { for (let i = 0; i < text.length; i++) view.setUint8(at + i, text.charCodeAt(i)); };
  ascii(0, "RIFF");
  view.setUint32(4, 36 + 2 * samples.length, true);
  ascii(8, "WAVE");
  ascii(12, "fmt ");
  view.setUint32(16, 16, true); // fmt chunk size
  view.setUint16(20, 1, true); // PCM
  view.setUint16(22, 1, true); // mono
  view.setUint32(24, rate, true);
  view.setUint32(28, 2 * rate, true); // bytes per second
  view.setUint16(32, 2, true); // block align
  view.setUint16(34, 16, true); // bits per sample
  ascii(36, "data");
  view.setUint32(40, 2 * samples.length, true);
  for (let i = 0; i < samples.length; i++) {
    const s = Math.max(-1, Math.min(1, samples[i]));
    view.setInt16(44 + 2 * i, Math.round(s < 0 ? s * 0x8000 : s * 0x7fff), true);
  }
  return buffer;
}

// One line for each way getUserMedia fails (DOMException names from the Media Capture spec).
export function microphoneError(error) {
  const name = error && error.name;
  if (name === "NotAllowedError" || name === "SecurityError") {
    return new Error("Microphone access was denied: allow the microphone for this page in the browser's site settings, or upload a WAV file instead.");
  }
  if (name === "NotFoundError" || name === "OverconstrainedError") return new Error("No microphone found: connect one, or upload a WAV file instead.");
  if (name === "NotReadableError") return new Error("The microphone is in use by another program or could not be opened: close that program, or upload a WAV file instead.");
  return new Error(`Could not record: ${error && error.message ? error.message : String(error)}`);
}

// start() asks for the microphone and records; stop() → { samples: Float32Array, rate } at the context's rate.
export class Recorder {
  async start() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      throw new Error("This page cannot use the microphone: browsers allow it on https:// or http://localhost pages only; upload a WAV file instead.");
    }
    try {
      this.stream = await navigator.mediaDevices.getUserMedia({
        audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
      });
    } catch (error) {
      throw microphoneError(error);
    }
    this.context = new AudioContext();
    await this.context.audioWorklet.addModule("/console/js/capture-worklet.js");
    this.chunks = [];
    this.node = new AudioWorkletNode(this.context, "pcm-capture", { numberOfInputs: 1, numberOfOutputs: 0 });
    this.node.port.onmessage = (event) => this.chunks.push(event.data);
    this.context.createMediaStreamSource(this.stream).connect(this.node);
    await this.context.resume();
    this.started = performance.now();
  }

  // Ends a recording without keeping it (the page is left mid-recording): the microphone is released.
  cancel() {
    if (!this.started) return;
    this.started = null;
    this.stream.getTracks().forEach((track) => track.stop());
    this.context.close();
  }

  seconds() {
    return this.started ? (performance.now() - this.started) / 1000 : 0;
  }

  async stop() {
    const rate = this.context.sampleRate;
    this.stream.getTracks().forEach((track) => track.stop());
    await new Promise((done) => setTimeout(done, 50)); // blocks the worklet posted before the tracks ended
    await this.context.close();
    const length = this.chunks.reduce((n, c) => n + c.length, 0);
    const samples = new Float32Array(length);
    let at = 0;
    for (const chunk of this.chunks) { samples.set(chunk, at); at += chunk.length; }
    this.started = null;
    return { samples, rate };
  }
}

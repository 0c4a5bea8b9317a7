// Drawing a digit and turning it into a model input.
//
// Strokes are white on black, like MNIST and scikit-learn's digits, where ink is the high
// value (255 or 16) and the background 0. The drawing is cropped to its bounding box,
// made square around the box's centre, and area-averaged (a box filter: every output
// pixel is the mean of the canvas pixels it covers, partial pixels by their covered
// fraction) into a `fit`-sized square centred in the model's frame — MNIST centres each
// digit in a 20x20 box of the 28x28 frame. Rows go top to bottom, columns left to right:
// the orientation of the training images.

// Ink per canvas pixel in 0..1, from the red channel of white-on-black RGBA data.
export function inkFromImageData(image) {
  const ink = new Float32Array(image.width * image.height);
  for (let i = 0; i < ink.length; i++) ink[i] = image.data[4 * i] / 255;
  return ink;
}

function boundingBox(ink, width, height, threshold = 0.02) {
  let x0 = width, y0 = height, x1 = -1, y1 = -1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (ink[y * width + x] > threshold) {
        if (x < x0) x0 = x; if (x > x1) x1 = x;
        if (y < y0) y0 = y; if (y > y1) y1 = y;
      }
    }
  }
  return x1 < 0 ? null : { x0, y0, x1: x1 + 1, y1: y1 + 1 };
}

// For n output cells over [start, start + size) of a source axis of `limit` pixels: per cell
// the list of [source index, covered fraction]; pixels outside the canvas are background.
function coverage(start, size, n, limit) {
  const step = size / n;
  const cells = [];
  for (let i = 0; i < n; i++) {
    const a = start + i * step;
    const b = a + step;
    const parts = [];
    for (let p = Math.floor(a); p < Math.ceil(b); p++) {
      const w = Math.min(b, p + 1) - Math.max(a, p);
      if (w > 0 && p >= 0 && p < limit) parts.push([p, w / step]);
    }
    cells.push(parts);
  }
  return cells;
}

// ink (width x height, 0..1) → Float32Array(rows * cols) in 0..1, row-major.
export function downsample(ink, width, height, { rows, cols, fit = 1 }) {
  const out = new Float32Array(rows * cols);
  const box = boundingBox(ink, width, height);
  if (!box) return out;
  const side = Math.max(box.x1 - box.x0, box.y1 - box.y0);
  const cx = (box.x0 + box.x1) / 2;
  const cy = (box.y0 + box.y1) / 2;
  const target = Math.max(1, Math.round(fit * Math.min(rows, cols)));
  const top = Math.floor((rows - target) / 2);
  const left = Math.floor((cols - target) / 2);
  const xs = coverage(cx - side / 2, side, target, width);
  const ys = coverage(cy - side / 2, side, target, height);
  for (let r = 0; r < target; r++) {
    for (let c = 0; c < target; c++) {
      let sum = 0;
      for (const [y, wy] of ys[r]) for (const [x, wx] of xs[c]) sum += ink[y * width + x] * wy * wx;
      out[(top + r) * cols + left + c] = Math.min(1, sum);
    }
  }
  return out;
}

// Pixels (rows x cols, 0..1) → one instance shaped like the model's raw input, scaled to
// the training images' range; three channels repeat the gray value.
export function toInstance(pixels, shape, { channels = 1, max_value: maxValue = 255 }) {
  const flat = [];
  for (let ch = 0; ch < channels; ch++) for (const v of pixels) flat.push(Math.round(v * maxValue * 1000) / 1000);
  let i = 0;
  const build = (dims) => {
    if (!dims.length) return flat[i++];
    return Array.from({ length: dims[0] }, () => build(dims.slice(1)));
  };
  return build(shape);
}

// A square canvas to draw on with the mouse, a pen or a finger.
export function drawingPad(canvas, { lineWidth = 22, onStroke } = {}) {
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  const reset = () => {
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
  };
  reset();
  let last = null;
  const point = (event) => {
    const rect = canvas.getBoundingClientRect();
    return [(event.clientX - rect.left) * (canvas.width / rect.width), (event.clientY - rect.top) * (canvas.height / rect.height)];
  };
  const line = (a, b) => {
    ctx.strokeStyle = "#fff";
    ctx.fillStyle = "#fff";
    ctx.lineWidth = lineWidth;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.beginPath();
    ctx.moveTo(a[0], a[1]);
    ctx.lineTo(b[0], b[1]);
    ctx.stroke();
  };
  canvas.addEventListener("pointerdown", (event) => {
    canvas.setPointerCapture(event.pointerId);
    last = point(event);
    line(last, last);
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!last) return;
    const p = point(event);
    line(last, p);
    last = p;
  });
  const end = () => {
    if (last && onStroke) onStroke();
    last = null;
  };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  return {
    clear: reset,
    line,
    ink: () => inkFromImageData(ctx.getImageData(0, 0, canvas.width, canvas.height)),
  };
}

// Show pixels (0..1) on a small canvas, scaled up with visible pixels.
export function preview(canvas, pixels, rows, cols) {
  canvas.width = cols;
  canvas.height = rows;
  const ctx = canvas.getContext("2d");
  const image = ctx.createImageData(cols, rows);
  pixels.forEach((v, i) => {
    const g = Math.round(v * 255);
    image.data.set([g, g, g, 255], 4 * i);
  });
  ctx.putImageData(image, 0, 0);
}

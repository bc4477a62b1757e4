// FoleyGen live page: camera frames on the model's frame grid -> WebSocket -> audio chunks -> WebAudio.
// Wire format: see foleygen/web_live.py. Everything the page measures is also in window.liveStats
// (read by the browser test).
"use strict";

const BASE = document.body.dataset.base || "/live";
const FRAME_HEADER_BYTES = 16; // <dHHI: capture time (ms), width, height, sequence number
const AUDIO_HEADER_BYTES = 16; // <dII: first timeline sample, samples per channel, channels
const PLAYOUT_MARGIN_S = 0.15; // jitter buffer ahead of the first chunk
const REBUFFER_MARGIN_S = 0.05; // extra slack added when a chunk came too late
const MAX_BUFFERED_BYTES = 1 << 20; // socket backlog beyond which the page drops frames itself
const $ = (id) => document.getElementById(id);

const stats = {
  state: "loading", // loading | ready | running | ended | refused | busy | error
  message: "",
  info: null,
  t0: null, // performance.now() of timeline frame 0
  framesSent: 0,
  lastSlotSent: -1, // the last frame that went out: the timeline ends one frame after it
  framesDroppedHere: 0, // not sent: the socket was backed up
  chunks: 0,
  samplesReceived: 0, // per channel
  sumAbs: 0, // over all channels, to compare with the server's audio
  lastSampleEnd: 0, // timeline sample where the latest chunk ends
  latencies: [], // ms, per chunk: arrival - capture time of the frame its last sample belongs to
  skips: [],
  rebuffers: 0, // a chunk came after its playback time: playback moved later by the difference
  server: null, // the latest "stats" or "ended" message
  playbackDelayMs: null,
};
window.liveStats = stats;

let info = null;
let ctx = null;
let ws = null;
let camera = null;
let running = false;
let lastSlot = -1;
let seq = 0;
let playBase = null; // AudioContext time of timeline sample 0
const canvas = $("model-view");
const draw = canvas.getContext("2d", { willReadFrequently: true });

function setStatus(text, kind) {
  stats.message = text;
  const el = $("status");
  el.textContent = text;
  el.className = kind || "";
}

function fmt(x, digits) {
  return x === null || x === undefined || !isFinite(x) ? "–" : Number(x).toFixed(digits);
}

async function load() {
  try {
    const response = await fetch(BASE + "/info", { cache: "no-store" });
    info = await response.json();
  } catch (err) {
    stats.state = "error";
    setStatus("cannot reach the server: " + err, "error");
    return;
  }
  stats.info = info;
  if (info.refused) {
    stats.state = "refused";
    $("model-line").textContent = "Model " + info.model + ".";
    setStatus(info.refused, "error");
    return;
  }
  const f = info.frame;
  const size = f.mode === "crop" ? f.side + "×" + f.side + " centre crop" : "short side ≤ " + f.short_side + " px";
  $("model-line").textContent =
    "Model " + info.model + ": " + info.fps + " frames/s (" + size + "), audio " + info.sample_rate + " Hz.";
  $("minimum").textContent = fmt(info.latency.total * 1000, 0) + " ms (delay pattern, visual lookahead, codec context, one frame)";
  stats.state = "ready";
  setStatus("Ready: press Start camera (the browser will ask to use it).");
  $("start").disabled = false;
}

async function start() {
  $("start").disabled = true;
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    stats.state = "error";
    setStatus("this browser gives no camera access here (it needs https or localhost, and getUserMedia)", "error");
    return;
  }
  try {
    // The model's own rate: no sample-rate conversion, so chunks join sample-exactly.
    ctx = new AudioContext({ sampleRate: info.sample_rate });
  } catch (err) {
    ctx = new AudioContext();
  }
  await ctx.resume();
  try {
    camera = await navigator.mediaDevices.getUserMedia({
      video: { frameRate: { ideal: info.fps }, width: { ideal: 640 }, height: { ideal: 480 } },
      audio: false,
    });
  } catch (err) {
    stats.state = "error";
    setStatus("no camera: " + err.name + (err.message ? " (" + err.message + ")" : ""), "error");
    $("start").disabled = false;
    return;
  }
  const video = $("preview");
  video.srcObject = camera;
  await video.play();
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  ws = new WebSocket(proto + "//" + location.host + BASE + "/ws");
  ws.binaryType = "arraybuffer";
  ws.onmessage = onMessage;
  ws.onclose = (event) => {
    running = false;
    if (stats.state === "running") {
      stats.state = "error";
      setStatus("the connection closed (" + event.code + (event.reason ? ": " + event.reason : "") + ")", "error");
    }
    stopCamera();
  };
  setStatus("Connecting…");
}

function stopCamera() {
  running = false;
  if (camera) camera.getTracks().forEach((t) => t.stop());
  camera = null;
  $("stop").disabled = true;
}

function stop() {
  running = false;
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "stop" }));
  stopCamera();
  setStatus("Stopping: the last audio is being finished…");
}

function onMessage(event) {
  if (typeof event.data !== "string") return onAudio(event.data);
  const msg = JSON.parse(event.data);
  if (msg.type === "hello") {
    info = Object.assign(info, msg);
    stats.state = "running";
    running = true;
    $("stop").disabled = false;
    setStatus("Live: the soundtrack follows the camera.", "ok");
    tick();
  } else if (msg.type === "stats") {
    stats.server = msg;
    showServer(msg);
  } else if (msg.type === "skip") {
    stats.skips.push(msg);
  } else if (msg.type === "ended") {
    stats.server = msg;
    stats.state = "ended";
    showServer(msg);
    setStatus("Stopped. " + fmt(stats.samplesReceived / info.sample_rate, 1) + " s of audio generated.");
    $("start").disabled = false;
    ws.close();
  } else if (msg.type === "busy" || msg.type === "error") {
    stats.state = msg.type;
    setStatus(msg.message, msg.type === "busy" ? "warn" : "error");
    stopCamera();
    $("start").disabled = false;
  }
}

// Frames go out on the model's grid: slot k at t0 + k / fps, the frame on screen at that moment.
function tick() {
  if (!running) return;
  const video = $("preview");
  const period = 1000 / info.fps;
  const now = performance.now();
  if (video.readyState >= 2 && video.videoWidth > 0) {
    if (stats.t0 === null) stats.t0 = now;
    // floor: a frame goes out at or after its slot's time (the 0.05 absorbs a timer firing a hair early)
    const slot = Math.floor((now - stats.t0) / period + 0.05);
    if (slot > lastSlot) {
      lastSlot = slot;
      if (ws.bufferedAmount > MAX_BUFFERED_BYTES) stats.framesDroppedHere++;
      else sendFrame(video, stats.t0 + slot * period, slot);
    }
  }
  const next = stats.t0 === null ? now + period : stats.t0 + (lastSlot + 1) * period;
  setTimeout(tick, Math.max(0, next - performance.now()));
}

function frameSize(vw, vh) {
  const f = info.frame;
  if (f.mode === "crop") {
    const side = Math.min(vw, vh);
    return { w: f.side, h: f.side, sx: (vw - side) / 2, sy: (vh - side) / 2, sw: side, sh: side };
  }
  const scale = Math.min(1, f.short_side / Math.min(vw, vh));
  return { w: Math.round(vw * scale), h: Math.round(vh * scale), sx: 0, sy: 0, sw: vw, sh: vh };
}

function sendFrame(video, tMs, slot) {
  const s = frameSize(video.videoWidth, video.videoHeight);
  if (canvas.width !== s.w || canvas.height !== s.h) {
    canvas.width = s.w;
    canvas.height = s.h;
  }
  draw.drawImage(video, s.sx, s.sy, s.sw, s.sh, 0, 0, s.w, s.h);
  const rgba = draw.getImageData(0, 0, s.w, s.h).data;
  const buf = new ArrayBuffer(FRAME_HEADER_BYTES + s.w * s.h * 3);
  const head = new DataView(buf);
  head.setFloat64(0, tMs, true);
  head.setUint16(8, s.w, true);
  head.setUint16(10, s.h, true);
  head.setUint32(12, seq++, true);
  const rgb = new Uint8Array(buf, FRAME_HEADER_BYTES);
  for (let i = 0, j = 0; i < rgba.length; i += 4, j += 3) {
    rgb[j] = rgba[i];
    rgb[j + 1] = rgba[i + 1];
    rgb[j + 2] = rgba[i + 2];
  }
  ws.send(buf);
  stats.framesSent++;
  stats.lastSlotSent = slot;
}

function onAudio(buf) {
  const head = new DataView(buf);
  const offset = head.getFloat64(0, true);
  const n = head.getUint32(8, true);
  const channels = head.getUint32(12, true);
  const pcm = new Float32Array(buf, AUDIO_HEADER_BYTES, n * channels);
  const now = performance.now();
  const sr = info.sample_rate;
  stats.chunks++;
  stats.samplesReceived += n;
  for (let i = 0; i < pcm.length; i++) stats.sumAbs += Math.abs(pcm[i]);
  stats.lastSampleEnd = offset + n;
  stats.latencies.push(now - (stats.t0 + ((offset + n) / sr) * 1000));
  if (stats.latencies.length > 2000) stats.latencies.shift();
  schedule(offset, n, channels, pcm);
  showClient(now);
}

// Chunk at timeline sample `offset` plays at playBase + offset / sr: consecutive chunks join exactly,
// a skipped stretch stays silent, and a late chunk moves the whole playback later (counted).
function schedule(offset, n, channels, pcm) {
  const sr = info.sample_rate;
  const buffer = ctx.createBuffer(channels, n, sr);
  for (let c = 0; c < channels; c++) buffer.copyToChannel(pcm.subarray(c * n, (c + 1) * n), c);
  if (playBase === null) playBase = ctx.currentTime + PLAYOUT_MARGIN_S - offset / sr;
  let at = playBase + offset / sr;
  if (at < ctx.currentTime) {
    playBase += ctx.currentTime + REBUFFER_MARGIN_S - at;
    at = playBase + offset / sr;
    stats.rebuffers++;
  }
  const source = ctx.createBufferSource();
  source.buffer = buffer;
  source.connect(ctx.destination);
  source.start(at);
  // How long after its capture a moment is heard: the chunk's latency plus the time it waits to play.
  const lastLatency = stats.latencies[stats.latencies.length - 1];
  stats.playbackDelayMs = lastLatency + (at - ctx.currentTime) * 1000;
}

function median(xs) {
  if (!xs.length) return null;
  const s = xs.slice().sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function showClient(now) {
  const sr = info.sample_rate;
  const elapsed = (now - stats.t0) / 1000;
  const audio = stats.samplesReceived / sr;
  const recent = stats.latencies.slice(-50);
  $("keepup").textContent = fmt(audio, 1) + " s in " + fmt(elapsed, 1) + " s of camera";
  $("latency").textContent =
    "now " + fmt(recent[recent.length - 1], 0) + " ms, median " + fmt(median(recent), 0) + " ms, max " +
    fmt(Math.max(...recent), 0) + " ms (last " + recent.length + " chunks)";
  $("playback").textContent =
    "heard " + fmt(stats.playbackDelayMs, 0) + " ms after the camera; " + stats.rebuffers + " rebuffer(s)";
}

function showServer(s) {
  const rtf = $("rtf");
  rtf.textContent = s.rtf === null ? "–" : fmt(s.rtf, 2) + " × real time (" + fmt(s.compute_ms_per_frame, 1) + " ms a frame)";
  rtf.className = s.rtf !== null && s.rtf < 1 ? "error" : "ok";
  const d = $("degrade");
  const parts = [
    s.repeated + " frame(s) repeated",
    s.dropped + " dropped",
    stats.framesDroppedHere + " not sent (socket busy)",
    fmt(s.skipped_s, 2) + " s skipped in " + s.resyncs + " resync(s)",
    "backlog " + fmt(s.backlog_s * 1000, 0) + " ms",
  ];
  d.textContent = parts.join(", ");
  d.className = s.resyncs || s.repeated || s.dropped || stats.framesDroppedHere ? "warn" : "ok";
}

$("start").addEventListener("click", start);
$("stop").addEventListener("click", stop);
load();

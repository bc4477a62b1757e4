// The rating page: one trial at a time, keyboard first. Plain JS, no framework, no inline code (CSP).
"use strict";
(() => {
  const token = location.pathname.split("/")[2];
  const api = `/api/r/${token}`;
  const $ = (id) => document.getElementById(id);
  let trial = null; // the trial on screen
  let shownAt = 0; // when it appeared (ms), for elapsed_ms
  let played = []; // per clip: heard to the end at least once
  let current = 0; // MOS: the question that the digit keys answer
  let sending = false;
  let generation = 0; // bumped per trial: events of a previous trial's clips must not count for this one

  function showError(text) {
    $("error").textContent = text;
    $("error").hidden = !text;
  }

  async function call(path, options) {
    let response;
    try {
      response = await fetch(api + path, { cache: "no-store", ...options });
    } catch (err) {
      throw new Error("the server cannot be reached; your last answer was not saved, press Enter to retry");
    }
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(data.error || `the server said ${response.status}`);
    return data;
  }

  function el(tag, attrs = {}, children = []) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "text") node.textContent = v;
      else node.setAttribute(k, v);
    }
    for (const c of children) node.append(c);
    return node;
  }

  function render(state) {
    document.title = state.title || "Listening test";
    $("title").textContent = state.title || "Listening test";
    $("instructions").textContent = state.instructions || "";
    $("progress-bar").style.width = `${state.total ? (100 * state.done) / state.total : 0}%`;
    $("progress-text").textContent = `${state.done} of ${state.total} answered`;
    $("trial").hidden = state.finished;
    $("finished").hidden = !state.finished;
    if (state.done === 0 && !state.finished) $("help").open = true;
    if (state.finished) return;
    trial = state.trial;
    shownAt = Date.now();
    current = 0;
    played = trial.clips.map(() => false);
    const gen = ++generation;
    const clips = $("clips");
    clips.querySelectorAll("video").forEach((v) => { v.pause(); v.removeAttribute("src"); v.load(); });
    clips.replaceChildren();
    trial.clips.forEach((src, i) => {
      const video = el("video", { id: `clip${i}`, src, controls: "", preload: "auto", playsinline: "" });
      video.addEventListener("ended", () => markPlayed(gen, i));
      video.addEventListener("timeupdate", () => {
        if (video.duration && video.currentTime >= video.duration - 0.25) markPlayed(gen, i);
      });
      video.addEventListener("play", () => {
        document.querySelectorAll("#clips video").forEach((v) => v !== video && v.pause());
      });
      const label = trial.kind === "ab" ? el("div", { class: "label", text: i === 0 ? "A (left)" : "B (right)" }) : "";
      clips.append(el("div", { class: "clip" }, [label, video]));
    });
    const questions = $("questions");
    questions.replaceChildren();
    if (trial.kind === "mos") {
      trial.questions.forEach((q, qi) => {
        const options = trial.scale.map((word, vi) => {
          const input = el("input", { type: "radio", name: q.key, value: String(vi + 1), required: "" });
          input.addEventListener("change", () => { current = nextOpen(qi); update(); });
          return el("label", {}, [input, el("span", { text: String(vi + 1) }), el("small", { text: word })]);
        });
        questions.append(el("fieldset", { "data-key": q.key }, [el("legend", { text: q.text }), el("div", { class: "scale" }, options)]));
      });
      $("keys").textContent = "Keys: 1-5 answer the highlighted question, Space play/pause, Enter next.";
    } else {
      const options = ["A (left)", "B (right)"].map((word, i) => {
        const input = el("input", { type: "radio", name: "choice", value: i ? "right" : "left", required: "" });
        input.addEventListener("change", update);
        return el("label", {}, [input, el("span", { text: word })]);
      });
      questions.append(el("fieldset", { "data-key": "choice" }, [el("legend", { text: trial.question }), el("div", { class: "scale" }, options)]));
      $("keys").textContent = "Keys: Q play/pause A, W play/pause B, 1 or \u2190 prefer A, 2 or \u2192 prefer B, Enter next.";
    }
    update();
    const first = $("clip0");
    first.play().catch(() => {}); // autoplay may be refused until the first click; the controls remain
  }

  function markPlayed(gen, i) {
    if (gen === generation && !played[i]) { played[i] = true; update(); }
  }

  function answers() {
    const form = $("form");
    if (trial.kind === "ab") {
      const picked = form.querySelector("input[name=choice]:checked");
      return picked ? { choice: picked.value } : null;
    }
    const values = {};
    for (const q of trial.questions) {
      const picked = form.querySelector(`input[name="${q.key}"]:checked`);
      if (!picked) return null;
      values[q.key] = Number(picked.value);
    }
    return { values };
  }

  function nextOpen(after) {
    const n = trial.questions.length;
    for (let k = 1; k <= n; k++) {
      const qi = (after + k) % n;
      if (!$("form").querySelector(`input[name="${trial.questions[qi].key}"]:checked`)) return qi;
    }
    return after;
  }

  function update() {
    const heard = played.every(Boolean);
    const complete = answers() !== null;
    $("submit").disabled = !(heard && complete) || sending;
    $("hint").textContent = heard ? (complete ? "" : "Answer every question to go on.")
      : (played.length > 1 ? "Play both clips to the end to go on." : "Play the clip to the end to go on.");
    document.querySelectorAll("#questions fieldset").forEach((f, i) => {
      f.classList.toggle("current", trial.kind === "mos" && i === current);
    });
  }

  async function submit(event) {
    if (event) event.preventDefault();
    const body = answers();
    if (!body || !played.every(Boolean) || sending) return;
    sending = true;
    update();
    try {
      const state = await call("/answer", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ position: trial.position, elapsed_ms: Date.now() - shownAt, ...body }),
      });
      showError("");
      sending = false;
      render(state);
      window.scrollTo(0, 0);
    } catch (err) {
      sending = false;
      showError(err.message);
      update();
    }
  }

  function choose(name, value) {
    const input = $("form").querySelector(`input[name="${name}"][value="${value}"]`);
    if (input) { input.checked = true; input.dispatchEvent(new Event("change")); }
  }

  function toggle(video) {
    if (video) video.paused ? video.play().catch(() => {}) : video.pause();
  }

  document.addEventListener("keydown", (e) => {
    if (!trial || $("trial").hidden || e.ctrlKey || e.metaKey || e.altKey) return;
    const onVideo = e.target instanceof HTMLVideoElement;
    if (e.key === "Enter") { e.preventDefault(); submit(); return; }
    if (trial.kind === "mos") {
      if (/^[1-9]$/.test(e.key) && Number(e.key) <= trial.scale.length) {
        e.preventDefault();
        choose(trial.questions[current].key, e.key);
      } else if (e.key === " " && !onVideo) {
        e.preventDefault();
        toggle($("clip0"));
      }
    } else {
      if (e.key === "1" || e.key === "ArrowLeft") { e.preventDefault(); choose("choice", "left"); }
      else if (e.key === "2" || e.key === "ArrowRight") { e.preventDefault(); choose("choice", "right"); }
      else if (e.key === "q" || e.key === "Q") toggle($("clip0"));
      else if (e.key === "w" || e.key === "W") toggle($("clip1"));
    }
  });

  $("form").addEventListener("submit", submit);
  call("/state").then(render).catch((err) => showError(err.message));
})();

// The admin page: each rater's progress and attention checks, refreshed every 5 s. No answers are shown.
"use strict";
(() => {
  const secret = location.pathname.split("/")[2];
  const $ = (id) => document.getElementById(id);

  function cell(text, code) {
    const td = document.createElement("td");
    if (code) {
      const c = document.createElement("code");
      c.textContent = text;
      td.append(c);
    } else td.textContent = text;
    return td;
  }

  async function refresh() {
    try {
      const response = await fetch(`/api/admin/${secret}/progress`, { cache: "no-store" });
      if (!response.ok) throw new Error(`the server said ${response.status}`);
      const data = await response.json();
      $("title").textContent = `${data.title}: progress`;
      const rows = data.raters.map((r) => {
        const tr = document.createElement("tr");
        tr.dataset.rater = r.name;
        const checks = r.checks_total ? `${r.checks_passed ? "passed" : "failed"} (${r.checks_total} checked)` : "none yet";
        tr.append(cell(r.name), cell(location.origin + r.link, true), cell(`${r.done} / ${r.total}`),
          cell(r.last_answer || "-"), cell(checks));
        return tr;
      });
      $("raters").tBodies[0].replaceChildren(...rows);
      const done = data.raters.filter((r) => r.done === r.total).length;
      $("summary").textContent = `${done} of ${data.raters.length} raters finished.`;
      $("error").hidden = true;
    } catch (err) {
      $("error").textContent = `Could not refresh: ${err.message}`;
      $("error").hidden = false;
    }
  }

  refresh();
  setInterval(refresh, 5000);
})();

// Errors of the page's own scripts are collected, so the browser test can assert there are none.
window.__rmErrors = window.__rmErrors || [];
window.addEventListener("error", function (e) { window.__rmErrors.push(String(e.message || e)); });

// Follows a running job: appends log lines, updates the progress bar, reloads when it ends.
// Stops following the tail when the operator scrolls up; resumes at the bottom.
(function () {
  var log = document.getElementById("job-log");
  if (!log || log.dataset.live !== "1") return;
  var next = parseInt(log.dataset.lines || "0", 10);
  var bar = document.getElementById("job-bar");
  var text = document.getElementById("job-progress");
  var follow = true;
  log.addEventListener("scroll", function () {
    follow = log.scrollTop + log.clientHeight >= log.scrollHeight - 8;
  });
  function size(n) {
    var u = ["B", "KiB", "MiB", "GiB", "TiB"], i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : n) + " " + u[i];
  }
  var proto = location.protocol === "https:" ? "wss://" : "ws://";
  var ws = new WebSocket(proto + location.host + "/api/jobs/" + log.dataset.job + "/stream");
  ws.onmessage = function (ev) {
    var f = JSON.parse(ev.data);
    if (f.type === "log") {
      var lines = f.lines || [];
      for (var i = 0; i < lines.length; i++) {
        if (f.first_idx + i < next) continue;
        var s = document.createElement("span");
        s.className = lines[i].stream;
        s.textContent = lines[i].text + "\n";
        log.appendChild(s);
      }
      next = Math.max(next, f.first_idx + lines.length);
      if (follow) log.scrollTop = log.scrollHeight;
    } else if (f.type === "progress" && f.progress) {
      var p = f.progress;
      bar.style.width = p.percent + "%";
      bar.parentNode.setAttribute("aria-valuenow", Math.round(p.percent));
      var eta = p.seconds_remaining ? " · about " + p.seconds_remaining + " s left" : "";
      text.textContent = p.percent.toFixed(1) + "% · " + size(p.bytes_done) + " of " + size(p.total_bytes) +
        " · " + p.files_done + " of " + p.total_files + " files" + eta;
    } else if (f.type === "started") {
      var badge = document.querySelector("#job-status .badge");
      if (badge) badge.textContent = "running";
    } else if (f.type === "finished") {
      location.reload();
    }
  };
})();

// Copy buttons: <button data-copy="ELEMENT-ID">.
(function () {
  var buttons = document.querySelectorAll("button[data-copy]");
  for (var i = 0; i < buttons.length; i++) {
    buttons[i].addEventListener("click", function (ev) {
      var b = ev.currentTarget;
      var text = document.getElementById(b.dataset.copy).textContent;
      var done = function () { b.textContent = "Copied"; setTimeout(function () { b.textContent = "Copy"; }, 2000); };
      if (navigator.clipboard) {
        navigator.clipboard.writeText(text).then(done, function () { b.textContent = "Select and copy"; });
      } else {
        b.textContent = "Select and copy";
      }
    });
  }
})();

// The add-host page waits for the agent: <div data-follow-token="TOKEN-ID">.
(function () {
  var panel = document.querySelector("[data-follow-token]");
  if (!panel) return;
  var status = panel.querySelector(".await-status");
  function poll() {
    fetch("/api/enrollment-tokens/" + panel.dataset.followToken, { credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (s) {
        if (s.host_status === "online") {
          panel.classList.add("connected");
          status.innerHTML = "";
          var a = document.createElement("a");
          a.href = "/hosts/" + s.host_id;
          a.textContent = "Connected — open the host";
          status.appendChild(a);
          return;
        }
        if (s.status === "enrolled") status.textContent = "Enrolled; waiting for the agent to connect…";
        if (s.status === "expired") { status.textContent = "The token expired before an agent used it. Add the host again."; return; }
        setTimeout(poll, 1500);
      })
      .catch(function () { setTimeout(poll, 3000); });
  }
  poll();
})();

// Cron quick-pick chips: <button data-cron="0 3 * * *" aria-controls="INPUT-ID"> fills the input.
(function () {
  var chips = document.querySelectorAll("button[data-cron]");
  function mark(input) {
    for (var j = 0; j < chips.length; j++) {
      chips[j].setAttribute("aria-pressed", chips[j].dataset.cron === input.value.trim() ? "true" : "false");
    }
  }
  for (var i = 0; i < chips.length; i++) {
    chips[i].addEventListener("click", function (ev) {
      var b = ev.currentTarget;
      var input = document.getElementById(b.getAttribute("aria-controls"));
      if (!input) return;
      input.value = b.dataset.cron;
      mark(input);
      var words = document.getElementById(input.id + "-words");
      if (words) words.textContent = "Runs " + b.dataset.words + ".";
      input.focus();
    });
  }
  if (chips.length) {
    var input = document.getElementById(chips[0].getAttribute("aria-controls"));
    if (input) input.addEventListener("input", function () {
      mark(input);
      var words = document.getElementById(input.id + "-words");
      if (words) words.textContent = "";
    });
  }
})();

// Forms that ask first: <form data-confirm="Delete …?">.
document.addEventListener("submit", function (ev) {
  var f = ev.target;
  if (f && f.dataset && f.dataset.confirm && !window.confirm(f.dataset.confirm)) ev.preventDefault();
});

// The time slider (audit page): moves the whole UI's as_of. <div data-as-of-href="/audit?…">
// holds a range over seqs and a datetime input; changing either navigates with ?as_of=.
(function () {
  var box = document.querySelector("[data-as-of-href]");
  if (!box) return;
  var base = box.dataset.asOfHref;
  function go(v) {
    location.href = base + (base.indexOf("?") < 0 ? "?" : "&") + "as_of=" + encodeURIComponent(v);
  }
  var range = document.getElementById("as-of-seq");
  var shown = document.getElementById("as-of-seq-value");
  if (range) {
    range.addEventListener("input", function () { if (shown) shown.textContent = range.value; });
    range.addEventListener("change", function () { go(range.value); });
  }
  var when = document.getElementById("as-of-time");
  if (when) {
    when.addEventListener("change", function () {
      var d = new Date(when.value);
      if (!isNaN(d.getTime())) go(d.toISOString().replace(/\.\d{3}Z$/, "Z"));
    });
  }
})();

// Retention preview (group editor): posts the typed keep-rules to the what-if API and lists
// which snapshots they would keep and remove, with restic's reasons. Nothing is saved.
(function () {
  var box = document.querySelector("[data-what-if]");
  if (!box) return;
  var button = document.getElementById("preview-retention");
  var out = document.getElementById("what-if-result");
  var form = box.closest("form");
  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined) e.textContent = text;
    if (cls) e.className = cls;
    return e;
  }
  function policy() {
    var p = {};
    ["keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly"].forEach(function (k) {
      var f = form && form.elements[k];
      if (f && f.value.trim() !== "") p[k] = parseInt(f.value, 10);
    });
    var w = form && form.elements.keep_within;
    if (w && w.value.trim() !== "") p.keep_within = w.value.trim();
    return p;
  }
  function row(d, kept) {
    var tr = el("tr", undefined, kept ? "keep" : "remove");
    tr.appendChild(el("td", d.short_id));
    tr.appendChild(el("td", d.time));
    tr.appendChild(el("td", kept ? "keep" : "remove"));
    tr.appendChild(el("td", (d.reasons || []).join(", ")));
    return tr;
  }
  button.addEventListener("click", function () {
    out.textContent = "Working it out…";
    fetch(box.dataset.whatIf, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": box.dataset.csrf },
      body: JSON.stringify({ retention_policy: policy() })
    })
      .then(function (r) { return r.json().then(function (j) { return { ok: r.ok, j: j }; }); })
      .then(function (res) {
        out.textContent = "";
        if (!res.ok) {
          out.appendChild(el("p", (res.j.error && res.j.error.message) || "The preview failed.", "error"));
          return;
        }
        var j = res.j;
        out.appendChild(el("p", j.description + ": " + j.keep_count + " kept, " + j.remove_count + " removed."));
        var table = el("table", undefined, "what-if-table");
        var head = el("tr");
        ["Snapshot", "Time", "Decision", "Why"].forEach(function (h) { head.appendChild(el("th", h)); });
        table.appendChild(el("thead")).appendChild(head);
        var body = el("tbody");
        (j.groups || []).forEach(function (g) {
          (g.keep || []).forEach(function (d) { body.appendChild(row(d, true)); });
          (g.remove || []).forEach(function (d) { body.appendChild(row(d, false)); });
        });
        table.appendChild(body);
        out.appendChild(table);
      })
      .catch(function (e) { out.textContent = "The preview failed: " + e; });
  });
})();

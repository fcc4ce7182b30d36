// Errors of the page's own scripts are collected, so the browser test can assert there are none.
window.__rmErrors = window.__rmErrors || [];
window.addEventListener("error", function (e) { window.__rmErrors.push(String(e.message || e)); });

// Shared by the sections below: an element with a class and text, and a size in binary units.
function rmEl(tag, cls, text) {
  var e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}
function rmSize(n) {
  var u = ["B", "KiB", "MiB", "GiB", "TiB"], i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + u[i];
}

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
      text.textContent = p.percent.toFixed(1) + "% · " + rmSize(p.bytes_done) + " of " + rmSize(p.total_bytes) +
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
    var tr = rmEl("tr", kept ? "keep" : "remove");
    tr.appendChild(rmEl("td", "", d.short_id));
    tr.appendChild(rmEl("td", "", d.time));
    tr.appendChild(rmEl("td", "", kept ? "keep" : "remove"));
    tr.appendChild(rmEl("td", "", (d.reasons || []).join(", ")));
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
          out.appendChild(rmEl("p", "error", (res.j.error && res.j.error.message) || "The preview failed."));
          return;
        }
        var j = res.j;
        out.appendChild(rmEl("p", "", j.description + ": " + j.keep_count + " kept, " + j.remove_count + " removed."));
        var table = rmEl("table", "what-if-table");
        var head = rmEl("tr");
        ["Snapshot", "Time", "Decision", "Why"].forEach(function (h) { head.appendChild(rmEl("th", "", h)); });
        table.appendChild(rmEl("thead")).appendChild(head);
        var body = rmEl("tbody");
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

// Restore wizard (/hosts/{id}/restore): folders expand in place, one page of the tree API per
// request (a snapshot with a million files stays fast); a ticked folder covers what is in it;
// the path mapping, the root-owned warning and the overwrite choices follow the form.
(function () {
  var form = document.querySelector("form.restore-form");
  if (!form) return;
  document.documentElement.classList.add("js-tree");
  var tree = document.getElementById("tree");
  var api = tree ? tree.dataset.treeApi : null;
  var PAGE = 200;
  var suffixes = { dir: "/", symlink: "@" };
  function item(e) {
    var dir = e.type === "dir";
    var li = rmEl("li", "entry" + (dir ? " dir" : ""));
    li.dataset.path = e.path;
    var row = rmEl("span", "entry-row");
    if (dir) {
      var b = rmEl("button", "expand", "▸");
      b.type = "button";
      b.setAttribute("aria-expanded", "false");
      b.setAttribute("aria-label", "Show what " + e.name + " holds");
      b.dataset.path = e.path;
      row.appendChild(b);
    } else {
      row.appendChild(rmEl("span", "expand-spacer"));
    }
    var label = rmEl("label");
    var box = rmEl("input");
    box.type = "checkbox";
    box.name = "pick";
    box.value = (e.uid || 0) + ":" + e.path;
    box.dataset.uid = String(e.uid || 0);
    label.appendChild(box);
    label.appendChild(document.createTextNode(" "));
    var name = rmEl("span", "name", e.name);
    var suffix = rmEl("span", "suffix", suffixes[e.type] || "");
    suffix.setAttribute("aria-hidden", "true");
    name.appendChild(suffix);
    label.appendChild(name);
    row.appendChild(label);
    var meta = (e.type === "file" ? rmSize(e.size || 0) + " · " : "") +
      (e.uid ? "uid " + e.uid : "root") + " · " + String(e.mtime || "").slice(0, 16).replace("T", " ");
    row.appendChild(rmEl("span", "meta", meta));
    li.appendChild(row);
    return li;
  }
  function load(ul, path, offset) {
    var wait = rmEl("li", "muted loading", "Loading…");
    ul.appendChild(wait);
    fetch(api + "?path=" + encodeURIComponent(path) + "&offset=" + offset + "&limit=" + PAGE, { credentials: "same-origin" })
      .then(function (r) { return r.json().then(function (j) { return { ok: r.ok, j: j }; }); })
      .then(function (res) {
        ul.removeChild(wait);
        if (!res.ok) {
          ul.appendChild(rmEl("li", "error", (res.j.error && res.j.error.message) || "The agent could not list it."));
          return;
        }
        var entries = res.j.entries || [];
        if (!entries.length && offset === 0) ul.appendChild(rmEl("li", "muted", "Empty folder."));
        entries.forEach(function (e) { ul.appendChild(item(e)); });
        var shown = offset + entries.length;
        if (shown < res.j.total) {
          var li = rmEl("li", "more");
          var more = rmEl("button", "more-button", "Show " + Math.min(PAGE, res.j.total - shown) + " more of " + (res.j.total - shown) + " left");
          more.type = "button";
          more.addEventListener("click", function () { ul.removeChild(li); load(ul, path, shown); });
          li.appendChild(more);
          ul.appendChild(li);
        }
        sync();
      })
      .catch(function (e) {
        if (wait.parentNode) ul.removeChild(wait);
        ul.appendChild(rmEl("li", "error", "Listing failed: " + e));
      });
  }
  if (tree && api) {
    tree.addEventListener("click", function (ev) {
      var b = ev.target.closest("button.expand");
      if (!b) return;
      var li = b.closest("li");
      var ul = li.querySelector(":scope > ul");
      if (b.getAttribute("aria-expanded") === "true") {
        b.setAttribute("aria-expanded", "false");
        b.textContent = "▸";
        if (ul) ul.hidden = true;
        return;
      }
      b.setAttribute("aria-expanded", "true");
      b.textContent = "▾";
      if (ul) { ul.hidden = false; return; }
      ul = rmEl("ul", "tree");
      ul.setAttribute("role", "group");
      li.appendChild(ul);
      load(ul, b.dataset.path, 0);
    });
  }
  function landing(target, path) {
    if (path.charAt(0) !== "/") path = "/" + path;
    return target === "/" ? path : target.replace(/\/+$/, "") + path;
  }
  function sync() {
    var boxes = form.querySelectorAll("input[name=pick]");
    var picked = [], root = [];
    for (var i = 0; i < boxes.length; i++) {
      var box = boxes[i];
      var ownLi = box.closest("#tree li");
      var parentLi = ownLi ? ownLi.parentNode.closest("li") : null;
      var parentBox = parentLi ? parentLi.querySelector(":scope > .entry-row input[name=pick]") : null;
      var covered = !!(parentBox && (parentBox.checked || parentBox.disabled));
      if (covered && !box.disabled) {
        box.dataset.was = box.checked ? "1" : "0";
        box.checked = true;
        box.disabled = true;
      } else if (!covered && box.disabled) {
        box.disabled = false;
        box.checked = box.dataset.was === "1";
      }
      if (box.checked && !box.disabled) {
        var path = box.value.slice(box.value.indexOf(":") + 1);
        picked.push(path);
        if (box.dataset.uid === "0") root.push(path);
      }
    }
    var typed = form.elements.typed_paths ? form.elements.typed_paths.value.split("\n") : [];
    typed.forEach(function (t) { t = t.trim(); if (t) picked.push(t); });
    picked = picked.filter(function (p, k) { return picked.indexOf(p) === k; });
    root = root.filter(function (p, k) { return root.indexOf(p) === k; });
    var sel = form.elements.target_host_id;
    var opt = sel ? sel.options[sel.selectedIndex] : null;
    var host = opt ? opt.dataset.hostname : "";
    var loc = form.querySelector("input[name=location]:checked");
    var tp = form.elements.target_path ? form.elements.target_path.value.trim() : "";
    var target = loc && loc.value === "path" ? (tp || "…") : "/";
    var summary = document.getElementById("picked-summary");
    if (summary) summary.textContent = picked.length ? picked.length + " path" + (picked.length === 1 ? "" : "s") + " chosen." : "Nothing ticked: the whole snapshot.";
    var map = document.getElementById("restore-mapping");
    if (map) {
      map.textContent = "";
      if (!picked.length) {
        map.appendChild(rmEl("p", "hint", "The whole snapshot goes to " + (target === "/" ? "its original location" : target) + " on " + host + "."));
      } else {
        var ul = rmEl("ul", "mapping-preview");
        picked.slice(0, 20).forEach(function (p) {
          var li = rmEl("li");
          li.appendChild(rmEl("code", "", p));
          li.appendChild(document.createTextNode(" → " + host + ":"));
          li.appendChild(rmEl("code", "", landing(target, p)));
          ul.appendChild(li);
        });
        if (picked.length > 20) ul.appendChild(rmEl("li", "muted", "and " + (picked.length - 20) + " more"));
        map.appendChild(ul);
      }
    }
    var warn = document.getElementById("root-warning");
    if (warn) {
      var uid = opt ? opt.dataset.uid : undefined;
      if (uid !== undefined && uid !== "0" && root.length) {
        warn.hidden = false;
        warn.textContent = root.length + " of the ticked paths " + (root.length === 1 ? "is" : "are") + " owned by root, but the agent on " + host +
          " runs as uid " + uid + ": restic cannot give them back their owner" + (target === "/" ? " or write where only root may" : "") + ".";
      } else {
        warn.hidden = true;
        warn.textContent = "";
      }
    }
    var policies = opt ? (opt.dataset.policies || "always").split(" ") : ["always"];
    var radios = form.querySelectorAll("input[name=overwrite]");
    for (var j = 0; j < radios.length; j++) {
      var ok = policies.indexOf(radios[j].value) >= 0;
      radios[j].disabled = !ok;
      var needs = radios[j].parentNode.querySelector(".needs");
      if (needs) needs.hidden = ok;
      if (!ok && radios[j].checked) {
        radios[j].checked = false;
        var always = form.querySelector("input[name=overwrite][value=always]");
        if (always) always.checked = true;
      }
    }
  }
  form.addEventListener("change", sync);
  form.addEventListener("input", sync);
  sync();
})();

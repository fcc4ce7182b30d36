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
    } else if (f.type === "finished") {
      location.reload();
    }
  };
})();

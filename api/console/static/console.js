// The console's one script (no library, no build step): keep the page's live part current.
// It listens to the control plane's event stream and, on each event, refetches the page's
// fragment (the same URL with fragment=1) and swaps it in. Events in a burst are coalesced:
// one fetch in flight, at most one more queued. A lost session sends the page to login.
(function () {
  "use strict";
  var live = document.getElementById("live");
  var badge = document.getElementById("live-status");
  if (!live || !window.EventSource) { return; }
  var inFlight = false, queued = false;
  window.continuumConsole = { events: 0, swaps: 0, lastEventAt: 0, lastSwapAt: 0 };

  function fragmentUrl() {
    var params = new URLSearchParams(window.location.search);
    params.set("fragment", "1");
    return window.location.pathname + "?" + params.toString();
  }

  function refresh() {
    if (inFlight) { queued = true; return; }
    inFlight = true;
    fetch(fragmentUrl(), { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) {
        if (r.redirected || r.status === 401) { window.location.assign("/console/login"); return null; }
        return r.ok ? r.text() : null;
      })
      .then(function (html) {
        if (html !== null && html !== undefined) {
          live.innerHTML = html;
          window.continuumConsole.swaps += 1;
          window.continuumConsole.lastSwapAt = Date.now();
        }
      })
      .catch(function () { /* the next event tries again */ })
      .then(function () {
        inFlight = false;
        if (queued) { queued = false; refresh(); }
      });
  }

  var kinds = ["placement", "rollout", "device", "deployment", "trigger", "replacement"];
  var source = new EventSource("/console/events");
  source.onopen = function () { badge.textContent = "live"; badge.className = "live-status on"; };
  source.onerror = function () {
    badge.textContent = "reconnecting…"; badge.className = "live-status off";
    // A stream that ends may mean the session did: a refresh finds out (and goes to login).
    refresh();
  };
  // The last events, with the server's time of each and when it arrived (for
  // bench/console.py, which times an event to the page showing it).
  var log = window.continuumConsole.log = [];
  kinds.forEach(function (kind) {
    source.addEventListener(kind, function (e) {
      var at = null, target = null;
      try {
        var message = JSON.parse(e.data);
        at = message.at;
        target = message.device_id || null;
      } catch (err) { /* keep going */ }
      log.push({ kind: kind, at: at, target: target, received: Date.now() });
      if (log.length > 100) { log.shift(); }
      window.continuumConsole.events += 1;
      window.continuumConsole.lastEventAt = Date.now();
      refresh();
    });
  });
  // Charts also move without events: one more point every sampling interval.
  if (window.location.pathname === "/console/charts") { setInterval(refresh, 15000); }
})();

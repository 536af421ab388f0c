// The script every page loads (no build step, nothing else required):
// 1. times in the reader's own time zone: the server writes
//    <time datetime="2026-07-01T12:00:00Z">2026-07-01T12:00:00Z</time>, which stays
//    as it is without JavaScript; here it becomes local, the UTC text kept as a tooltip;
// 2. live sections: every element with `data-live` and an id is refreshed from a
//    fresh copy of the same page every REFRESH_MS, while the tab is visible, without
//    a reload (the reader keeps their scroll position and whatever they were reading).
(function () {
  "use strict";
  var REFRESH_MS = 20000;

  var local = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "short", day: "numeric",
    hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short"
  });

  // 3. countdowns: <span data-countdown="RFC 3339" data-what="closes"> counts
  //    down every second ("closes in 2 h 5 min"); the server's text stays without JS.
  function words(ms) {
    var s = Math.max(0, Math.floor(ms / 1000));
    var d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
    if (d) return d + " d " + h + " h";
    if (h) return h + " h " + m + " min";
    if (m) return m + " min " + (s % 60) + " s";
    return s + " s";
  }
  function countdowns() {
    var all = document.querySelectorAll("[data-countdown]");
    if (!all.length) return;
    function tick() {
      for (var i = 0; i < all.length; i++) {
        var el = all[i];
        var at = new Date(el.getAttribute("data-countdown")).getTime();
        if (isNaN(at)) continue;
        var left = at - Date.now();
        var what = el.getAttribute("data-what") || "";
        el.textContent = left > 0 ? what + " in " + words(left) : what + " now: reload the page";
      }
    }
    tick();
    setInterval(tick, 1000);
  }

  function localTimes(root) {
    var times = root.querySelectorAll("time[datetime]");
    for (var i = 0; i < times.length; i++) {
      var el = times[i];
      var at = new Date(el.getAttribute("datetime"));
      if (isNaN(at.getTime())) continue;
      if (!el.title) el.title = el.textContent.trim();
      el.textContent = local.format(at);
      el.classList.add("local");
    }
  }

  // What the server sent for each live section, before times were made local:
  // a refresh replaces a section only when the server's version changed.
  var served = {};
  var live = document.querySelectorAll("[data-live][id]");
  for (var i = 0; i < live.length; i++) served[live[i].id] = live[i].innerHTML;
  localTimes(document);
  countdowns();
  if (!live.length) return;

  var busy = false;
  function refresh() {
    if (busy || document.hidden) return;
    busy = true;
    fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.text();
      })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html");
        var changed = false;
        var sections = document.querySelectorAll("[data-live][id]");
        for (var i = 0; i < sections.length; i++) {
          var el = sections[i];
          var next = fresh.getElementById(el.id);
          if (!next || next.innerHTML === served[el.id]) continue;
          served[el.id] = next.innerHTML;
          el.innerHTML = next.innerHTML;
          localTimes(el);
          changed = true;
        }
        // Pictures inside live sections (the score chart) have a URL that never
        // changes: fetch them again, past the browser's cache, when the data did.
        if (changed) {
          var pictures = document.querySelectorAll("[data-live] img");
          for (var k = 0; k < pictures.length; k++) {
            var src = pictures[k].getAttribute("src").split("?")[0];
            pictures[k].setAttribute("src", src + "?at=" + Date.now());
          }
        }
      })
      .catch(function () { /* offline or restarting: try again next time */ })
      .then(function () { busy = false; });
  }

  window.setInterval(refresh, REFRESH_MS);
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) refresh();
  });
})();

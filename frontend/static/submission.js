// Follow a submission's status without reloading: poll the JSON API until it is final.
(function () {
  var box = document.getElementById("submission");
  if (!box) return;
  var finals = ["scored", "rejected", "failed"];
  if (finals.indexOf(box.dataset.status) >= 0) return;
  var id = box.dataset.id;
  function poll() {
    fetch("/api/v1/submissions/" + id, { credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (s) {
        var status = document.getElementById("status");
        status.textContent = s.status;
        status.className = "badge status-" + s.status;
        document.getElementById("message").textContent = s.message || "";
        // A final state brings results: render them server-side with one reload.
        if (finals.indexOf(s.status) >= 0) { window.location.reload(); return; }
        setTimeout(poll, 1000);
      })
      .catch(function () { setTimeout(poll, 3000); });
  }
  setTimeout(poll, 1000);
})();

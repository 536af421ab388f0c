// The playground: a 28x28 digit to draw on or load, perturb, measure against
// the challenge's budget, show to the white-box targets, and download as .npy.
// Vanilla JS, no build step; the page says what each control does.
(function () {
  "use strict";
  var root = document.getElementById("playground");
  if (!root) return;
  var slug = root.getAttribute("data-slug");
  var norm = root.getAttribute("data-norm");
  var epsilon = parseFloat(root.getAttribute("data-epsilon") || "0");
  var csrf = root.getAttribute("data-csrf");
  var canvas = document.getElementById("pg-canvas");
  var ctx = canvas.getContext("2d");
  var N = 28, SCALE = canvas.width / N;
  var original = new Float32Array(N * N);
  var current = new Float32Array(N * N);
  var drawing = false;

  function draw() {
    var img = ctx.createImageData(N, N);
    for (var i = 0; i < N * N; i++) {
      var v = Math.round(Math.max(0, Math.min(1, current[i])) * 255);
      img.data[4 * i] = v; img.data[4 * i + 1] = v; img.data[4 * i + 2] = v; img.data[4 * i + 3] = 255;
    }
    var tmp = document.createElement("canvas");
    tmp.width = N; tmp.height = N;
    tmp.getContext("2d").putImageData(img, 0, 0);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(tmp, 0, 0, canvas.width, canvas.height);
    measure();
  }

  function measure() {
    var linf = 0, l2 = 0;
    for (var i = 0; i < N * N; i++) {
      var d = Math.abs(current[i] - original[i]);
      if (d > linf) linf = d;
      l2 += d * d;
    }
    l2 = Math.sqrt(l2);
    var used = norm === "l2" ? l2 : linf;
    var out = document.getElementById("pg-distance");
    out.textContent = "L-inf " + linf.toFixed(3) + " · L2 " + l2.toFixed(3) +
      (epsilon > 0 ? " · budget " + norm + " " + epsilon + (used <= epsilon + 1e-6 ? " (inside)" : " (outside: scored as the clean digit)") : "");
    out.className = epsilon > 0 && used > epsilon + 1e-6 ? "flash error" : "hint";
  }

  function paint(ev) {
    var r = canvas.getBoundingClientRect();
    var p = ev.touches ? ev.touches[0] : ev;
    var x = Math.floor((p.clientX - r.left) / r.width * N);
    var y = Math.floor((p.clientY - r.top) / r.height * N);
    for (var dy = -1; dy <= 1; dy++) for (var dx = -1; dx <= 1; dx++) {
      var xx = x + dx, yy = y + dy;
      if (xx < 0 || yy < 0 || xx >= N || yy >= N) continue;
      var add = dx === 0 && dy === 0 ? 1 : 0.35;
      current[yy * N + xx] = Math.min(1, current[yy * N + xx] + add);
    }
    draw();
  }
  canvas.addEventListener("mousedown", function (e) { drawing = true; paint(e); });
  canvas.addEventListener("mousemove", function (e) { if (drawing) paint(e); });
  window.addEventListener("mouseup", function () { drawing = false; });
  canvas.addEventListener("touchstart", function (e) { drawing = true; paint(e); e.preventDefault(); });
  canvas.addEventListener("touchmove", function (e) { if (drawing) paint(e); e.preventDefault(); });
  canvas.addEventListener("touchend", function () { drawing = false; });

  document.getElementById("pg-clear").addEventListener("click", function () {
    original = new Float32Array(N * N); current = new Float32Array(N * N); draw();
  });
  document.getElementById("pg-reset").addEventListener("click", function () {
    current = original.slice(); draw();
  });
  document.getElementById("pg-keep").addEventListener("click", function () {
    original = current.slice(); draw();
  });
  document.getElementById("pg-noise").addEventListener("click", function () {
    var a = parseFloat(document.getElementById("pg-amount").value);
    for (var i = 0; i < N * N; i++) {
      current[i] = Math.max(0, Math.min(1, original[i] + (Math.random() * 2 - 1) * a));
    }
    draw();
  });
  document.getElementById("pg-amount").addEventListener("input", function (e) {
    document.getElementById("pg-amount-value").textContent = parseFloat(e.target.value).toFixed(2);
  });

  // An .npy of float32: the header says the dtype, order and shape.
  function parseNpy(buf) {
    var bytes = new Uint8Array(buf);
    var major = bytes[6];
    var view = new DataView(buf);
    var hlen = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
    var start = major === 1 ? 10 : 12;
    var header = new TextDecoder().decode(bytes.slice(start, start + hlen));
    if (header.indexOf("'<f4'") < 0) throw new Error("expected float32");
    var shape = header.match(/\(([^)]*)\)/)[1].split(",").filter(function (s) { return s.trim(); }).map(Number);
    return { shape: shape, data: new Float32Array(buf.slice(start + hlen)) };
  }
  var loaded = null;
  var load = document.getElementById("pg-load");
  if (load) load.addEventListener("click", function () {
    var index = parseInt(document.getElementById("pg-index").value, 10) || 0;
    var go = function () {
      if (index < 0 || index >= loaded.shape[0]) return;
      original = loaded.data.slice(index * N * N, (index + 1) * N * N);
      current = original.slice();
      draw();
    };
    if (loaded) return go();
    fetch("/api/v1/challenges/" + slug + "/files/eval_x.npy", { credentials: "same-origin" })
      .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.arrayBuffer(); })
      .then(function (buf) { loaded = parseNpy(buf); go(); })
      .catch(function (e) { document.getElementById("pg-status").textContent = "Could not load the digits: " + e.message; });
  });

  document.getElementById("pg-ask").addEventListener("click", function () {
    var status = document.getElementById("pg-status");
    status.textContent = "Asking...";
    fetch("/api/v1/challenges/" + slug + "/playground", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify({ inputs: [Array.prototype.slice.call(current)] })
    }).then(function (r) { return r.json().then(function (b) { return [r.status, b]; }); })
      .then(function (res) {
        var code = res[0], body = res[1];
        if (code !== 200) { status.textContent = (body.error && body.error.message) || ("HTTP " + code); return; }
        status.textContent = body.remaining + " playground queries left";
        var out = document.getElementById("pg-predictions");
        out.innerHTML = "";
        body.targets.forEach(function (t) {
          var best = t.probabilities.indexOf(Math.max.apply(null, t.probabilities));
          var row = document.createElement("div");
          row.className = "pg-target";
          var title = document.createElement("h3");
          title.textContent = t.name + ": reads " + best;
          row.appendChild(title);
          t.probabilities.forEach(function (p, k) {
            var bar = document.createElement("div");
            bar.className = "pg-bar" + (k === best ? " best" : "");
            var fill = document.createElement("progress");
            fill.max = 1; fill.value = p;
            var label = document.createElement("span");
            label.textContent = k + "  " + p.toFixed(3);
            bar.appendChild(label); bar.appendChild(fill);
            row.appendChild(bar);
          });
          out.appendChild(row);
        });
      })
      .catch(function (e) { status.textContent = "The request failed: " + e.message; });
  });

  // White-box steps from public/mlp_weights.npz (np.savez: a zip of stored
  // .npy entries W1, b1, W2, b2, W3, b3): FGSM and PGD against the MLP, in
  // the challenge's norm and budget.
  var weights = null;
  function parseNpz(buf) {
    var view = new DataView(buf), at = 0, out = {};
    while (at + 30 <= buf.byteLength && view.getUint32(at, true) === 0x04034b50) {
      var method = view.getUint16(at + 8, true);
      var size = view.getUint32(at + 18, true);
      var nameLen = view.getUint16(at + 26, true), extraLen = view.getUint16(at + 28, true);
      var name = new TextDecoder().decode(new Uint8Array(buf, at + 30, nameLen));
      var start = at + 30 + nameLen + extraLen;
      if (size === 0xffffffff) {
        // zip64 (numpy writes it): the real size is in the extra field 0x0001
        for (var e = at + 30 + nameLen; e + 4 <= start;) {
          var id = view.getUint16(e, true), len = view.getUint16(e + 2, true);
          if (id === 1) { size = view.getUint32(e + 12, true) + view.getUint32(e + 16, true) * 4294967296; break; }
          e += 4 + len;
        }
      }
      if (method !== 0) throw new Error("compressed npz entries are not supported");
      out[name.replace(/\.npy$/, "")] = parseNpy(buf.slice(start, start + size));
      at = start + size;
    }
    return out;
  }
  function layers() {
    var list = [];
    for (var i = 1; weights["W" + i]; i++) list.push([weights["W" + i], weights["b" + i]]);
    return list;
  }
  // Logits and the activations the backward pass needs.
  function forward(x) {
    var acts = [x], h = x, ls = layers();
    ls.forEach(function (l, li) {
      var W = l[0], b = l[1], nIn = W.shape[0], nOut = W.shape[1], out = new Float32Array(nOut);
      for (var k = 0; k < nOut; k++) out[k] = b.data[k];
      for (var j = 0; j < nIn; j++) {
        var v = h[j];
        if (v === 0) continue;
        var row = j * nOut;
        for (var k2 = 0; k2 < nOut; k2++) out[k2] += v * W.data[row + k2];
      }
      if (li < ls.length - 1) for (var k3 = 0; k3 < nOut; k3++) if (out[k3] < 0) out[k3] = 0;
      acts.push(out); h = out;
    });
    return acts;
  }
  // d cross-entropy(label) / d x.
  function gradient(x, label) {
    var acts = forward(x), ls = layers(), logits = acts[acts.length - 1];
    var max = Math.max.apply(null, logits), sum = 0, d = new Float32Array(logits.length);
    for (var k = 0; k < logits.length; k++) { d[k] = Math.exp(logits[k] - max); sum += d[k]; }
    for (var k4 = 0; k4 < logits.length; k4++) d[k4] = d[k4] / sum - (k4 === label ? 1 : 0);
    for (var li = ls.length - 1; li >= 0; li--) {
      var W = ls[li][0], nIn = W.shape[0], nOut = W.shape[1], prev = new Float32Array(nIn);
      for (var j = 0; j < nIn; j++) {
        var s = 0, row = j * nOut;
        for (var k5 = 0; k5 < nOut; k5++) s += d[k5] * W.data[row + k5];
        prev[j] = s;
      }
      if (li > 0) for (var j2 = 0; j2 < nIn; j2++) if (acts[li][j2] <= 0) prev[j2] = 0;
      d = prev;
    }
    return d;
  }
  function argmax(a) { var b = 0; for (var i = 1; i < a.length; i++) if (a[i] > a[b]) b = i; return b; }
  function project(x) {
    var i, d = new Float32Array(N * N);
    for (i = 0; i < N * N; i++) d[i] = x[i] - original[i];
    if (norm === "l2") {
      var n = 0; for (i = 0; i < N * N; i++) n += d[i] * d[i];
      n = Math.sqrt(n);
      var scale = n > epsilon * 0.999999 ? epsilon * 0.999999 / n : 1;
      for (i = 0; i < N * N; i++) d[i] *= scale;
    } else {
      for (i = 0; i < N * N; i++) d[i] = Math.max(-epsilon * 0.999999, Math.min(epsilon * 0.999999, d[i]));
    }
    var out = new Float32Array(N * N);
    for (i = 0; i < N * N; i++) out[i] = Math.max(0, Math.min(1, original[i] + d[i]));
    return out;
  }
  function step(x, label, size, toward) {
    var g = gradient(x, label), out = new Float32Array(N * N), i;
    var sign = toward ? -1 : 1;
    if (norm === "l2") {
      var n = 0; for (i = 0; i < N * N; i++) n += g[i] * g[i];
      n = Math.sqrt(n) || 1;
      for (i = 0; i < N * N; i++) out[i] = x[i] + sign * size * g[i] / n;
    } else {
      for (i = 0; i < N * N; i++) out[i] = x[i] + sign * size * (g[i] > 0 ? 1 : g[i] < 0 ? -1 : 0);
    }
    return project(out);
  }
  function attack(steps) {
    var status = document.getElementById("pg-status");
    var run = function () {
      var goal = document.getElementById("pg-goal").value;
      var toward = goal !== "away";
      var label = toward ? parseInt(goal, 10) : argmax(forward(original)[layers().length]);
      var x = original.slice();
      if (steps === 1) x = step(x, label, epsilon, toward);
      else for (var s = 0; s < steps; s++) x = step(x, label, epsilon / 4, toward);
      current = x;
      draw();
      var reads = argmax(forward(current)[layers().length]);
      status.textContent = (steps === 1 ? "FGSM" : "PGD-" + steps) + " on the MLP: it now reads " + reads +
        (toward ? " (goal " + label + ")" : " (it read " + label + ")");
    };
    if (weights) return run();
    status.textContent = "Loading the MLP's weights...";
    fetch("/api/v1/challenges/" + slug + "/files/mlp_weights.npz", { credentials: "same-origin" })
      .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.arrayBuffer(); })
      .then(function (buf) { weights = parseNpz(buf); run(); })
      .catch(function (e) { status.textContent = "Could not load the weights: " + e.message; });
  }
  var fgsm = document.getElementById("pg-fgsm");
  if (fgsm) fgsm.addEventListener("click", function () { attack(1); });
  var pgd = document.getElementById("pg-pgd");
  if (pgd) pgd.addEventListener("click", function () { attack(10); });

  document.getElementById("pg-download").addEventListener("click", function () {
    var header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 28, 28), }";
    while ((10 + header.length + 1) % 64 !== 0) header += " ";
    header += "\n";
    var head = new Uint8Array(10 + header.length);
    head.set([0x93, 78, 85, 77, 80, 89, 1, 0, header.length & 255, header.length >> 8]);
    head.set(new TextEncoder().encode(header), 10);
    var blob = new Blob([head, current.buffer.slice(0)], { type: "application/octet-stream" });
    var a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = slug + "-playground.npy";
    document.body.appendChild(a); a.click(); a.remove();
  });

  draw();
})();

/* The shift explorer: move a test image and watch three networks' class probabilities, read from the run's data
   (window.SHIFTLAB_EXPLORER, written by shiftlab.explorer). Plain JavaScript, nothing fetched. */
(function () {
  "use strict";
  const D = window.SHIFTLAB_EXPLORER;
  if (!D) return;

  const P = D.period, Q = D.steps, G = P * Q, C = D.crop_max, K = D.classes.length;
  const N = D.images.length, M = D.networks.length, W = 2 * C + 1;
  const bytes = (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  for (const im of D.images) { im.pixels = bytes(im.pixels); im.frame = bytes(im.frame); }
  const SIDE = Math.round(Math.sqrt(D.images[0].pixels.length)), FRAME = SIDE + 2 * C;

  /* the thousandths of shiftlab.explorer.compress: zlib-deflated high bytes, then low bytes */
  async function decode(text) {
    const stream = new Blob([bytes(text)]).stream().pipeThrough(new DecompressionStream("deflate"));
    const raw = new Uint8Array(await new Response(stream).arrayBuffer()), n = raw.length / 2;
    const out = new Uint16Array(n);
    for (let i = 0; i < n; i++) out[i] = (raw[i] << 8) | raw[n + i];
    return out;
  }
  let circ, crop;
  const mod = (a, n) => ((a % n) + n) % n;

  /* thousandths (K) of network m on image n at shift (dy, dx) in the current mode */
  function probsAt(m, n, mode, dy, dx) {
    let base;
    if (mode === "crop") base = (((m * N + n) * W + (dy + C)) * W + (dx + C)) * K;
    else base = (((m * N + n) * G + mod(Math.round(dy * Q), G)) * G + mod(Math.round(dx * Q), G)) * K;
    return Array.from((mode === "crop" ? crop : circ).subarray(base, base + K));
  }
  const argmax = (a) => a.reduce((best, v, i) => (v > a[best] ? i : best), 0);

  /* the displayed image: roll of the centred window (whole pixels), band-limited shift (quarter pixels), or the
     window moved over the mosaic frame (crop: shiftlab.shifts.window) */
  function shifted(im, mode, dy, dx) {
    const n = SIDE, out = new Float64Array(n * n);
    if (mode === "quarter" && (dy % 1 || dx % 1)) return fourierShift(im.pixels, dy, dx);
    for (let y = 0; y < n; y++) {
      for (let x = 0; x < n; x++) {
        if (mode === "crop") out[y * n + x] = im.frame[(C - dy + y) * FRAME + (C - dx + x)];
        else out[y * n + x] = im.pixels[mod(y - dy, n) * n + mod(x - dx, n)];
      }
    }
    return out;
  }
  /* F^-1[F(f) exp(-2 pi i (ky ty + kx tx))], real part; the Nyquist bin is multiplied by cos(pi t) (as
     shiftlab.shifts.fourier_shift) */
  function fourierShift(pixels, ty, tx) {
    const n = SIDE, re = Float64Array.from(pixels), im = new Float64Array(n * n);
    dft2(re, im, -1);
    const ramp = (t) => {
      const r = [], i = [];
      for (let k = 0; k < n; k++) {
        const f = k < n / 2 ? k / n : (k - n) / n;
        if (n % 2 === 0 && k === n / 2) { r.push(Math.cos(Math.PI * t)); i.push(0); continue; }
        r.push(Math.cos(-2 * Math.PI * f * t)); i.push(Math.sin(-2 * Math.PI * f * t));
      }
      return [r, i];
    };
    const [ry, iy] = ramp(ty), [rx, ix] = ramp(tx);
    for (let y = 0; y < n; y++) {
      for (let x = 0; x < n; x++) {
        const ar = ry[y] * rx[x] - iy[y] * ix[x], ai = ry[y] * ix[x] + iy[y] * rx[x];
        const k = y * n + x, r = re[k], i = im[k];
        re[k] = r * ar - i * ai; im[k] = r * ai + i * ar;
      }
    }
    dft2(re, im, 1);
    return re.map((v) => v / (n * n));
  }
  function dft2(re, im, sign) {
    const n = SIDE, cos = [], sin = [];
    for (let k = 0; k < n; k++) { cos.push(Math.cos(2 * Math.PI * k / n)); sin.push(sign * Math.sin(2 * Math.PI * k / n)); }
    const line = (get, set) => {
      const r = [], i = [];
      for (let k = 0; k < n; k++) {
        let sr = 0, si = 0;
        for (let j = 0; j < n; j++) {
          const [a, b] = get(j), t = (k * j) % n;
          sr += a * cos[t] - b * sin[t]; si += a * sin[t] + b * cos[t];
        }
        r.push(sr); i.push(si);
      }
      for (let k = 0; k < n; k++) set(k, r[k], i[k]);
    };
    for (let y = 0; y < n; y++) line((j) => [re[y * n + j], im[y * n + j]], (k, a, b) => { re[y * n + k] = a; im[y * n + k] = b; });
    for (let x = 0; x < n; x++) line((j) => [re[j * n + x], im[j * n + x]], (k, a, b) => { re[k * n + x] = a; im[k * n + x] = b; });
  }

  const el = (tag, attrs = {}, children = []) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "text") e.textContent = v; else if (k === "class") e.className = v; else e.setAttribute(k, v);
    }
    for (const c of children) e.appendChild(c);
    return e;
  };
  function draw(canvas, values, n, scale) {
    const ctx = canvas.getContext("2d"), img = ctx.createImageData(n, n);
    for (let k = 0; k < n * n; k++) {
      const v = Math.max(0, Math.min(255, Math.round(values[k])));
      img.data.set([v, v, v, 255], 4 * k);
    }
    const tmp = el("canvas", { width: n, height: n });
    tmp.getContext("2d").putImageData(img, 0, 0);
    ctx.imageSmoothingEnabled = false;
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    ctx.drawImage(tmp, 0, 0, n * scale, n * scale);
  }
  function viridis(t) {       /* a 5-stop approximation of matplotlib's viridis */
    const stops = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
    const x = Math.max(0, Math.min(1, t)) * (stops.length - 1), i = Math.min(Math.floor(x), stops.length - 2), f = x - i;
    return stops[i].map((a, c) => Math.round(a + f * (stops[i + 1][c] - a)));
  }

  /* one explorer in root; sfx keeps its element ids and radio group apart from another one on the page */
  function init(root, sfx) {
    const state = { image: 0, mode: "whole", dy: 0, dx: 0, visited: new Map() };

    /* controls */
    const picker = el("div", { class: "se-picker", role: "radiogroup", "aria-label": "test image" });
    D.images.forEach((im, n) => {
      const c = el("canvas", { width: 2 * SIDE, height: 2 * SIDE });
      draw(c, im.pixels, SIDE, 2);
      const b = el("button", { type: "button", class: "se-thumb", role: "radio", "data-image": String(n),
                               title: `test item ${im.index}: ${D.classes[im.label]}`,
                               "aria-label": `test item ${im.index}, ${D.classes[im.label]}` }, [c]);
      b.addEventListener("click", () => { state.image = n; state.dy = state.dx = 0; state.visited.clear(); update(); });
      picker.appendChild(b);
    });
    const modes = el("div", { class: "se-modes", role: "radiogroup", "aria-label": "kind of shift" });
    for (const [value, label] of [["whole", "whole pixels, circular"], ["quarter", `1/${Q}-pixel steps, band-limited`],
                                  ["crop", "whole pixels, crop (window over the mosaic)"]]) {
      const input = el("input", { type: "radio", name: `se-mode${sfx}`, value, id: `se-mode-${value}${sfx}` });
      if (value === state.mode) input.checked = true;
      input.addEventListener("change", () => { state.mode = value; state.dy = state.dx = 0; state.visited.clear(); update(); });
      modes.appendChild(el("label", { for: `se-mode-${value}${sfx}` }, [input, document.createTextNode(" " + label)]));
    }
    const slider = (axis) => {
      const input = el("input", { type: "range", min: String(-C), max: String(C), step: "1", value: "0", id: `se-${axis}${sfx}`,
                                  "aria-label": `shift ${axis} (px)` });
      const out = el("output", { for: `se-${axis}${sfx}`, class: "se-value" });
      input.addEventListener("input", () => { state[axis] = Number(input.value); update(); });
      return [input, out];
    };
    const [sy, oy] = slider("dy"), [sx, ox] = slider("dx");
    const reset = el("button", { type: "button", class: "se-reset", text: "reset" });
    reset.addEventListener("click", () => { state.dy = state.dx = 0; update(); });
    const stage = el("canvas", { width: 8 * SIDE, height: 8 * SIDE, class: "se-stage", tabindex: "0",
                                 "aria-label": "the shifted image: drag it, or use the arrow keys" });
    const where = el("p", { class: "se-where" });
    const controls = el("div", { class: "se-controls" }, [
      modes,
      el("label", { class: "se-slider" }, [document.createTextNode("dy "), sy, oy]),
      el("label", { class: "se-slider" }, [document.createTextNode("dx "), sx, ox]),
      reset]);

    /* one panel per network: bars, counter, map of P(correct class) over the whole-pixel circular shifts */
    const panels = D.networks.map((name, m) => {
      const bars = D.classes.map((cls, k) => {
        const fill = el("span", { class: "se-fill" }), value = el("span", { class: "se-num" });
        const row = el("div", { class: "se-bar", "data-class": String(k) }, [
          el("span", { class: "se-cls", text: cls }), el("span", { class: "se-track" }, [fill]), value]);
        return { row, fill, value };
      });
      const counter = el("p", { class: "se-counter" });
      const map = el("canvas", { width: 12 * P, height: 12 * P, class: "se-map",
                                 "aria-label": `${name}: probability of the correct class at every whole-pixel shift` });
      const panel = el("section", { class: "se-net", "data-network": String(m) }, [
        el("h3", { text: name }), el("div", { class: "se-bars" }, bars.map((b) => b.row)), counter,
        el("figure", {}, [map, el("div", { class: "se-scale", "aria-hidden": "true" }, [
          el("span", { text: "0" }), el("span", { class: "se-gradient" }), el("span", { text: "1" })]),
        el("figcaption", { text: `P(correct class) at the whole-pixel shifts 0..${P - 1} px (rows dy, columns dx; ` +
                                   `marker: this shift mod ${P})` })])]);
      return { panel, bars, counter, map };
    });

    root.append(el("div", { class: "se-top" }, [
      el("div", { class: "se-left" }, [picker, stage, where]), el("div", { class: "se-right" }, [controls])]),
    el("div", { class: "se-nets" }, panels.map((p) => p.panel)));

    function update() {
      const step = state.mode === "quarter" ? 1 / Q : 1;
      for (const [input, axis] of [[sy, "dy"], [sx, "dx"]]) {
        state[axis] = Math.max(-C, Math.min(C, Math.round(state[axis] / step) * step));
        input.step = String(step);
        input.value = String(state[axis]);
      }
      oy.textContent = `${state.dy.toFixed(2)} px`; ox.textContent = `${state.dx.toFixed(2)} px`;
      picker.querySelectorAll(".se-thumb").forEach((b, n) => b.setAttribute("aria-checked", String(n === state.image)));
      const im = D.images[state.image];
      draw(stage, shifted(im, state.mode, state.dy, state.dx), SIDE, 8);
      where.textContent = `test item ${im.index}, true class: ${D.classes[im.label]}; shift (${state.dy}, ${state.dx}) px`;
      /* circular shifts a period apart are one shift (the grid index); crop shifts are all distinct */
      const key = state.mode === "crop" ? `${state.dy},${state.dx}`
        : `${mod(Math.round(state.dy * Q), G)},${mod(Math.round(state.dx * Q), G)}`;
      state.visited.set(key, [state.dy, state.dx]);
      panels.forEach((p, m) => {
        const probs = probsAt(m, state.image, state.mode, state.dy, state.dx), top = argmax(probs);
        p.bars.forEach((b, k) => {
          b.fill.style.width = `${probs[k] / D.scale * 100}%`;
          b.value.textContent = `${(probs[k] / D.scale * 100).toFixed(1)}%`;
          b.row.classList.toggle("se-top-class", k === top);
          b.row.classList.toggle("se-true-class", k === im.label);
          b.row.setAttribute("aria-label", `${D.classes[k]}: ${b.value.textContent}${k === top ? " (top class)" : ""}`);
        });
        const start = argmax(probsAt(m, state.image, state.mode, 0, 0));
        let changed = 0;
        for (const [dy, dx] of state.visited.values()) {
          if (argmax(probsAt(m, state.image, state.mode, dy, dx)) !== start) changed++;
        }
        p.counter.textContent = `class changed at ${changed} of the ${state.visited.size} shifts tried`;
        p.counter.dataset.changed = String(changed);
        const ctx = p.map.getContext("2d"), s = p.map.width / P;
        for (let i = 0; i < P; i++) {
          for (let j = 0; j < P; j++) {
            const v = probsAt(m, state.image, "whole", i, j)[im.label] / D.scale;
            ctx.fillStyle = `rgb(${viridis(v).join(",")})`;
            ctx.fillRect(j * s, i * s, s, s);
          }
        }
        ctx.strokeStyle = "#ff3b30"; ctx.lineWidth = 2;
        ctx.strokeRect(mod(Math.floor(state.dx), P) * s + 1, mod(Math.floor(state.dy), P) * s + 1, s - 2, s - 2);
      });
    }

    stage.addEventListener("keydown", (e) => {
      const step = state.mode === "quarter" ? 1 / Q : 1;
      const move = { ArrowUp: [-step, 0], ArrowDown: [step, 0], ArrowLeft: [0, -step], ArrowRight: [0, step] }[e.key];
      if (!move) return;
      e.preventDefault();
      state.dy += move[0]; state.dx += move[1];
      update();
    });
    let drag = null;
    stage.addEventListener("pointerdown", (e) => {
      if (e.button !== 0) return;
      drag = { x: e.clientX, y: e.clientY, dy: state.dy, dx: state.dx };
      stage.setPointerCapture(e.pointerId); stage.focus();
    });
    stage.addEventListener("pointermove", (e) => {
      if (!drag) return;
      const px = stage.getBoundingClientRect().width / SIDE;
      state.dy = drag.dy + (e.clientY - drag.y) / px; state.dx = drag.dx + (e.clientX - drag.x) / px;
      update();
    });
    for (const end of ["pointerup", "pointercancel", "lostpointercapture"]) {
      stage.addEventListener(end, () => { drag = null; });
    }
    update();
  }

  Promise.all([decode(D.circular), decode(D.crop)]).then(([c, k]) => {
    circ = c; crop = k;
    document.querySelectorAll(".shift-explorer").forEach((root, n) => {
      if (root.dataset.ready) return;
      root.dataset.ready = "1";
      init(root, n ? `-${n}` : "");
    });
  });
})();

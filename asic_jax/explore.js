// The explorer's script (asic_jax/explore.py writes it into the page). No network, no
// library: the data is the JSON in #explorer-data. Frames and the transfer are
// asic_jax.api's and asic_jax.evaluate's; explore.py's docstring says how.
'use strict';

const explorer = {ready: false, source: null, transfers: {}, timings: {}};
window.explorer = explorer;

(async function main() {
  const started = performance.now();
  const DATA = JSON.parse(document.getElementById('explorer-data').textContent);
  const S = DATA.size;
  const N = DATA.images.length;
  const PIXELS = S * S;
  const SNAP_PX = 8;  // a click this close (screen pixels) to a keypoint takes the keypoint
  const status = document.getElementById('status');

  async function inflate(text) {
    const binary = atob(text);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('deflate'));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  }

  // Canonical maps: [N, S, S, 2] (x, y), as explore.decode builds them from explore.encode's
  // zigzag-coded 2-D differences of 16-bit levels (low bytes, then high bytes).
  const bytes = await inflate(DATA.maps.maps);
  const maps = new Float32Array(N * PIXELS * 2);
  const levels = new Int32Array(PIXELS);
  const high = N * 2 * PIXELS;
  for (let n = 0; n < N; n++) {
    const low = DATA.maps.low[n], unit = (DATA.maps.high[n] - low) / 65535;
    for (let c = 0; c < 2; c++) {
      const from = (n * 2 + c) * PIXELS;
      for (let k = 0; k < PIXELS; k++) {
        const zigzag = bytes[from + k] | (bytes[high + from + k] << 8);
        const x = k % S;
        const left = x ? levels[k - 1] : 0, up = k >= S ? levels[k - S] : 0;
        const upLeft = x && k >= S ? levels[k - S - 1] : 0;
        levels[k] = (((zigzag >>> 1) ^ -(zigzag & 1)) + left + up - upLeft) & 0xffff;
        maps[(n * PIXELS + k) * 2 + c] = low + levels[k] * unit;
      }
    }
  }
  const masks = await inflate(DATA.maps.masks);
  const allowed = await inflate(DATA.maps.allowed);
  const anyAllowed = DATA.images.map((_, n) => allowed.subarray(n * PIXELS, (n + 1) * PIXELS)
                                                   .some((v) => v));

  // -- frames and the transfer (asic_jax.api, asic_jax.evaluate) --------------------------
  function toSquare(n, x, y) {
    const f = DATA.images[n].frame;
    return [(x + f.left + 0.5) * f.scale - 0.5, (y + f.top + 0.5) * f.scale - 0.5];
  }
  function toOriginal(n, u, v) {
    const f = DATA.images[n].frame;
    return [(u + 0.5) / f.scale - 0.5 - f.left, (v + 0.5) / f.scale - 0.5 - f.top];
  }
  function inside(n, x, y) {  // on the photo, and on its square (a crop covers part of it)
    const im = DATA.images[n];
    const [u, v] = toSquare(n, x, y);
    return x >= -0.5 && x <= im.width - 0.5 && y >= -0.5 && y <= im.height - 0.5 &&
        u >= -0.5 && u <= S - 0.5 && v >= -0.5 && v <= S - 0.5;
  }
  function canonicalAt(n, u, v) {  // bilinear, border padding
    const x = Math.min(Math.max(u, 0), S - 1), y = Math.min(Math.max(v, 0), S - 1);
    const x0 = Math.floor(x), y0 = Math.floor(y);
    const x1 = Math.min(x0 + 1, S - 1), y1 = Math.min(y0 + 1, S - 1);
    const wx = x - x0, wy = y - y0;
    const base = n * PIXELS;
    const at = (xx, yy, c) => maps[(base + yy * S + xx) * 2 + c];
    return [0, 1].map((c) => (at(x0, y0, c) * (1 - wx) + at(x1, y0, c) * wx) * (1 - wy) +
                             (at(x0, y1, c) * (1 - wx) + at(x1, y1, c) * wx) * wy);
  }
  function distances(t, point) {  // squared canonical distances, Infinity off the mask
    const out = new Float64Array(PIXELS);
    const base = t * PIXELS;
    const searchAll = !anyAllowed[t];  // an empty mask is searched whole, as evaluate does
    for (let k = 0; k < PIXELS; k++) {
      if (!searchAll && !allowed[base + k]) {
        out[k] = Infinity;
        continue;
      }
      const dx = maps[(base + k) * 2] - point[0], dy = maps[(base + k) * 2 + 1] - point[1];
      out[k] = dx * dx + dy * dy;
    }
    return out;
  }
  function argmin(values) {  // the first minimum, as jnp.argmin
    let best = Infinity, index = 0;
    for (let k = 0; k < values.length; k++) {
      if (values[k] < best) {
        best = values[k];
        index = k;
      }
    }
    return index;
  }
  function squarePixel(t, point) {  // evaluate.nearest_pixels, or soft_pixels
    const d = distances(t, point);
    const k = argmin(d);
    const hx = k % S, hy = Math.floor(k / S);
    if (DATA.transfer.method !== 'soft') return [hx, hy];
    const w = DATA.transfer.window, scale = DATA.transfer.temperature * (2 / (S - 1)) ** 2;
    let total = 0, sx = 0, sy = 0, top = -Infinity;
    const near = [];
    for (let y = Math.max(hy - w, 0); y <= Math.min(hy + w, S - 1); y++) {
      for (let x = Math.max(hx - w, 0); x <= Math.min(hx + w, S - 1); x++) {
        if (Number.isFinite(d[y * S + x])) near.push([x, y, -d[y * S + x] / scale]);
      }
    }
    for (const [, , logit] of near) top = Math.max(top, logit);
    for (const [x, y, logit] of near) {
      const weight = Math.exp(logit - top);
      total += weight;
      sx += weight * x;
      sy += weight * y;
    }
    return [sx / total, sy / total];
  }
  function transfer(s, x, y, t) {  // photo s's pixel (x, y) -> photo t's pixels
    const [u, v] = toSquare(s, x, y);
    const [pu, pv] = squarePixel(t, canonicalAt(s, u, v));
    return toOriginal(t, pu, pv);
  }
  function colourWheel(x, y) {  // visualize.colour_wheel: canonical (x, y) -> RGB in [0, 1]
    const radius = Math.hypot(x, y);
    const hue = ((Math.atan2(y, x) / (2 * Math.PI)) % 1 + 1) % 1;
    const saturation = Math.min(Math.max(radius, 0), 1);
    const value = 1 - 0.25 * Math.min(Math.max((radius - 1) / (Math.SQRT2 - 1), 0), 1);
    return [5, 3, 1].map((n) => {
      const k = (n + 6 * hue) % 6;
      return value * (1 - saturation * Math.min(Math.max(Math.min(k, 4 - k), 0), 1));
    });
  }
  Object.assign(explorer, {transfer, canonicalAt, toSquare, toOriginal, colourWheel});

  // -- the page ---------------------------------------------------------------------------
  const SVG = 'http://www.w3.org/2000/svg';
  const photos = document.getElementById('photos');
  const cards = DATA.images.map((im, n) => {
    const card = document.createElement('div');
    card.className = 'card';
    card.dataset.index = n;
    card.dataset.name = im.name;
    const head = document.createElement('div');
    head.className = 'name';
    head.innerHTML = `<span></span><label><input type="checkbox" class="mask-toggle"> mask` +
        `</label>`;
    head.firstChild.textContent = im.name + (im.mapped ? ' ' : '');
    if (im.mapped) {
      const badge = document.createElement('span');
      badge.className = 'mapped';
      badge.textContent = '(mapped)';
      head.firstChild.appendChild(badge);
    }
    const view = document.createElement('div');
    view.className = 'view';
    const img = document.createElement('img');
    img.src = im.photo;
    img.alt = im.name;
    img.draggable = false;
    const colour = squareCanvas('colour', n), mask = squareCanvas('mask', n);
    const svg = document.createElementNS(SVG, 'svg');
    svg.setAttribute('viewBox', `-0.5 -0.5 ${im.width} ${im.height}`);
    svg.setAttribute('preserveAspectRatio', 'none');
    view.append(img, colour, mask, svg);
    card.append(head, view);
    photos.appendChild(card);
    head.querySelector('.mask-toggle').addEventListener('change', (e) => {
      view.classList.toggle('show-mask', e.target.checked);
    });
    view.addEventListener('click', (e) => click(n, e));
    view.addEventListener('mousemove', (e) => hover(n, e));
    view.addEventListener('mouseleave', () => hover(null));
    return {card, view, img, svg, colour, mask};
  });

  function squareCanvas(kind, n) {  // an S x S canvas over photo n's square
    const canvas = document.createElement('canvas');
    canvas.className = kind;
    canvas.width = canvas.height = S;
    const pixels = new ImageData(S, S);
    for (let k = 0; k < PIXELS; k++) {
      const m = masks[n * PIXELS + k];
      if (kind === 'colour') {
        const rgb = colourWheel(maps[(n * PIXELS + k) * 2], maps[(n * PIXELS + k) * 2 + 1]);
        for (let c = 0; c < 3; c++) pixels.data[4 * k + c] = Math.round(255 * rgb[c]);
        pixels.data[4 * k + 3] = m;  // paper Fig. 3: the colour in proportion to the mask
      } else {
        pixels.data[4 * k + 3] = Math.round(0.75 * (255 - m));  // the background darkened
      }
    }
    canvas.getContext('2d').putImageData(pixels, 0, 0);
    return canvas;
  }

  function layout() {  // every photo at the chosen height; squares placed through the frames
    const height = +document.getElementById('photo-size').value;
    DATA.images.forEach((im, n) => {
      const k = height / im.height;  // screen pixels per photo pixel
      const {view, colour, mask} = cards[n];
      view.style.width = `${im.width * k}px`;
      view.style.height = `${height}px`;
      const f = im.frame;  // square edge e lands on photo edge e / scale - left
      for (const canvas of [colour, mask]) {
        canvas.style.left = `${-f.left * k}px`;
        canvas.style.top = `${-f.top * k}px`;
        canvas.style.width = canvas.style.height = `${(S / f.scale) * k}px`;
      }
      cards[n].perPixel = 1 / k;
    });
    draw();
  }

  function photoPoint(n, event) {  // a mouse event -> photo n's pixel (x, y)
    const rect = cards[n].img.getBoundingClientRect();
    const im = DATA.images[n];
    return [(event.clientX - rect.left) / rect.width * im.width - 0.5,
            (event.clientY - rect.top) / rect.height * im.height - 0.5];
  }

  function snapped(n, x, y) {  // the visible keypoint within SNAP_PX screen pixels, if any
    const keypoints = DATA.images[n].keypoints;
    if (!keypoints || !document.getElementById('show-keypoints').checked) return null;
    let best = null, bestDistance = SNAP_PX * cards[n].perPixel;
    keypoints.forEach((p, k) => {
      if (p && Math.hypot(p[0] - x, p[1] - y) <= bestDistance) {
        best = k;
        bestDistance = Math.hypot(p[0] - x, p[1] - y);
      }
    });
    return best;
  }

  function click(n, event) {
    let [x, y] = photoPoint(n, event);
    const k = snapped(n, x, y);
    if (k !== null) [x, y] = DATA.images[n].keypoints[k];
    if (!inside(n, x, y)) return;
    select(n, [{x, y, keypoint: k}]);
  }

  function select(n, points) {  // carries points of photo n to every other photo
    const t0 = performance.now();
    explorer.source = {index: n, name: DATA.images[n].name, points};
    explorer.transfers = {};
    DATA.images.forEach((im, t) => {
      if (t === n) return;
      explorer.transfers[im.name] = points.map((p) => transfer(n, p.x, p.y, t));
    });
    explorer.timings.transfer_ms = performance.now() - t0;
    document.getElementById('all-keypoints').disabled = !DATA.images[n].keypoints;
    draw();
    const p = points[0];
    const [u, v] = toSquare(n, p.x, p.y);
    const c = canonicalAt(n, u, v);
    status.textContent = `source ${DATA.images[n].name} (${p.x.toFixed(2)}, ${p.y.toFixed(2)})` +
        (points.length > 1 ? ` and ${points.length - 1} more keypoints` : '') +
        (p.keypoint !== null && points.length === 1 ? ` = keypoint ${p.keypoint}` : '') +
        `, canonical (${c[0].toFixed(4)}, ${c[1].toFixed(4)}); carried to ${N - 1} photos in ` +
        `${explorer.timings.transfer_ms.toFixed(0)} ms (${DATA.transfer.method})`;
    explorer.selectedCanonical = points.map((q) => canonicalAt(n, ...toSquare(n, q.x, q.y)));
    drawCanonical(null);
    writeHash();
  }

  function colourOf(k) {
    const rgb = DATA.palette[(k ?? 0) % DATA.palette.length];
    return `rgb(${rgb[0]},${rgb[1]},${rgb[2]})`;
  }

  function marker(svg, kind, x, y, colour, r, extra = {}) {
    const shape = document.createElementNS(SVG, kind === 'truth' ? 'rect' : 'circle');
    if (kind === 'truth') {
      Object.entries({x: x - r, y: y - r, width: 2 * r, height: 2 * r}).forEach(([a, v]) => {
        shape.setAttribute(a, v);
      });
      shape.setAttribute('fill', 'none');
      shape.setAttribute('stroke', colour);
    } else {
      shape.setAttribute('cx', x);
      shape.setAttribute('cy', y);
      shape.setAttribute('r', r);
      shape.setAttribute('fill', colour);
      shape.setAttribute('stroke', kind === 'source' ? '#000' : '#fff');
    }
    shape.setAttribute('stroke-width', r / 3);
    shape.setAttribute('class', kind);
    shape.dataset.x = x;
    shape.dataset.y = y;
    Object.entries(extra).forEach(([a, v]) => { shape.dataset[a] = v; });
    svg.appendChild(shape);
  }

  function draw() {  // every photo's markers from the current state
    const source = explorer.source;
    DATA.images.forEach((im, n) => {
      const {svg, card, perPixel} = cards[n];
      svg.replaceChildren();
      card.classList.toggle('source', !!source && source.index === n);
      const r = 5 * perPixel;
      (im.keypoints || []).forEach((p, k) => {
        if (p) marker(svg, 'truth', p[0], p[1], colourOf(k), 0.8 * r, {keypoint: k});
      });
      if (!source) return;
      if (source.index === n) {
        source.points.forEach((p, i) => marker(svg, 'source', p.x, p.y,
                                               colourOf(p.keypoint ?? i), r));
        return;
      }
      explorer.transfers[im.name].forEach(([x, y], i) => {
        const k = source.points[i].keypoint;
        const truth = k !== null && im.keypoints ? im.keypoints[k] : null;
        if (truth) {  // the prediction's error, drawn to this photo's own ground truth
          const line = document.createElementNS(SVG, 'line');
          Object.entries({x1: x, y1: y, x2: truth[0], y2: truth[1]}).forEach(([a, v]) => {
            line.setAttribute(a, v);
          });
          line.setAttribute('stroke', colourOf(k));
          line.setAttribute('stroke-width', r / 3);
          line.setAttribute('class', 'truth');
          svg.appendChild(line);
        }
        marker(svg, 'transfer', x, y, colourOf(k ?? i), r, {point: i});
      });
    });
  }

  // -- the canonical square, hover --------------------------------------------------------
  // The canonical plane over [-REACH, REACH]^2 (maps leave the unit square), the square outlined.
  const square = document.getElementById('canonical');
  const REACH = 1.5, side = square.width;
  const toPlane = (pixel) => REACH * (-1 + 2 * pixel / (side - 1));
  const at = (c) => c.map((v) => (v / REACH + 1) / 2 * (side - 1));
  const wheel = new ImageData(side, side);
  for (let y = 0; y < side; y++) {
    for (let x = 0; x < side; x++) {
      const rgb = colourWheel(toPlane(x), toPlane(y));
      for (let c = 0; c < 3; c++) wheel.data[4 * (y * side + x) + c] = 255 * rgb[c];
      wheel.data[4 * (y * side + x) + 3] = 255;
    }
  }
  function drawCanonical(hovered) {
    const g = square.getContext('2d');
    g.putImageData(wheel, 0, 0);
    const [low, high] = [at([-1, -1])[0], at([1, 1])[0]];
    g.strokeStyle = '#555';
    g.strokeRect(low, low, high - low, high - low);
    (explorer.selectedCanonical || []).forEach((c, i) => {
      const [x, y] = at(c);
      g.fillStyle = colourOf(explorer.source.points[i].keypoint ?? i);
      g.strokeStyle = '#000';
      g.beginPath();
      g.arc(x, y, 4, 0, 2 * Math.PI);
      g.fill();
      g.stroke();
    });
    if (hovered) {
      const [x, y] = at(hovered);
      g.strokeStyle = '#000';
      g.beginPath();
      g.moveTo(x - 7, y);
      g.lineTo(x + 7, y);
      g.moveTo(x, y - 7);
      g.lineTo(x, y + 7);
      g.stroke();
    }
  }
  function hover(n, event) {
    if (n === null) {
      drawCanonical(null);
      return;
    }
    const [x, y] = photoPoint(n, event);
    if (!inside(n, x, y)) return;
    const c = canonicalAt(n, ...toSquare(n, x, y));
    explorer.hovered = {name: DATA.images[n].name, x, y, canonical: c};
    const [u, v] = toSquare(n, x, y).map((w) => Math.min(Math.max(Math.round(w), 0), S - 1));
    const m = masks[n * PIXELS + v * S + u] / 255;
    status.dataset.hover = `${DATA.images[n].name} (${x.toFixed(1)}, ${y.toFixed(1)}): ` +
        `canonical (${c[0].toFixed(4)}, ${c[1].toFixed(4)}), mask ${m.toFixed(2)}`;
    status.title = status.dataset.hover;
    document.getElementById('hover').textContent = status.dataset.hover;
    drawCanonical(c);
  }

  // -- controls and the address (#src=NAME&x=..&y=.. reopens a click) ---------------------
  const hoverLine = document.createElement('div');
  hoverLine.id = 'hover';
  status.after(hoverLine);
  const toggles = {
    'show-colours': (on) => document.body.classList.toggle('show-colours', on),
    'show-masks': (on) => cards.forEach(({card, view}) => {
      card.querySelector('.mask-toggle').checked = on;
      view.classList.toggle('show-mask', on);
    }),
    'show-keypoints': (on) => document.body.classList.toggle('hide-keypoints', !on),
  };
  Object.entries(toggles).forEach(([id, apply]) => {
    const box = document.getElementById(id);
    box.addEventListener('change', () => {
      apply(box.checked);
      writeHash();
    });
  });
  document.getElementById('photo-size').addEventListener('input', () => {
    layout();
    writeHash();
  });
  document.getElementById('clear').addEventListener('click', () => {
    explorer.source = null;
    explorer.selectedCanonical = null;
    status.textContent = 'Click a point on any photo.';
    draw();
    drawCanonical(null);
    writeHash();
  });
  function carryAll(n) {  // every visible keypoint of photo n, carried at once
    const points = (DATA.images[n].keypoints || [])
                       .map((p, k) => (p ? {x: p[0], y: p[1], keypoint: k} : null))
                       .filter((p) => p && inside(n, p.x, p.y));
    if (points.length) select(n, points);
  }
  document.getElementById('all-keypoints').addEventListener('click', () => {
    carryAll(explorer.source ? explorer.source.index : 0);
  });

  function writeHash() {
    const state = new URLSearchParams();
    const source = explorer.source;
    if (source && source.points.length === 1) {
      state.set('src', source.name);
      state.set('x', source.points[0].x);
      state.set('y', source.points[0].y);
    } else if (source) {
      state.set('src', source.name);
      state.set('all', '1');
    }
    for (const id of Object.keys(toggles)) {
      const box = document.getElementById(id);
      if (box.checked !== box.defaultChecked) state.set(id, box.checked ? '1' : '0');
    }
    state.set('size', document.getElementById('photo-size').value);
    history.replaceState(null, '', '#' + state.toString());
  }
  function readHash() {
    const state = new URLSearchParams(location.hash.slice(1));
    if (state.has('size')) document.getElementById('photo-size').value = state.get('size');
    for (const [id, apply] of Object.entries(toggles)) {
      if (!state.has(id)) continue;
      document.getElementById(id).checked = state.get(id) === '1';
      apply(state.get(id) === '1');
    }
    layout();
    const n = DATA.images.findIndex((im) => im.name === state.get('src'));
    if (n < 0) return;
    if (state.get('all') === '1') {
      carryAll(n);
    } else if (state.has('x') && state.has('y')) {
      const x = +state.get('x'), y = +state.get('y');
      if (inside(n, x, y)) select(n, [{x, y, keypoint: snappedExactly(n, x, y)}]);
    }
  }
  function snappedExactly(n, x, y) {
    const k = (DATA.images[n].keypoints || []).findIndex((p) => p && p[0] === x && p[1] === y);
    return k < 0 ? null : k;
  }

  status.textContent = 'Click a point on any photo.';
  readHash();
  drawCanonical(null);
  explorer.timings.load_ms = performance.now() - started;
  explorer.ready = true;
  document.body.dataset.ready = '1';
})().catch((error) => {
  document.getElementById('status').textContent = `The explorer could not start: ${error}`;
  document.body.dataset.ready = 'error';
  throw error;
});

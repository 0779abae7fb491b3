/* ibhooks interactive information plane: SVG, no dependencies, no network.
   ibhooksPlane(root, data): data = {estimators: [{name, title, xlabel, ylabel, xcap, hy,
   layers: [{name, label, color, points: [[step, x, y, xlo, xhi, ylo, yhi], ...]}]}]} */
(function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";
  var VIRIDIS = ["#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89", "#35b779", "#6ece58",
                 "#b5de2b"];
  function el(tag, attrs, parent) {
    var e = document.createElementNS(NS, tag);
    for (var k in attrs) { e.setAttribute(k, attrs[k]); }
    if (parent) { parent.appendChild(e); }
    return e;
  }
  function fmt(v) { return v === null || v === undefined ? "–" : (+v).toPrecision(4); }
  function stepColor(step, lo, hi) {
    var t = hi > lo ? (Math.log10(Math.max(step, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo)) : 1;
    t = Math.min(1, Math.max(0, t));
    return VIRIDIS[Math.round(t * (VIRIDIS.length - 1))];
  }
  function draw(root, est) {
    root.querySelectorAll("svg, .ibh-tip").forEach(function (n) { n.remove(); });
    var W = 640, H = 460, m = {l: 56, r: 16, t: 12, b: 44};
    var svg = el("svg", {viewBox: "0 0 " + W + " " + H, width: "100%", role: "img",
                         "aria-label": "information plane " + est.title}, root);
    var pts = [], steps = [];
    est.layers.forEach(function (L) { L.points.forEach(function (p) { pts.push(p); steps.push(p[0]); }); });
    var xs = pts.map(function (p) { return p[4] === null ? p[1] : p[4]; }).concat([est.xcap || 0]);
    var ys = pts.map(function (p) { return p[6] === null ? p[2] : p[6]; }).concat([est.hy || 0]);
    var xmax = Math.max.apply(null, xs.concat([1e-9])) * 1.06, ymax = Math.max.apply(null, ys.concat([1e-9])) * 1.08;
    var xmin = Math.min(0, Math.min.apply(null, pts.map(function (p) { return p[1]; }).concat([0])));
    var ymin = Math.min(0, Math.min.apply(null, pts.map(function (p) { return p[2]; }).concat([0])));
    var pos = steps.filter(function (s) { return s > 0; });
    var slo = pos.length ? Math.min.apply(null, pos) : 1, shi = pos.length ? Math.max.apply(null, pos) : 10;
    function X(v) { return m.l + (v - xmin) / (xmax - xmin) * (W - m.l - m.r); }
    function Y(v) { return H - m.b - (v - ymin) / (ymax - ymin) * (H - m.t - m.b); }
    el("rect", {x: m.l, y: m.t, width: W - m.l - m.r, height: H - m.t - m.b, fill: "none", stroke: "#999"}, svg);
    for (var i = 0; i <= 5; i++) {
      var xv = xmin + (xmax - xmin) * i / 5, yv = ymin + (ymax - ymin) * i / 5;
      el("text", {x: X(xv), y: H - m.b + 16, "text-anchor": "middle", "font-size": 11}, svg).textContent = xv.toFixed(1);
      el("text", {x: m.l - 6, y: Y(yv) + 4, "text-anchor": "end", "font-size": 11}, svg).textContent = yv.toFixed(2);
    }
    el("text", {x: (W + m.l) / 2, y: H - 8, "text-anchor": "middle", "font-size": 13}, svg).textContent = est.xlabel;
    el("text", {x: 14, y: (H - m.b) / 2, "text-anchor": "middle", "font-size": 13,
                transform: "rotate(-90 14 " + (H - m.b) / 2 + ")"}, svg).textContent = est.ylabel;
    if (est.xcap) { el("line", {x1: X(est.xcap), x2: X(est.xcap), y1: m.t, y2: H - m.b, stroke: "#555",
                                "stroke-dasharray": "6 4"}, svg); }
    if (est.hy) { el("line", {x1: m.l, x2: W - m.r, y1: Y(est.hy), y2: Y(est.hy), stroke: "#555",
                              "stroke-dasharray": "2 3"}, svg); }
    var tip = document.createElement("div");
    tip.className = "ibh-tip";
    tip.style.cssText = "position:absolute;display:none;background:#fff;border:1px solid #888;padding:4px 6px;" +
                        "font:12px sans-serif;pointer-events:none;white-space:nowrap;z-index:10";
    root.appendChild(tip);
    var n = est.layers.length;
    est.layers.forEach(function (L, li) {
      var g = el("g", {"data-layer": L.name, "class": "ibh-layer"}, svg);
      el("polyline", {points: L.points.map(function (p) { return X(p[1]) + "," + Y(p[2]); }).join(" "),
                      fill: "none", stroke: L.color, "stroke-width": 1.4, "stroke-opacity": 0.6}, g);
      var r = n > 1 ? 6.5 - 3 * li / (n - 1) : 5;
      L.points.forEach(function (p) {
        var c = el("circle", {cx: X(p[1]), cy: Y(p[2]), r: r, fill: stepColor(p[0], slo, shi), stroke: L.color,
                              "stroke-width": 1.3}, g);
        c.addEventListener("mouseenter", function (ev) {
          var ci = function (lo, hi) { return lo === null ? "" : " [" + fmt(lo) + ", " + fmt(hi) + "]"; };
          tip.innerHTML = "";
          [L.label, "step " + p[0], "I(X;T) = " + fmt(p[1]) + ci(p[3], p[4]),
           "I(T;Y) = " + fmt(p[2]) + ci(p[5], p[6])].forEach(function (line) {
            var d = document.createElement("div"); d.textContent = line; tip.appendChild(d);
          });
          var box = root.getBoundingClientRect();
          tip.style.left = (ev.clientX - box.left + 12) + "px";
          tip.style.top = (ev.clientY - box.top + 12) + "px";
          tip.style.display = "block";
        });
        c.addEventListener("mouseleave", function () { tip.style.display = "none"; });
      });
    });
    var leg = root.querySelector(".ibh-legend");
    leg.innerHTML = "";
    est.layers.forEach(function (L) {
      var b = document.createElement("button");
      b.type = "button";
      b.textContent = L.label;
      b.style.cssText = "margin:2px 4px;border:2px solid " + L.color + ";background:#fff;cursor:pointer;font-size:12px";
      b.addEventListener("click", function () {
        var g = svg.querySelector('g[data-layer="' + CSS.escape(L.name) + '"]');
        var hidden = g.style.display === "none";
        g.style.display = hidden ? "" : "none";
        b.style.opacity = hidden ? "1" : "0.4";
      });
      leg.appendChild(b);
    });
  }
  window.ibhooksPlane = function (root, data) {
    root.style.position = "relative";
    var bar = document.createElement("div");
    var leg = document.createElement("div");
    leg.className = "ibh-legend";
    if (data.estimators.length > 1) {
      var sel = document.createElement("select");
      data.estimators.forEach(function (e, i) {
        var o = document.createElement("option"); o.value = i; o.textContent = e.title; sel.appendChild(o);
      });
      sel.addEventListener("change", function () { draw(root, data.estimators[+sel.value]); });
      bar.appendChild(sel);
    }
    root.appendChild(bar);
    root.appendChild(leg);
    var note = document.createElement("div");
    note.style.cssText = "font-size:11px;color:#555";
    note.textContent = "Colour = training step (log scale, dark = early). Hover a point for its values; " +
                       "click a layer to hide it. Dashed: cap on I(X;T); dotted: H(Y).";
    root.appendChild(note);
    if (data.estimators.length) { draw(root, data.estimators[0]); }
  };
})();

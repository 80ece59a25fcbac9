/* The live part of `bptt explain --format html` (inlined by bptt/html.py; no network, no libraries but KaTeX).

   The page's state (sizes, the five parameters, h_0, the sequence, activations, loss, reduction,
   truncation) lives in the URL fragment with `bptt grad`'s option names as keys.  On every change
   compute() runs the recurrence again: the same arithmetic as bptt/engine.py (forward, backward,
   bptt_truncated, decompose) and bptt/gradflow.py, every product summed in the same order; the
   Chromium test tests/test_html.py compares every data-value here with that engine.
*/
(function () {
  "use strict";
  var INIT = JSON.parse(document.getElementById("bptt-state").textContent);
  var THETAS = ["w", "w_x", "w_h", "b1", "b2"];
  var RECURRENT = {w_x: 1, w_h: 1, b1: 1};
  var TEX = {w: "w", w_x: "w_x", w_h: "w_h", b1: "b_1", b2: "b_2"};
  var MAX_T = INIT.max_T, MAX_SIZE = INIT.max_size, EXPAND = INIT.expand;
  // beyond these lengths a change would take more than a few tens of milliseconds to draw: the formulas
  // (typeset) are left to the tables, and the path chips show the chosen parameter only
  var FORMULAS_T = 12, CHIPS_ALL_T = 12;

  // ------------------------------------------------------------------ the activation and loss tables
  // The names come from bptt.activations / bptt.losses (INIT); each must have its arithmetic here.
  var ACT = {
    sigmoid: {value: function (z) { var e = Math.exp(-Math.abs(z)); return z >= 0 ? 1 / (1 + e) : e / (1 + e); },
              deriv: function (a) { return a * (1 - a); }, d: "{a}(1 - {a})"},
    tanh: {value: Math.tanh, deriv: function (a) { return 1 - a * a; }, d: "(1 - {a}^2)"},
    relu: {value: function (z) { return z > 0 ? z : 0; }, deriv: function (a) { return a > 0 ? 1 : 0; },
           d: "[{a} > 0]"},
    identity: {value: function (z) { return z; }, deriv: function () { return 1; }, d: "1"},
    softmax: {vector: true}
  };
  function softmax(u) {
    var m = -Infinity, i, e = [], s = 0;
    for (i = 0; i < u.length; i++) m = Math.max(m, u[i]);
    for (i = 0; i < u.length; i++) e.push(Math.exp(u[i] - m));
    for (i = 0; i < u.length; i++) s += e[i];
    return e.map(function (v) { return v / s; });
  }
  function softplus(u) { return Math.max(u, 0) + Math.log1p(Math.exp(-Math.abs(u))); }
  function logsumexp(u) {
    var m = -Infinity, s = 0, i;
    for (i = 0; i < u.length; i++) m = Math.max(m, u[i]);
    for (i = 0; i < u.length; i++) s += Math.exp(u[i] - m);
    return m + Math.log(s);
  }
  // per step: E(u, y', y) summed over the outputs, and dE/du scaled by c (losses.py's value and delta)
  var LOSS = {
    squared_error: {
      value: function (u, p, y) { var s = 0; for (var o = 0; o < p.length; o++) { var r = p[o] - y[o]; s += 0.5 * (r * r); } return s; },
      delta: function (u, p, y, g, c) { return jvp(g, p, p.map(function (v, o) { return c * (v - y[o]); })); }
    },
    bce: {
      value: function (u, p, y) { var s = 0; for (var o = 0; o < u.length; o++) s += softplus(u[o]) - y[o] * u[o]; return s; },
      delta: function (u, p, y, g, c) { return p.map(function (v, o) { return c * (v - y[o]); }); }
    },
    cross_entropy: {
      value: function (u, p, y) {
        var sy = 0, yu = 0, o;
        for (o = 0; o < y.length; o++) sy += y[o];
        for (o = 0; o < y.length; o++) yu += y[o] * u[o];
        return sy * logsumexp(u) - yu;
      },
      delta: function (u, p, y, g, c) {
        var sy = 0, o;
        for (o = 0; o < y.length; o++) sy += y[o];
        return p.map(function (v, o) { return c * (v * sy - y[o]); });
      }
    }
  };
  function jvp(g, a, v) {  // g'(u) v given a = g(u): Activation.jvp
    if (!ACT[g].vector) return a.map(function (ai, o) { return ACT[g].deriv(ai) * v[o]; });
    var s = 0;
    for (var o = 0; o < a.length; o++) s += a[o] * v[o];
    return a.map(function (ai, o) { return ai * (v[o] - s); });
  }

  // ------------------------------------------------------------------ small linear algebra (engine order)
  function zeros(n) { var a = []; for (var i = 0; i < n; i++) a.push(0); return a; }
  function mat(r, c) { var a = []; for (var i = 0; i < r; i++) a.push(zeros(c)); return a; }
  function mv(M, v) {  // M v: out_i = sum_k M[i][k] v[k], k in order (products.matmul's order)
    return M.map(function (row) { var s = 0; for (var k = 0; k < v.length; k++) s += row[k] * v[k]; return s; });
  }
  function vm(v, M) {  // v M: out_j = sum_k v[k] M[k][j]
    var out = zeros(M[0].length);
    for (var j = 0; j < out.length; j++) { var s = 0; for (var k = 0; k < v.length; k++) s += v[k] * M[k][j]; out[j] = s; }
    return out;
  }
  function norm(v) { var s = 0; for (var i = 0; i < v.length; i++) s += v[i] * v[i]; return Math.sqrt(s); }
  function flat(a) { return Array.isArray(a[0]) ? [].concat.apply([], a) : a.slice(); }

  // ------------------------------------------------------------------ the recurrence (engine.py)
  function compute(S, light) {
    var T = S.x.length, H = S.H, O = S.O, t, i, k, j, o, d;
    var f = ACT[S.hidden_activation], gname = S.output_activation, L = LOSS[S.loss];
    var c = S.reduction === "mean" ? 1 / T : 1;
    var z = [], h = [S.h0.slice()], u = [], yp = [], fp = [], E = [], du1 = [], duc = [];
    for (t = 0; t < T; t++) {
      var zt = mv(S.w_x, S.x[t]).map(function (v, j) { return v + S.b1[j]; });  // mm(x, w_x.T) + b1
      var rec = mv(S.w_h, h[t]);
      zt = zt.map(function (v, j) { return v + rec[j]; });                      // z[t] += mm(h[t], w_h.T)
      z.push(zt);
      h.push(zt.map(f.value));
    }
    for (t = 0; t < T; t++) {
      var ut = mv(S.w, h[t + 1]).map(function (v, o) { return v + S.b2[o]; });
      u.push(ut);
      yp.push(ACT[gname].vector ? softmax(ut) : ut.map(ACT[gname].value));
      fp.push(h[t + 1].map(f.deriv));
    }
    var loss = 0;
    for (t = 0; t < T; t++) {
      E.push(L.value(u[t], yp[t], S.y[t]));
      loss += E[t];
      du1.push(L.delta(u[t], yp[t], S.y[t], gname, 1));  // dE_t/du_t (decompose, gradflow: c = 1 for one sequence)
      duc.push(L.delta(u[t], yp[t], S.y[t], gname, c));  // c dE_t/du_t (backward)
    }
    loss = c * loss;
    // backward: full BPTT (bptt_full) or truncated (bptt_truncated)
    var K = S.truncate && S.truncate < T ? S.truncate : null;
    var dhd = duc.map(function (v) { return vm(v, S.w); });  // c dE_t/dh_t
    var dz = [], dh = [];
    for (t = 0; t < T; t++) { dz.push(zeros(H)); dh.push(zeros(H)); }
    if (K === null) {
      var carry = zeros(H);
      for (t = T - 1; t >= 0; t--) {
        dh[t] = dhd[t].map(function (v, j) { return v + carry[j]; });  // dLoss/dh_t
        dz[t] = dh[t].map(function (v, j) { return v * fp[t][j]; });
        carry = vm(dz[t], S.w_h);
      }
    } else {
      for (t = 0; t < T; t++) {
        var delta = dhd[t];
        for (var s = t; s > Math.max(t - K, -1); s--) {
          for (j = 0; j < H; j++) dh[s][j] += delta[j];
          var dzs = delta.map(function (v, j) { return v * fp[s][j]; });
          for (j = 0; j < H; j++) dz[s][j] += dzs[j];
          delta = vm(dzs, S.w_h);
        }
      }
    }
    // weight_grads: sums over t in order
    var G = {w: mat(O, H), w_x: mat(H, S.D), w_h: mat(H, H), b1: zeros(H), b2: zeros(O)};
    for (t = 0; t < T; t++) {
      for (o = 0; o < O; o++) { for (j = 0; j < H; j++) G.w[o][j] += duc[t][o] * h[t + 1][j]; G.b2[o] += duc[t][o]; }
      for (j = 0; j < H; j++) {
        for (d = 0; d < S.D; d++) G.w_x[j][d] += dz[t][j] * S.x[t][d];
        for (var l = 0; l < H; l++) G.w_h[j][l] += dz[t][j] * h[t][l];
        G.b1[j] += dz[t][j];
      }
    }
    var R = {T: T, c: c, z: z, h: h, u: u, yp: yp, fp: fp, E: E, loss: loss, du1: du1, duc: duc, dh: dh, dz: dz,
             grads: G, K: K};
    if (light) return R;
    // decompose: paths[theta][i][k] (flattened entries), dE_i/dh_k, and the gradient flow ||dE_i/dh_k||
    var P = {}, terms = {}, dEdh = [], gf = [];
    THETAS.forEach(function (th) { P[th] = []; terms[th] = []; });
    for (i = 0; i < T; i++) {
      THETAS.forEach(function (th) { P[th].push([]); });
      var ws = [], b2s = du1[i].slice();
      for (o = 0; o < O; o++) for (j = 0; j < H; j++) ws.push(du1[i][o] * h[i + 1][j]);
      P.w[i][i] = ws;
      P.b2[i][i] = b2s;
      var dl = vm(du1[i], S.w);
      dEdh.push([]);
      gf.push([]);
      for (k = i; k >= 0; k--) {
        dEdh[i][k] = dl;
        gf[i][k] = norm(dl);
        var dzk = dl.map(function (v, j) { return v * fp[k][j]; });
        var wx = [], wh = [];
        for (j = 0; j < H; j++) {
          for (d = 0; d < S.D; d++) wx.push(dzk[j] * S.x[k][d]);
          for (l = 0; l < H; l++) wh.push(dzk[j] * h[k][l]);
        }
        P.w_x[i][k] = wx; P.w_h[i][k] = wh; P.b1[i][k] = dzk;
        dl = vm(dzk, S.w_h);
      }
    }
    var kept = function (i, k) { return K === null || k > i - K; };
    THETAS.forEach(function (th) {
      for (i = 0; i < T; i++) {
        var acc = null;
        for (k = 0; k <= i; k++) {
          var p = P[th][i][k];
          if (!p || !kept(i, k)) continue;
          acc = acc ? acc.map(function (v, e) { return v + p[e]; }) : p.slice();
        }
        terms[th].push(acc);
      }
    });
    R.paths = P; R.terms = terms; R.dEdh = dEdh; R.gf = gf; R.kept = kept;
    return R;
  }

  // ------------------------------------------------------------------ numbers as text and as TeX
  function g6(v, n) {
    n = n || 6;
    if (v === 0) return "0";
    if (!isFinite(v)) return String(v);
    var a = Math.abs(v), s;
    if (a >= 1e-4 && a < 1e6) {
      s = v.toPrecision(n);
      if (s.indexOf("e") < 0) return s.indexOf(".") >= 0 ? s.replace(/0+$/, "").replace(/\.$/, "") : s;
    }
    var parts = v.toExponential(n - 1).split("e"), m = parts[0];
    if (m.indexOf(".") >= 0) m = m.replace(/0+$/, "").replace(/\.$/, "");
    return m + "e" + parts[1].replace("+", "");
  }
  function esc(s) {
    return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
  }
  function full(v) { return String(v); }  // the shortest text that reads back as the same double
  // a displayed number with its full value in the DOM
  // Every number drawn outside the formulas is registered (NREG; cell colours in SREG): when a change keeps the
  // page's structure, render() writes the new digits into the existing elements instead of rebuilding them.
  var NREG = [], SREG = [];
  function N(q, v, n) {
    NREG.push([q, v, n]);
    return '<span class="num" data-n="' + (NREG.length - 1) + '" data-quantity="' + esc(q) + '" data-value="' + full(v) + '">' + esc(g6(v, n)) + "</span>";
  }
  function S_(css) { SREG.push(css); return ' data-s="' + (SREG.length - 1) + '" style="' + css + '"'; }
  var NUM_RE = / data-n="\d+" data-quantity="[^"]*" data-value="[^"]*">[^<]*</g, STYLE_RE = / data-s="\d+" style="[^"]*"/g;
  var QREG = [];  // numbers inside formulas: \htmlData{q=i}, given data-quantity/data-value after typesetting
  // A number in a formula: the signs outside the marked digits (mantissa m, exponent x), so that a change of
  // value alone keeps the typeset layout and only the digits are replaced (see renderFormulas).
  function TQ(q, v, paren) {
    QREG.push([q, v]);
    var t = g6(Math.abs(v)), e = t.indexOf("e"), body;
    if (e < 0) body = t;
    else {
      var x = +t.slice(e + 1);
      body = "\\htmlData{m=1}{" + t.slice(0, e) + "} \\times 10^{" + (x < 0 ? "-" : "") + "\\htmlData{x=1}{" + Math.abs(x) + "}}";
    }
    var s = (v < 0 ? "-" : "") + "\\htmlData{q=" + (QREG.length - 1) + "}{" + body + "}";
    return paren && v < 0 ? "(" + s + ")" : s;
  }
  var PLAIN_Q = /\\htmlData\{q=\d+\}\{[0-9.]+\}/g;
  var SCI_Q = /\\htmlData\{q=\d+\}\{\\htmlData\{m=1\}\{[0-9.]+\} \\times 10\^\{(-?)\\htmlData\{x=1\}\{\d+\}\}\}/g;
  // entry suffix: nothing for a quantity of one number, [i] or [i,j] (0-based, numpy's) otherwise
  function idx(shape, e) {
    var n = shape.reduce(function (a, b) { return a * b; }, 1);
    if (n === 1) return "";
    if (shape.length === 1) return "[" + e + "]";
    return "[" + Math.floor(e / shape[1]) + "," + (e % shape[1]) + "]";
  }
  function shapes(S) { return {w: [S.O, S.H], w_x: [S.H, S.D], w_h: [S.H, S.H], b1: [S.H], b2: [S.O]}; }

  // ------------------------------------------------------------------ state <-> URL fragment
  function clone(S) { return JSON.parse(JSON.stringify(S)); }
  function fmtVec(a) { return a.map(full).join(","); }
  function fmtMat(M) { return M.map(fmtVec).join(";"); }
  function fmtRows(rows, width) { return width === 1 ? rows.map(function (r) { return full(r[0]); }).join(",") : fmtMat(rows); }
  function toFragment(S) {
    var parts = [];
    if (S.D !== 1) parts.push("input_size=" + S.D);
    if (S.H !== 1) parts.push("hidden_size=" + S.H);
    if (S.O !== 1) parts.push("output_size=" + S.O);
    parts.push("w=" + fmtMat(S.w), "w_x=" + fmtMat(S.w_x), "w_h=" + fmtMat(S.w_h), "b1=" + fmtVec(S.b1),
               "b2=" + fmtVec(S.b2), "h0=" + fmtVec(S.h0), "x=" + fmtRows(S.x, S.D));
    if (S.loss === "cross_entropy") parts.push("y=" + S.y.map(function (r) { return r.indexOf(1); }).join(","));
    else parts.push("y=" + fmtRows(S.y, S.O));
    parts.push("hidden_activation=" + S.hidden_activation, "output_activation=" + S.output_activation,
               "loss=" + S.loss, "reduction=" + S.reduction);
    if (S.truncate) parts.push("truncate=" + S.truncate);
    return parts.join("&");
  }
  function Bad(msg) { this.message = msg; }
  function parseNum(key, s) {
    var t = s.trim();
    if (t === "" || !/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(t)) throw new Bad(key + ": " + JSON.stringify(s) + " is not a number; write e.g. " + key + "=0.5");
    var v = Number(t);
    if (!isFinite(v)) throw new Bad(key + ": " + JSON.stringify(s) + " is not finite; every value must be a finite number");
    return v;
  }
  function parseRows(key, s) {  // "1,0;0,1" -> [[1,0],[0,1]]; "1,0" -> [[1,0]]
    return s.split(";").map(function (r) { return r.split(",").map(function (v) { return parseNum(key, v); }); });
  }
  function intIn(key, s, lo, hi) {
    var v = parseNum(key, s);
    if (v !== Math.floor(v) || v < lo || v > hi) throw new Bad(key + ": " + s + " is not a whole number from " + lo + " to " + hi + "; write e.g. " + key + "=" + lo);
    return v;
  }
  function choice(key, s, allowed) {
    if (allowed.indexOf(s) < 0) throw new Bad(key + ": " + JSON.stringify(s) + " is not one of " + allowed.join(", ") + "; write e.g. " + key + "=" + allowed[0]);
    return s;
  }
  var KEYS = ["input_size", "hidden_size", "output_size", "w", "w_x", "w_h", "b1", "b2", "h0", "x", "y",
              "hidden_activation", "output_activation", "loss", "reduction", "truncate"];
  function fromFragment(frag, base) {
    var kv = {};
    frag.split("&").forEach(function (part) {
      if (!part) return;
      var eq = part.indexOf("=");
      if (eq < 0) throw new Bad("'" + part + "' has no '='; write key=value pairs joined by '&', e.g. #w_h=0.5&x=1,0");
      var key = decodeURIComponent(part.slice(0, eq)).replace(/-/g, "_"), val = decodeURIComponent(part.slice(eq + 1));
      if (KEYS.indexOf(key) < 0) throw new Bad("'" + key + "' is not an option; the keys are " + KEYS.join(", "));
      kv[key] = val;
    });
    var S = clone(base);
    var raw = {};
    ["w", "w_x", "w_h", "b1", "b2", "h0", "x", "y"].forEach(function (k) { if (k in kv) raw[k] = parseRows(k, kv[k]); });
    // sizes: given, else read off the parameters given, else the base's
    S.D = "input_size" in kv ? intIn("input_size", kv.input_size, 1, MAX_SIZE) : raw.w_x ? raw.w_x[0].length : base.D;
    S.H = "hidden_size" in kv ? intIn("hidden_size", kv.hidden_size, 1, MAX_SIZE) : raw.w_h ? raw.w_h.length : base.H;
    S.O = "output_size" in kv ? intIn("output_size", kv.output_size, 1, MAX_SIZE) : raw.w ? raw.w.length : base.O;
    if ("hidden_activation" in kv) S.hidden_activation = choice("hidden_activation", kv.hidden_activation, INIT.hidden);
    if ("output_activation" in kv) S.output_activation = choice("output_activation", kv.output_activation, INIT.output);
    if ("loss" in kv) S.loss = choice("loss", kv.loss, Object.keys(INIT.losses));
    if ("reduction" in kv) S.reduction = choice("reduction", kv.reduction, ["mean", "sum"]);
    var sh = shapes(S);
    ["w", "w_x", "w_h"].forEach(function (k) {
      var r = sh[k][0], cdim = sh[k][1];
      if (raw[k]) {
        var M = raw[k];
        if (r === 1 && M.length === 1 && M[0].length === cdim) S[k] = M;
        else if (M.length === r && M.every(function (row) { return row.length === cdim; })) S[k] = M;
        else if (M.length === 1 && M[0].length === r * cdim) S[k] = M[0].reduce(function (acc, v, e) { if (e % cdim === 0) acc.push([]); acc[acc.length - 1].push(v); return acc; }, []);
        else throw new Bad(k + " has the wrong shape for hidden_size " + S.H + ", input_size " + S.D + ", output_size " + S.O + ": it must be " + r + " by " + cdim + " (rows separated by ';', entries by ',')");
      } else if (S[k].length !== r || S[k][0].length !== cdim) {
        throw new Bad("the sizes changed, so " + k + " must be given: " + r + " by " + cdim + " numbers (rows separated by ';', entries by ',')");
      }
    });
    [["b1", S.H], ["b2", S.O], ["h0", S.H]].forEach(function (p) {
      var k = p[0], n = p[1];
      if (raw[k]) {
        var v = flat(raw[k]);
        if (v.length === 1 && n > 1 && k === "h0") v = zeros(n).map(function () { return v[0]; });  // one h0 for every unit
        if (v.length !== n) throw new Bad(k + " has " + v.length + " entries; it must have " + n + " (comma-separated)");
        S[k] = v;
      } else if (S[k].length !== n) {
        throw new Bad("the sizes changed, so " + k + " must be given: " + n + " comma-separated numbers");
      }
    });
    if (raw.x) S.x = steps("x", raw.x, S.D);
    else if (S.x[0].length !== S.D) throw new Bad("the input size changed, so x must be given");
    var T = S.x.length;
    if (T < 1 || T > MAX_T) throw new Bad("x has " + T + " steps; the live page takes 1 to " + MAX_T);
    if (S.loss === "cross_entropy" && "y" in kv && kv.y.indexOf(";") < 0) {
      S.y = flat(raw.y).map(function (lab) {
        if (lab !== Math.floor(lab) || lab < 0 || lab >= S.O) throw new Bad("y: class label " + lab + " is outside 0.." + (S.O - 1) + " (output_size " + S.O + "); give labels below " + S.O);
        return zeros(S.O).map(function (_, o) { return o === lab ? 1 : 0; });
      });
    } else if (raw.y) S.y = steps("y", raw.y, S.O);
    else if (S.y.length !== T || S.y[0].length !== S.O) throw new Bad("x has " + T + " steps, so y must be given with one target per step");
    if (S.y.length !== T) throw new Bad("x has " + T + " steps but y has " + S.y.length + "; give one target per input step");
    if ("truncate" in kv) S.truncate = kv.truncate === "" || kv.truncate === "none" ? null : intIn("truncate", kv.truncate, 1, MAX_T);
    var problem = check(S);
    if (problem) throw new Bad(problem);
    return S;
  }
  function steps(key, rows, width) {
    if (width === 1 && rows.length === 1) return rows[0].map(function (v) { return [v]; });  // 1,0,0.5: one number a step
    if (rows.every(function (r) { return r.length === width; })) return rows;
    throw new Bad(key + " needs " + width + " numbers a step: steps separated by ';', entries by ',' (e.g. " + key + "=1,0;0,1)");
  }
  // what the engine refuses (one line: what was found, what is required, how to fix), or null
  function check(S) {
    var loss = INIT.losses[S.loss];
    if (ACT[S.hidden_activation] === undefined || ACT[S.output_activation] === undefined || LOSS[S.loss] === undefined)
      return "this page has no arithmetic for " + [S.hidden_activation, S.output_activation, S.loss].join(" / ") + "; write a new page with bptt explain --format html";
    if (ACT[S.output_activation].vector && S.O < 2)
      return "output_activation softmax acts over the outputs and needs output_size >= 2 (its value for one output is always 1); set output_size to 2 or more";
    if (loss.outputs && loss.outputs.indexOf(S.output_activation) < 0)
      return "loss " + S.loss + " needs a " + loss.outputs.join(" or ") + " output, got output_activation " + S.output_activation + "; choose output_activation " + loss.outputs[0];
    var t, o;
    if (S.loss === "bce") {
      for (t = 0; t < S.y.length; t++) for (o = 0; o < S.O; o++)
        if (S.y[t][o] < 0 || S.y[t][o] > 1) return "binary cross-entropy needs targets in [0, 1], got " + S.y[t][o] + " (y_" + (t + 1) + "); give 0/1 labels or probabilities";
    }
    if (S.loss === "cross_entropy") {
      for (t = 0; t < S.y.length; t++) {
        var s = 0;
        for (o = 0; o < S.O; o++) { if (S.y[t][o] < 0) s = NaN; s += S.y[t][o]; }
        if (!(Math.abs(s - 1) <= 1e-12)) return "cross-entropy needs targets that are class labels or rows summing to 1 (y_" + (t + 1) + " sums to " + s + "); pick a class for each step";
      }
    }
    return null;
  }

  // ------------------------------------------------------------------ the page
  var state, result, written = null, recomputes = 0, lastMs = 0, structure = "";
  var step = null;  // the step-through: null, or {stages, at}
  var focus = {theta: "w_x", entry: 0};
  var entries = {w: 0, w_x: 0, w_h: 0, b1: 0, b2: 0};  // which entry of each theta the paths show
  var pinned = null;
  var $ = function (id) { return document.getElementById(id); };
  var live = $("live");
  function each(sel, f) { document.querySelectorAll(sel).forEach(f); }

  function setError(msg) {
    var el = $("live-error");
    el.textContent = msg || "";
    el.hidden = !msg;
  }
  function setNote(msg) { $("live-note").textContent = msg || ""; }

  // one change: compute, draw, write the fragment
  function apply(S, opts) {
    opts = opts || {};
    var problem = check(S);
    if (problem) { setError(problem); return false; }
    var t0 = performance.now();
    var R;
    timed("compute", function () { R = compute(S); });
    var bad = !isFinite(R.loss) || THETAS.some(function (th) { return flat(R.grads[th]).some(function (v) { return !isFinite(v); }); });
    if (bad) { setError("the loss or a gradient overflowed (not finite) with these numbers; make the weights or inputs smaller"); return false; }
    setError("");
    state = S; result = R; recomputes += 1;
    step = null;
    render();
    if (!opts.keepUrl) timed("url", writeFragment);
    lastMs = performance.now() - t0;
    document.documentElement.setAttribute("data-recomputes", String(recomputes));
    document.documentElement.setAttribute("data-last-ms", lastMs.toFixed(2));
    var msEl = $("live-ms");
    if (msEl) msEl.textContent = lastMs.toFixed(1) + " ms";
    return true;
  }
  var urlTimer = null;
  function writeFragment() {
    var frag = toFragment(state);
    // replaceState records the scroll position, which forces a layout: done after the change is drawn, once per burst
    clearTimeout(urlTimer);
    urlTimer = setTimeout(function () {
      try { history.replaceState(null, "", "#" + frag); } catch (e) { /* some file:// policies refuse: the link box has it */ }
    }, 0);
    var url = location.href.split("#")[0] + "#" + frag;
    $("live-link").value = url;
    var doc = $("doc");
    var same = frag === written;
    if (doc) doc.classList.toggle("stale", !same);
    var banner = $("stale-banner");
    if (banner) banner.hidden = same;
  }

  var formulaSig = null, typesets = 0, pageSig = null, draws = 0;  // what the formulas' typeset layout was made for, and how often typeset
  var timings = {};  // milliseconds per part of the last render (window.bpttLive.timings())
  function timed(name, f) { var t0 = performance.now(); f(); timings[name] = performance.now() - t0; }
  function render() {
    var S = state;
    var key = [S.D, S.H, S.O, S.x.length, S.loss, S.output_activation].join(",");
    timed("controls", function () {
      if (key !== structure) { structure = key; buildControls(); }
      syncControls();
    });
    THETAS.forEach(function (th) { if (entries[th] >= flat(S[th]).length) entries[th] = 0; });
    focus.entry = entries[focus.theta];
    QREG = [];
    $("live-h").textContent = "Live: T = " + S.x.length + ", sizes " + S.D + "-" + S.H + "-" + S.O + ", hidden " + S.hidden_activation +
      ", output " + S.output_activation + ", loss " + S.loss + ", reduction " + S.reduction + (S.truncate && S.truncate < S.x.length ? ", truncated to " + S.truncate : "");
    $("live-net-title").textContent = "The unrolled network, T = " + S.x.length;
    NREG = []; SREG = [];
    var parts;
    timed("build", function () {
      parts = {"live-net": netSvg(), "live-summary": summary(), "live-totals": totalsTable(), "live-steps": stepsTable(),
               "live-terms": termsTable(), "live-paths": pathChips(), "live-flow": flowTable()};
    });
    var sig = Object.keys(parts).map(function (k) { return parts[k].replace(NUM_RE, "#<").replace(STYLE_RE, "#"); }).join("|") +
              "|" + focus.theta + ":" + focus.entry;
    if (sig === pageSig) {
      timed("digits", function () {  // same structure: new digits (and colours) into the elements drawn last time
        Object.keys(parts).forEach(function (k) {
          var box = $(k);
          box.querySelectorAll("[data-n]").forEach(function (el) {
            var r = NREG[+el.getAttribute("data-n")];
            el.setAttribute("data-value", full(r[1]));
            var t = g6(r[1], r[2]);
            if (el.textContent !== t) el.textContent = t;
          });
          box.querySelectorAll("[data-s]").forEach(function (el) { el.style.cssText = SREG[+el.getAttribute("data-s")]; });
        });
      });
    } else {
      timed("draw", function () {
        Object.keys(parts).forEach(function (k) { $(k).innerHTML = parts[k]; });
        $("live-focus-select").innerHTML = focusOptions();
      });
      pageSig = sig;
      draws += 1;
    }
    timed("formulas", renderFormulas);
    timed("step", renderStep);
  }

  // ---------------------------------------------------------------- controls
  function entryName(th, shape, e) { return th + idx(shape, e); }
  function numInput(name, v, label, slider) {  // label: what shows beside the box (the name itself, or its index)
    var id = "in-" + name.replace(/[^A-Za-z0-9_]/g, "_");
    var s = '<span class="entry"><label for="' + id + '"' + (label === name ? "" : ' aria-label="' + esc(name) + '"') + ">" + esc(label) +
            '</label> <input type="text" inputmode="decimal" id="' + id + '" data-key="' + esc(name) + '" value="' + esc(full(v)) + '" size="7" spellcheck="false">';
    if (slider) s += '<input type="range" min="-3" max="3" step="0.05" aria-label="' + esc(label) + ' slider" data-slider="' + esc(name) + '" value="' + v + '">';
    return s + "</span>";
  }
  function select(key, label, options, v) {
    return '<label>' + esc(label) + ' <select data-key="' + key + '">' + options.map(function (o) {
      return '<option value="' + esc(o) + '"' + (o === v ? " selected" : "") + ">" + esc(o) + "</option>";
    }).join("") + "</select></label>";
  }
  function buildControls() {
    var S = state, sh = shapes(S), T = S.x.length, html = [];
    html.push('<fieldset><legend>Sizes</legend>' + ["input_size", "hidden_size", "output_size"].map(function (k, j) {
      var v = [S.D, S.H, S.O][j], min = 1;
      return '<label>' + k + ' <input type="number" min="' + min + '" max="' + MAX_SIZE + '" data-size="' + k + '" value="' + v + '"></label>';
    }).join(" ") + "</fieldset>");
    html.push('<fieldset><legend>Parameters</legend>' + THETAS.map(function (th) {
      var vals = flat(S[th]), one = vals.length === 1, cols = sh[th].length === 2 ? sh[th][1] : vals.length, rows = [];
      if (one) return '<div class="param">' + numInput(th, vals[0], th, true) + "</div>";
      for (var r = 0; r * cols < vals.length; r++) {  // one line per row of the matrix
        rows.push('<div class="mrow">' + vals.slice(r * cols, (r + 1) * cols).map(function (v, c) {
          var e = r * cols + c;
          return numInput(entryName(th, sh[th], e), v, idx(sh[th], e), false);
        }).join("") + "</div>");
      }
      return '<div class="param matrix"><span class="pname">' + th + '</span><div class="mrows">' + rows.join("") + "</div></div>";
    }).join("") + '<div class="param">' + (S.H === 1 ? "" : '<span class="pname">h0</span>') + S.h0.map(function (v, e) {
      var n = "h0" + idx([S.H], e);
      return numInput(n, v, S.H === 1 ? n : idx([S.H], e), false);
    }).join("") + "</div></fieldset>");
    var rows = [];
    for (var t = 0; t < T; t++) {
      var cells = S.x[t].map(function (v, d) { var n = "x_" + (t + 1) + idx([S.D], d); return numInput(n, v, n, false); }).join("");
      var ys;
      if (S.loss === "cross_entropy") {
        ys = '<label>class y_' + (t + 1) + ' <select data-class="' + t + '">' + S.y[t].map(function (v, o) {
          return '<option value="' + o + '"' + (v === 1 ? " selected" : "") + ">" + o + "</option>";
        }).join("") + "</select></label>";
      } else {
        ys = S.y[t].map(function (v, o) { var n = "y_" + (t + 1) + idx([S.O], o); return numInput(n, v, n, false); }).join("");
      }
      rows.push('<div class="seqrow"><span class="t">t = ' + (t + 1) + "</span>" + cells + ys +
                '<button type="button" data-remove="' + t + '"' + (T === 1 ? " disabled" : "") + ' aria-label="remove step ' + (t + 1) + '">remove</button></div>');
    }
    html.push('<fieldset><legend>Sequence (T = ' + T + ')</legend>' + rows.join("") +
              '<button type="button" id="add-step"' + (T >= MAX_T ? " disabled" : "") + ">add a step</button></fieldset>");
    var truncs = ["full"];
    for (var k = 1; k < T; k++) truncs.push(String(k));
    html.push('<fieldset><legend>Model</legend>' + select("hidden_activation", "hidden activation", INIT.hidden, S.hidden_activation) + " " +
              select("output_activation", "output activation", INIT.output, S.output_activation) + " " +
              select("loss", "loss", Object.keys(INIT.losses), S.loss) + " " +
              select("reduction", "reduction", ["mean", "sum"], S.reduction) + " " +
              select("truncate", "truncation (steps back)", truncs, S.truncate && S.truncate < T ? String(S.truncate) : "full") + "</fieldset>");
    $("live-controls").innerHTML = html.join("");
  }
  function syncControls() {  // values into the controls, without rebuilding (keeps the focus and caret)
    var S = state, sh = shapes(S);
    var vals = {};
    THETAS.forEach(function (th) { flat(S[th]).forEach(function (v, e) { vals[entryName(th, sh[th], e)] = v; }); });
    S.h0.forEach(function (v, e) { vals["h0" + idx([S.H], e)] = v; });
    S.x.forEach(function (r, t) { r.forEach(function (v, d) { vals["x_" + (t + 1) + idx([S.D], d)] = v; }); });
    if (S.loss !== "cross_entropy") S.y.forEach(function (r, t) { r.forEach(function (v, o) { vals["y_" + (t + 1) + idx([S.O], o)] = v; }); });
    each("#live-controls input[data-key]", function (el) {
      var k = el.getAttribute("data-key");
      if (k in vals && document.activeElement !== el && Number(el.value) !== vals[k]) el.value = full(vals[k]);
      el.removeAttribute("aria-invalid");
    });
    each("#live-controls input[data-slider]", function (el) {
      var k = el.getAttribute("data-slider");
      if (k in vals && document.activeElement !== el) el.value = vals[k];
    });
    each("#live-controls select[data-key]", function (el) {
      var k = el.getAttribute("data-key");
      el.value = k === "truncate" ? (S.truncate && S.truncate < S.x.length ? String(S.truncate) : "full") : S[k];
    });
  }
  // the control named key ('w_h[0,1]', 'x_2', 'h0[1]') set to v in a copy of the state
  function withValue(key, v) {
    var S = clone(state), m = /^([a-z_0-9]+?)(?:_(\d+))?(?:\[(\d+)(?:,(\d+))?\])?$/.exec(key);
    var base = m[1], t = m[2] ? +m[2] - 1 : null, a = m[3] !== undefined ? +m[3] : 0, b = m[4] !== undefined ? +m[4] : null;
    if (base === "x" || base === "y") { S[base][t][a] = v; return S; }
    if (THETAS.indexOf(base) < 0 && base !== "h0") {  // w_x, w_h: the name's own underscore
      base = key.replace(/\[.*$/, "");
    }
    var target = S[base];
    if (Array.isArray(target[0])) {
      if (b === null) { b = a; a = 0; if (target.length === 1 && target[0].length === 1) b = 0; }
      target[a][b] = v;
    } else target[a] = v;
    return S;
  }
  function onInput(ev) {
    stopDescent();
    var el = ev.target, key = el.getAttribute("data-key"), sl = el.getAttribute("data-slider");
    if (sl) {
      var inp = live.querySelector('input[data-key="' + sl + '"]');
      if (inp) inp.value = el.value;
      apply(withValue(sl, Number(el.value)));
      return;
    }
    if (el.hasAttribute("data-size")) return;  // on change only
    if (!key || el.tagName !== "INPUT") return;
    var v;
    try { v = parseNum(key, el.value); } catch (e) {
      el.setAttribute("aria-invalid", "true");
      setError(e.message);
      return;
    }
    el.removeAttribute("aria-invalid");
    var sld = live.querySelector('input[data-slider="' + key + '"]');
    if (sld) sld.value = v;
    apply(withValue(key, v));
  }
  function onKey(ev) {  // ArrowUp/ArrowDown step a number box by 0.1 (with Shift 1, with Alt 0.01)
    var el = ev.target;
    if (el.tagName !== "INPUT" || el.type !== "text" || !el.getAttribute("data-key") || (ev.key !== "ArrowUp" && ev.key !== "ArrowDown")) return;
    var v = Number(el.value);
    if (!isFinite(v) || el.value.trim() === "") return;
    var d = ev.shiftKey ? 1 : ev.altKey ? 0.01 : 0.1;
    el.value = String(Number((v + (ev.key === "ArrowUp" ? d : -d)).toPrecision(12)));
    ev.preventDefault();
    el.dispatchEvent(new Event("input", {bubbles: true}));
  }
  function onChange(ev) {
    stopDescent();
    var el = ev.target, S;
    if (el.hasAttribute("data-size")) {
      var n = Number(el.value);
      if (!(n >= 1 && n <= MAX_SIZE && n === Math.floor(n))) { setError(el.getAttribute("data-size") + " must be a whole number from 1 to " + MAX_SIZE); return; }
      apply(resized(el.getAttribute("data-size"), n));
      return;
    }
    if (el.hasAttribute("data-class")) {
      S = clone(state);
      var t = +el.getAttribute("data-class");
      S.y[t] = S.y[t].map(function (_, o) { return o === +el.value ? 1 : 0; });
      apply(S);
      return;
    }
    var key = el.getAttribute("data-key");
    if (!key || el.tagName !== "SELECT") return;
    S = clone(state);
    if (key === "truncate") S.truncate = el.value === "full" ? null : +el.value;
    else S[key] = el.value;
    var notes = [];
    // a choice the engine would refuse pulls its partner along (and says so)
    var loss = INIT.losses[S.loss];
    if (key === "loss" && loss.outputs && loss.outputs.indexOf(S.output_activation) < 0) {
      S.output_activation = loss.outputs[0];
      notes.push("loss " + S.loss + " needs a " + loss.outputs[0] + " output: output activation set to " + loss.outputs[0]);
    }
    if (key === "output_activation" && loss.outputs && loss.outputs.indexOf(S.output_activation) < 0) {
      S.loss = "squared_error";
      notes.push(S.output_activation + " output: loss set to squared_error (" + key + " " + el.value + " does not pair with " + state.loss + ")");
    }
    if (ACT[S.output_activation].vector && S.O < 2) { S = resizedFrom(S, "output_size", 2); notes.push("softmax needs at least 2 outputs: output_size set to 2"); }
    if (S.loss === "cross_entropy" && state.loss !== "cross_entropy") {
      S.y = S.y.map(function (r, t) { return zeros(S.O).map(function (_, o) { return o === t % S.O ? 1 : 0; }); });
      notes.push("cross-entropy takes class labels: each step's target set to a class (change them under Sequence)");
    }
    if (S.loss === "bce") S.y = S.y.map(function (r) { return r.map(function (v) { return Math.min(1, Math.max(0, v)); }); });
    setNote(notes.join("; "));
    apply(S);
  }
  function resized(which, n) { return resizedFrom(clone(state), which, n); }
  function resizedFrom(S, which, n) {  // keep what fits, fill the rest (new weights 0.5 on the diagonal, else 0)
    var D = which === "input_size" ? n : S.D, H = which === "hidden_size" ? n : S.H, O = which === "output_size" ? n : S.O;
    function fit(M, r, c) {
      var out = mat(r, c);
      for (var i = 0; i < r; i++) for (var j = 0; j < c; j++) out[i][j] = M[i] !== undefined && M[i][j] !== undefined ? M[i][j] : (i === j ? 0.5 : 0.1);
      return out;
    }
    function fitv(v, n) { return zeros(n).map(function (_, i) { return v[i] !== undefined ? v[i] : 0; }); }
    S.w = fit(S.w, O, H); S.w_x = fit(S.w_x, H, D); S.w_h = fit(S.w_h, H, H);
    S.b1 = fitv(S.b1, H); S.b2 = fitv(S.b2, O); S.h0 = fitv(S.h0, H);
    S.x = S.x.map(function (r) { return fitv(r, D); });
    if (S.loss === "cross_entropy") S.y = S.y.map(function (r) { var c = Math.min(r.indexOf(1), O - 1); return zeros(O).map(function (_, o) { return o === c ? 1 : 0; }); });
    else S.y = S.y.map(function (r) { return zeros(O).map(function (_, o) { return r[o] !== undefined ? r[o] : 0.5; }); });
    S.D = D; S.H = H; S.O = O;
    if (O < 2 && ACT[S.output_activation].vector) { S.output_activation = "sigmoid"; if (S.loss === "cross_entropy") S.loss = "squared_error"; }
    return S;
  }
  function onClick(ev) {
    var el = ev.target.closest ? ev.target.closest("button") : null;
    if (!el) return;
    var S;
    if (el.id === "add-step") {
      S = clone(state);
      S.x.push(S.x[S.x.length - 1].slice());
      S.y.push(S.y[S.y.length - 1].slice());
      apply(S);
      var add = $("add-step"); if (add) add.focus();
    } else if (el.hasAttribute("data-remove")) {
      S = clone(state);
      var t = +el.getAttribute("data-remove");
      S.x.splice(t, 1); S.y.splice(t, 1);
      if (S.truncate && S.truncate >= S.x.length) S.truncate = null;
      apply(S);
    } else if (el.id === "live-copy") {
      var url = $("live-link").value;
      $("live-link").select();
      var done = function () { setNote("link copied: it reopens this exact configuration"); };
      if (navigator.clipboard && navigator.clipboard.writeText) navigator.clipboard.writeText(url).then(done, function () { try { document.execCommand("copy"); done(); } catch (e) { setNote("select the link and copy it"); } });
      else { try { document.execCommand("copy"); done(); } catch (e) { setNote("select the link and copy it"); } }
    } else if (el.id === "live-restore" || el.id === "stale-restore") {
      setNote("");
      apply(clone(INIT.state));
    } else if (el.hasAttribute("data-step")) {
      stepAction(el.getAttribute("data-step"));
    } else if (el.id === "gd-run") {
      runDescent();
    } else if (el.id === "gd-undo") {
      if (gdBefore) { apply(gdBefore); gdBefore = null; $("gd-undo").disabled = true; }
    }
  }

  // ---------------------------------------------------------------- the network
  var DX = 110, ROW = {y: 60, h: 162, x: 264}, RAD = 21, LEFT = 70;
  function nodeXY(id) {
    var kind = id[0], t = +id.slice(1);
    return [LEFT + t * DX, ROW[kind]];
  }
  function edgeSvg(id, src, dst, label) {
    var b2 = nodeXY(dst), fromBias = src[0] === "b";
    var a2 = fromBias ? [b2[0] - 34, b2[1] - 40] : nodeXY(src);
    var dx = b2[0] - a2[0], dy = b2[1] - a2[1], len = Math.sqrt(dx * dx + dy * dy), ux = dx / len, uy = dy / len;
    var st = fromBias ? 0 : RAD;
    var ax = a2[0] + ux * st, ay = a2[1] + uy * st, bx = b2[0] - ux * (RAD + 2), by = b2[1] - uy * (RAD + 2);
    var lx, ly, anchor = "start";
    if (fromBias) { lx = ax - 4; ly = ay - 3; anchor = "end"; }
    else if (dy === 0) { lx = (ax + bx) / 2 - 4; ly = ay - 7; anchor = "middle"; }  // w_h: above its line, clear of the arrow
    else { lx = (ax + bx) / 2 + 5; ly = (ay + by) / 2 + 4; }
    var base = label.split("_");
    var lab = base.length > 1 ? esc(base[0]) + '<tspan class="sub" dy="3">' + esc(base[1]) + "</tspan>" : esc(label);
    return '<g class="edge-g"><line class="edge" data-edge="' + id + '" x1="' + ax.toFixed(1) + '" y1="' + ay.toFixed(1) +
           '" x2="' + bx.toFixed(1) + '" y2="' + by.toFixed(1) + '" marker-end="url(#arrow-live)"/><text class="param" text-anchor="' + anchor +
           '" x="' + lx.toFixed(1) + '" y="' + ly.toFixed(1) + '">' + lab + "</text></g>";
  }
  function nodeSvg(id, name, vals, q) {
    var p = nodeXY(id), x = p[0], y = p[1];
    var parts = name.split("_");
    var lines = vals.map(function (v, e) {
      var qq = q + idx([vals.length], e), n = vals.length > 1 ? 4 : 6;
      NREG.push([qq, v, n]);
      return '<tspan x="' + (x + RAD + 3) + '" dy="' + (e === 0 ? 0 : 12) + '" data-n="' + (NREG.length - 1) + '" data-quantity="' + esc(qq) + '" data-value="' + full(v) + '">' + esc(g6(v, n)) + "</tspan>";
    }).join("");
    return '<g class="node" data-node="' + id + '"><circle cx="' + x + '" cy="' + y + '" r="' + RAD + '"/><text class="name" x="' + x + '" y="' + (y + 5) + '">' +
           esc(parts[0]) + '<tspan class="sub" dy="4">' + esc(parts[1]) + '</tspan></text><text class="value" x="' + (x + RAD + 3) + '" y="' + (y + RAD + 8) + '">' + lines +
           '</text><text class="delta" x="' + (x + 5) + '" y="' + (y - RAD - 5) + '"></text></g>';
  }
  function netSvg() {
    var S = state, R = result, T = S.x.length, parts = [];
    for (var t = 1; t <= T; t++) {
      parts.push(edgeSvg("x" + t + "-h" + t, "x" + t, "h" + t, "w_x"), edgeSvg("h" + (t - 1) + "-h" + t, "h" + (t - 1), "h" + t, "w_h"),
                 edgeSvg("b1-h" + t, "b1", "h" + t, "b_1"), edgeSvg("h" + t + "-y" + t, "h" + t, "y" + t, "w"),
                 edgeSvg("b2-y" + t, "b2", "y" + t, "b_2"));
    }
    parts.push(nodeSvg("h0", "h_0", R.h[0], "h_0"));
    for (t = 1; t <= T; t++) {
      parts.push(nodeSvg("x" + t, "x_" + t, S.x[t - 1], "x_" + t), nodeSvg("h" + t, "h_" + t, R.h[t], "h_" + t),
                 nodeSvg("y" + t, "y'_" + t, R.yp[t - 1], "y'_" + t));
    }
    var width = LEFT + T * DX + 200;
    return '<svg class="net" xmlns="http://www.w3.org/2000/svg" width="' + width + '" height="330" viewBox="0 0 ' + width +
      ' 330" role="img" aria-label="The unrolled network, T = ' + T + '"><defs><marker id="arrow-live" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="9" ' +
      'markerHeight="9" markerUnits="userSpaceOnUse" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="context-stroke"/></marker></defs>' +
      '<text class="rowlabel" x="4" y="' + (ROW.y + 4) + '">outputs</text><text class="rowlabel" x="4" y="' + (ROW.h + 4) + '">states</text>' +
      '<text class="rowlabel" x="4" y="' + (ROW.x + 4) + '">inputs</text>' + parts.join("") + '<text id="contrib" x="0" y="0"></text></svg>';
  }

  // ---------------------------------------------------------------- numbers
  function summary() {
    var S = state, R = result, T = S.x.length;
    var s = "<p>Loss = " + N("Loss", R.loss, 10) + " (" + S.loss + ", reduction " + S.reduction + (R.K ? ", gradients truncated to " + R.K + " steps back" : "") +
            "). Recomputed in " + "<span id=\"live-ms\"></span>.</p>";
    return s;
  }
  function totalsTable() {
    var S = state, R = result, sh = shapes(S);
    var rows = THETAS.map(function (th) {
      var vals = flat(R.grads[th]);
      return "<tr><th scope=\"row\">dLoss/d" + esc(th) + "</th><td>" + vals.map(function (v, e) {
        return (vals.length > 1 ? '<span class="ix">' + esc(idx(sh[th], e)) + "</span> " : "") + N("dLoss/d" + th + idx(sh[th], e), v, 10);
      }).join("<br>") + "</td></tr>";
    });
    return "<p class=\"cap\">The gradients" + (result.K ? " (truncated BPTT, " + result.K + " steps back)" : "") + "</p><table><tbody>" + rows.join("") + "</tbody></table>";
  }
  function vecCell(q, v, n) {
    if (v === null) return "<td>&ndash;</td>";
    return "<td>" + v.map(function (x, e) { return N(q + idx([v.length], e), x, n); }).join("<br>") + "</td>";
  }
  function stepsTable() {
    var S = state, R = result, T = S.x.length, g = S.output_activation, rows = [];
    var elem = !ACT[g].vector;
    var head = ["t", "x_t", "z_t", "h_t", "f'(z_t)", "u_t", "y'_t"].concat(elem ? ["g'(u_t)"] : []).concat(
      ["y_t", "E_t", elem && S.loss === "squared_error" ? "dE_t/dy'_t" : null, "dE_t/du_t", "dLoss/dh_t", "dLoss/dz_t"]).filter(function (v) { return v; });
    rows.push("<tr><td>0</td><td></td><td></td>" + vecCell("h_0", R.h[0]) + '<td colspan="' + (head.length - 4) + '"></td></tr>');
    for (var t = 0; t < T; t++) {
      var i = t + 1, r = "<tr><td>" + i + "</td>";
      r += vecCell("x_" + i, S.x[t]) + vecCell("z_" + i, R.z[t]) + vecCell("h_" + i, R.h[i]) + vecCell("f'(z_" + i + ")", R.fp[t]) +
           vecCell("u_" + i, R.u[t]) + vecCell("y'_" + i, R.yp[t]);
      if (elem) r += vecCell("g'(u_" + i + ")", R.yp[t].map(ACT[g].deriv));
      r += vecCell("y_" + i, S.y[t]) + "<td>" + N("E_" + i, R.E[t]) + "</td>";
      if (elem && S.loss === "squared_error") r += vecCell("dE_" + i + "/dy'_" + i, R.yp[t].map(function (p, o) { return p - S.y[t][o]; }));
      r += vecCell("dE_" + i + "/du_" + i, R.du1[t]) + vecCell("dLoss/dh_" + i, R.dh[t]) + vecCell("dLoss/dz_" + i, R.dz[t]) + "</tr>";
      rows.push(r);
    }
    return "<p class=\"cap\">Forward values and chain-rule factors, step by step (dLoss/dh_t is the backward pass's &delta;: " +
      (R.K ? "summed over the error terms that reach h_t within " + R.K + " steps" : "dE_t/dh_t c + dLoss/dz_{t+1} w_h") + ")</p><table><thead><tr>" +
      head.map(function (h) { return "<th scope=\"col\">" + esc(h) + "</th>"; }).join("") + "</tr></thead><tbody>" + rows.join("") + "</tbody></table>";
  }
  function focusOptions() {
    var S = state, sh = shapes(S), out = [];
    THETAS.forEach(function (th) {
      flat(S[th]).forEach(function (_, e) {
        var v = th + ":" + e, sel = th === focus.theta && e === focus.entry ? " selected" : "";
        out.push('<option value="' + v + '"' + sel + ">" + esc(th + idx(sh[th], e)) + "</option>");
      });
    });
    return out.join("");
  }
  function tagTheta(th) { return th.replace("_", ""); }
  function pathTag(th, i, k) { return "E" + i + "-" + tagTheta(th) + "-k" + k; }
  function pathChips() {  // every path of every error term, for each theta's chosen entry
    var S = state, R = result, T = S.x.length, out = [];
    THETAS.forEach(function (th) {
      if (T > CHIPS_ALL_T && th !== focus.theta) return;
      var sh = shapes(S)[th], e = entries[th];
      out.push('<div class="theta' + (th === focus.theta ? " focus" : "") + '">');
      for (var i = 1; i <= T; i++) {
        var chips = [];
        for (var k = 1; k <= i; k++) {
          var p = R.paths[th][i - 1][k - 1];
          if (!p) continue;
          var on = R.kept(i - 1, k - 1);
          chips.push('<button type="button" class="path' + (on ? "" : " cut") + '" data-path="' + pathTag(th, i, k) + '"' +
                     (on ? "" : ' title="cut by truncation"') + '><span class="k">k = ' + k + '</span><span class="v">' +
                     N("dE_" + i + "/d" + th + idx(sh, e) + "|k=" + k, p[e]) + "</span></button>");
        }
        out.push('<div class="term"><span class="lhs">dE<sub>' + i + "</sub>/d" + esc(th + idx(sh, e)) + " =</span> " + chips.join('<span class="plus"> + </span>') + "</div>");
      }
      out.push("</div>");
    });
    return out.join("");
  }
  function termsTable() {
    var S = state, R = result, T = S.x.length, sh = shapes(S), rows = [];
    for (var i = 1; i <= T; i++) {
      rows.push("<tr><td>" + i + "</td>" + THETAS.map(function (th) {
        var v = R.terms[th][i - 1];
        return "<td>" + v.map(function (x, e) { return N("dE_" + i + "/d" + th + idx(sh[th], e), x); }).join("<br>") + "</td>";
      }).join("") + "</tr>");
    }
    return "<p class=\"cap\">Each error term dE_i/d&theta;, summed over its paths" + (result.K ? " (those truncation keeps)" : "") +
      "; dLoss/d&theta; = " + (S.reduction === "mean" ? "1/" + T + " &times; " : "") + "the column's sum</p><table><thead><tr><th>i</th>" +
      THETAS.map(function (th) { return "<th>dE_i/d" + th + "</th>"; }).join("") + "</tr></thead><tbody>" + rows.join("") + "</tbody></table>";
  }

  // ---------------------------------------------------------------- formulas with the numbers in (one unit)
  function renderFormulas() {
    var S = state, R = result, T = S.x.length, el = $("live-formulas");
    var th = focus.theta;
    if (T > FORMULAS_T || S.H !== 1 || S.D !== 1 || S.O !== 1) formulaSig = null;
    if (T > FORMULAS_T) {
      el.innerHTML = "<p>With T = " + T + " &gt; " + FORMULAS_T + " the formulas are not typeset on every change (each would hold up to " + T +
        " paths); the chips and tables below give every factor and path.</p>";
      return;
    }
    if (S.H !== 1 || S.D !== 1 || S.O !== 1) {
      el.innerHTML = "<p>With more than one unit the chain-rule factors are vectors and matrices (dh_i/dh_k is a product of " +
        "diag(f'(z_j)) w_h): the tables give every entry, and the chips above every path of the chosen entry.</p>";
      return;
    }
    var g = S.output_activation, lines = [], i, k;
    var w = S.w[0][0], wh = S.w_h[0][0];
    var expand = T <= EXPAND;
    for (i = 1; i <= T; i++) {
      var yp = R.yp[i - 1][0], y = S.y[i - 1][0], err;
      var pre = [];
      if (S.loss === "squared_error") { err = "(" + TQ("y'_" + i, yp) + " - " + TQ("y_" + i, y, true) + ")"; pre.push(err); }
      else err = null;
      var lhs = "\\frac{dE_{" + i + "}}{d" + TEX[th] + "}";
      if (S.loss === "bce") pre.push("\\frac{" + TQ("y'_" + i, yp) + " - " + TQ("y_" + i, y, true) + "}{" + TQ("y'_" + i + "(1 - y'_" + i + ")", yp * (1 - yp)) + "}");
      if (ACT[g].d !== "1") pre.push(TQ("g'(u_" + i + ")", ACT[g].deriv(yp), true));
      if (RECURRENT[th]) pre.push(TQ("w", w, true));
      var preTex = "\\htmlData{prefix=" + "E" + i + "-" + tagTheta(th) + "}{" + pre.join(" \\cdot ") + "}";
      var paths = [];
      var ks = RECURRENT[th] ? [] : [i];
      if (RECURRENT[th]) for (k = 1; k <= i; k++) ks.push(k);
      ks.forEach(function (k) {
        var body, tag = pathTag(th, i, k), on = R.kept(i - 1, k - 1);
        if (!expand) {  // the path's factors after the prefix, multiplied out: (dh_i/dh_k)(dh_k/dtheta)
          var prod = 1;
          if (RECURRENT[th]) {
            for (var jj = i; jj > k; jj--) prod = prod * (R.fp[jj - 1][0] * wh);
            prod = prod * (R.fp[k - 1][0] * (th === "w_x" ? S.x[k - 1][0] : th === "w_h" ? R.h[k - 1][0] : 1));
          } else prod = th === "w" ? R.h[i][0] : 1;
          body = TQ("(dh_" + i + "/dh_" + k + ")(dh_" + k + "/d" + th + ")", prod, true);
        }
        else {
          var fs = [];
          if (RECURRENT[th]) {
            for (var j = i; j > k; j--) fs.push(TQ("f'(z_" + j + ")", R.fp[j - 1][0], true), TQ("w_h", wh, true));
            fs.push(TQ("f'(z_" + k + ")", R.fp[k - 1][0], true));
            fs.push(th === "w_x" ? TQ("x_" + k, S.x[k - 1][0], true) : th === "w_h" ? TQ("h_" + (k - 1), R.h[k - 1][0], true) : "1");
          } else fs.push(th === "w" ? TQ("h_" + i, R.h[i][0], true) : "1");
          body = fs.join(" \\cdot ");
        }
        body = "\\htmlData{path=" + tag + "}{" + body + "}";
        paths.push(on ? body : "\\cancel{" + body + "}");
      });
      var sum = paths.length > 1 ? "\\Big[\\, " + paths.join(" + ") + " \\,\\Big]" : paths[0];
      lines.push(lhs + " &= " + preTex + " \\cdot " + sum + " = " + TQ("dE_" + i + "/d" + th, R.terms[th][i - 1][0]));
    }
    var total = R.grads[th];
    var tv = Array.isArray(total[0]) ? total[0][0] : total[0];
    var termsSum = R.terms[th].map(function (v, i) { return TQ("dE_" + (i + 1) + "/d" + th, v[0], true); }).join(" + ");
    lines.push("\\frac{d\\mathrm{Loss}}{d" + TEX[th] + "} &= " + (S.reduction === "mean" ? "\\frac{1}{" + T + "}\\left(" + termsSum + "\\right)" : termsSum) +
               " = " + TQ("dLoss/d" + th, tv));
    var tex = "\\begin{aligned}" + lines.join(" \\\\ ") + "\\end{aligned}";
    var intro = expand ? "Every factor of the chain rule with its number (the prefix (dE_i/dy'_i)(dy'_i/dh_i) lights blue when you point at a path)" :
      "T = " + T + " > " + EXPAND + ": each path's product after the prefix (the factors are in the table above)";
    intro = "<p>" + intro + (result.K ? "; paths cut by truncation are struck out" : "") + ":</p>";
    // the same formula with other numbers of the same form: new digits in the typeset boxes, no new typesetting
    var sig = intro + tex.replace(SCI_Q, "#e$1").replace(PLAIN_Q, "#");
    var inPlace = sig === formulaSig && el.querySelector(".tex-live");
    if (!inPlace) {
      el.innerHTML = intro + "<div class=\"tex-live\"></div>";
      katex.render(tex, el.querySelector(".tex-live"), {displayMode: true, throwOnError: false, strict: "ignore", output: "html", maxExpand: 1000000,
        trust: function (c) { return c.command === "\\htmlData"; }});
      formulaSig = sig;
      typesets += 1;
    }
    el.querySelectorAll("[data-q]").forEach(function (n) {
      var q = QREG[+n.getAttribute("data-q")];
      n.setAttribute("data-quantity", q[0]);
      n.setAttribute("data-value", full(q[1]));
      if (inPlace) {
        var t = g6(Math.abs(q[1])), e = t.indexOf("e");
        if (e < 0) n.querySelector(".mord").firstChild.nodeValue = t;
        else {
          n.querySelector("[data-m] .mord").firstChild.nodeValue = t.slice(0, e);
          n.querySelector("[data-x] .mord").firstChild.nodeValue = String(Math.abs(+t.slice(e + 1)));
        }
      }
    });
  }

  // ---------------------------------------------------------------- gradient flow
  function flowTable() {
    var R = result, T = state.x.length, max = 0, i, k;
    for (i = 0; i < T; i++) for (k = 0; k <= i; k++) max = Math.max(max, R.gf[i][k]);
    var head = "<tr><th></th>";
    for (k = 1; k <= T; k++) head += '<th scope="col">h<sub>' + k + "</sub></th>";
    var rows = [];
    for (i = 1; i <= T; i++) {
      var r = '<tr><th scope="row">E<sub>' + i + "</sub></th>";
      for (k = 1; k <= T; k++) {
        if (k > i) { r += "<td></td>"; continue; }
        var v = R.gf[i - 1][k - 1];
        var lv = max > 0 && v > 0 ? Math.max(0, 1 + Math.log10(v / max) / 8) : 0;  // 8 decades from white to dark
        var bg = "hsl(20, 85%, " + (97 - 55 * lv).toFixed(1) + "%)";
        r += "<td" + S_("background:" + bg + (lv > 0.7 ? ";color:#fff" : "")) + ' title="||dE_' + i + "/dh_" + k + "||\">" + N("||dE_" + i + "/dh_" + k + "||", v, 3) + "</td>";
      }
      rows.push(r + "</tr>");
    }
    return "<p class=\"cap\">||&part;E<sub>i</sub>/&part;h<sub>k</sub>||: how much of error E<sub>i</sub>'s signal reaches h<sub>k</sub> " +
      "(darker is larger, 8 decades of colour); a column fading to the left is a vanishing gradient</p><table class=\"flow\"><thead>" + head + "</tr></thead><tbody>" + rows.join("") + "</tbody></table>";
  }

  // ---------------------------------------------------------------- hovering a path
  function edgesOf(tag) {  // from the tag alone, by the chain rule: what path k of dE_i/dtheta runs along
    var m = /^E(\d+)-(w|wx|wh|b1|b2)-k(\d+)$/.exec(tag);
    if (!m) return [];
    var i = +m[1], th = m[2], k = +m[3];
    if (th === "w") return ["h" + i + "-y" + i];
    if (th === "b2") return ["b2-y" + i];
    var out = [{wx: "x" + k + "-h" + k, wh: "h" + (k - 1) + "-h" + k, b1: "b1-h" + k}[th], "h" + i + "-y" + i];
    for (var j = k + 1; j <= i; j++) out.push("h" + (j - 1) + "-h" + j);
    return out;
  }
  function clearLit() {
    each(".lit", function (e) { e.classList.remove("lit"); });
    each(".hl", function (e) { e.classList.remove("hl"); });
    each(".hl-prefix", function (e) { e.classList.remove("hl-prefix"); });
    each(".node.on", function (e) { e.classList.remove("on"); });
    $("readout").textContent = "";
    var c = $("contrib"); if (c) c.textContent = "";
  }
  function lightEdges(edges) {
    edges.forEach(function (id) {
      each('#live-net [data-edge="' + id + '"]', function (e) { e.classList.add("lit"); });
      id.split("-").forEach(function (n) { each('#live-net [data-node="' + n + '"]', function (e) { e.classList.add("on"); }); });
    });
  }
  var SUBS = {"0": "\u2080", "1": "\u2081", "2": "\u2082", "3": "\u2083", "4": "\u2084", "5": "\u2085", "6": "\u2086", "7": "\u2087", "8": "\u2088", "9": "\u2089"};
  function subs(n) { return String(n).replace(/[0-9]/g, function (d) { return SUBS[d]; }); }
  function show(tag) {
    clearLit();
    var m = tag && /^E(\d+)-(w|wx|wh|b1|b2)-k(\d+)$/.exec(tag);
    if (!m) return;
    var i = +m[1], k = +m[3], th = {w: "w", wx: "w_x", wh: "w_h", b1: "b1", b2: "b2"}[m[2]];
    lightEdges(edgesOf(tag));
    each('[data-path="' + tag + '"]', function (e) { e.classList.add("hl"); });
    each('[data-prefix="' + tag.replace(/-k\d+$/, "") + '"]', function (e) { e.classList.add("hl-prefix"); });
    var R = result, T = state.x.length, value = "";
    if (i <= T && R.paths[th][i - 1] && R.paths[th][i - 1][k - 1]) {
      var e = entries[th];
      value = g6(R.paths[th][i - 1][k - 1][e]) + (R.kept(i - 1, k - 1) ? "" : " (cut by truncation)");
    }
    var route = ["E" + subs(i)];
    edgesOf(tag).forEach(function (id) {
      id.split("-").reverse().forEach(function (n) {
        var lab = n === "b1" || n === "b2" ? "b" + subs(n[1]) : {x: "x", h: "h", y: "y'"}[n[0]] + subs(n.slice(1));
        if (route.indexOf(lab) < 0) route.push(lab);
      });
    });
    var thp = th.replace("_x", "\u2093").replace("_h", "\u2095").replace("b1", "b\u2081").replace("b2", "b\u2082");
    $("readout").textContent = "dE" + subs(i) + "/d" + thp + ", path k = " + k + " (" + route.join(" \u2190 ") + "): " + value;
    var end = document.querySelector('#live-net [data-node="y' + i + '"] circle'), c = $("contrib");
    if (c && end && value) {
      c.setAttribute("x", +end.getAttribute("cx") + 25);
      c.setAttribute("y", +end.getAttribute("cy") - 8);
      c.textContent = value;
    }
  }
  function tagOf(ev) { var t = ev.target.closest && ev.target.closest("[data-path]"); return t ? t.getAttribute("data-path") : null; }
  document.addEventListener("mouseover", function (ev) { var t = tagOf(ev); if (t) show(t); });
  document.addEventListener("mouseout", function (ev) { if (tagOf(ev)) show(pinned); });
  document.addEventListener("focusin", function (ev) { var t = tagOf(ev); if (t) show(t); });
  document.addEventListener("click", function (ev) {
    var t = tagOf(ev);
    if (!t) return;
    pinned = pinned === t ? null : t;
    show(pinned || t);
  });

  // ---------------------------------------------------------------- the step-through
  function stages() {
    var S = state, R = result, T = S.x.length, out = [], i, k;
    for (var t = 1; t <= T; t++) out.push({kind: "fwd", t: t});
    for (i = T; i >= 1; i--) for (k = i; k >= 1; k--) if (R.kept(i - 1, k - 1)) out.push({kind: "bwd", i: i, k: k});
    return out;
  }
  function stepAction(a) {
    if (!step) step = {list: stages(), at: -1};
    var n = step.list.length;
    if (a === "start") step.at = -1;
    else if (a === "next") step.at = Math.min(n - 1, step.at + 1);
    else if (a === "prev") step.at = Math.max(-1, step.at - 1);
    else if (a === "end") step.at = n - 1;
    else if (a === "backward") step.at = Math.min(n - 1, state.x.length);
    else if (a === "exit") step = null;
    else if (a === "play") { play(); return; }
    renderStep();
  }
  var playing = null;
  function play() {
    if (playing) { clearInterval(playing); playing = null; return; }
    if (!step) step = {list: stages(), at: -1};
    playing = setInterval(function () {
      if (!step || step.at >= step.list.length - 1) { clearInterval(playing); playing = null; return; }
      step.at += 1;
      renderStep();
    }, 700);
  }
  function renderStep() {
    var box = $("step-status"), run = $("step-running");
    if (step) { clearLit(); pinned = null; }
    each("#live-net .node", function (e) { e.classList.remove("pending", "current"); });
    each("#live-net .edge.step", function (e) { e.classList.remove("step"); });
    each("#live-net text.delta", function (e) { e.textContent = ""; e.removeAttribute("data-quantity"); e.removeAttribute("data-value"); });
    if (!step) { box.textContent = "Not stepping: the picture shows every value. Start the step-through to compute them one at a time."; run.innerHTML = ""; return; }
    var S = state, R = result, T = S.x.length, cur = step.list[step.at], sh = shapes(S);
    var fwdDone = cur ? (cur.kind === "fwd" ? cur.t : T) : 0;
    for (var t = fwdDone + 1; t <= T; t++) ["h", "y"].forEach(function (p) { each('#live-net [data-node="' + p + t + '"]', function (e) { e.classList.add("pending"); }); });
    var running = {};
    THETAS.forEach(function (th) { running[th] = zeros(flat(S[th]).length); });
    for (var a = 0; a <= step.at; a++) {
      var s = step.list[a];
      if (s.kind !== "bwd") continue;
      THETAS.forEach(function (th) {
        var p = R.paths[th][s.i - 1][s.k - 1];
        if (p) running[th] = running[th].map(function (v, e) { return v + R.c * p[e]; });
      });
    }
    if (!cur) box.textContent = "Step 0 of " + step.list.length + ": nothing computed yet; next computes h_1 and y'_1.";
    else if (cur.kind === "fwd") {
      each('#live-net [data-node="h' + cur.t + '"], #live-net [data-node="y' + cur.t + '"]', function (e) { e.classList.add("current"); });
      ["x" + cur.t + "-h" + cur.t, "h" + (cur.t - 1) + "-h" + cur.t, "b1-h" + cur.t, "h" + cur.t + "-y" + cur.t, "b2-y" + cur.t].forEach(function (id) {
        each('#live-net [data-edge="' + id + '"]', function (e) { e.classList.add("step"); });
      });
      box.textContent = "Forward, step " + cur.t + " of " + T + ": z_" + cur.t + " = w_x x_" + cur.t + " + w_h h_" + (cur.t - 1) + " + b_1, h_" + cur.t +
        " = f(z_" + cur.t + ") = " + R.h[cur.t].map(function (v) { return g6(v); }).join(", ") + "; y'_" + cur.t + " = g(w h_" + cur.t + " + b_2) = " +
        R.yp[cur.t - 1].map(function (v) { return g6(v); }).join(", ") + "; E_" + cur.t + " = " + g6(R.E[cur.t - 1]) + ".";
    } else {
      var d = R.dEdh[cur.i - 1][cur.k - 1];
      var el = document.querySelector('#live-net [data-node="h' + cur.k + '"] text.delta');
      if (el) {
        // short, to fit between the nodes: 3 figures, or the norm of a vector
        el.textContent = d.length === 1 ? "\u03b4=" + g6(d[0], 3) : "\u2016\u03b4\u2016=" + g6(norm(d), 3);
        el.setAttribute("data-quantity", "dE_" + cur.i + "/dh_" + cur.k);
        el.setAttribute("data-value", d.map(full).join(","));
      }
      lightEdges(["h" + cur.i + "-y" + cur.i, "x" + cur.k + "-h" + cur.k, "h" + (cur.k - 1) + "-h" + cur.k, "b1-h" + cur.k].concat(
        (function () { var o = []; for (var j = cur.k + 1; j <= cur.i; j++) o.push("h" + (j - 1) + "-h" + j); return o; })()));
      box.textContent = "Backward, error E_" + cur.i + ", path k = " + cur.k + ": \u03b4 = dE_" + cur.i + "/dh_" + cur.k + " = " + d.map(function (v) { return g6(v); }).join(", ") +
        (cur.k === cur.i ? " (= dE_" + cur.i + "/du_" + cur.i + " w); w and b_2 get their term here" : " (= dE_" + cur.i + "/dh_" + (cur.k + 1) + " f'(z_" + (cur.k + 1) + ") w_h)") +
        "; every recurrent gradient adds this path's contribution, c times \u03b4 f'(z_" + cur.k + ") \u2202z_" + cur.k + "/\u2202\u03b8.";
    }
    var done = step.at === step.list.length - 1;
    run.innerHTML = "<p class=\"cap\">Gradients accumulated so far, path by path (step " + (step.at + 1) + " of " + step.list.length + (done ? ": done, the totals above" : "") +
      ")</p><table><tbody>" + THETAS.map(function (th) {
        return "<tr><th scope=\"row\">dLoss/d" + th + "</th><td>" + running[th].map(function (v, e) { return N("running dLoss/d" + th + idx(sh[th], e), v, 10); }).join("<br>") + "</td></tr>";
      }).join("") + "</tbody></table>";
    $("live-steps-done").setAttribute("data-value", String(step.at + 1));
  }

  // ---------------------------------------------------------------- gradient descent
  var gdBefore = null;
  var gdFrame = null;
  function descend(S, G, lr) {  // S - lr dLoss/dS, every parameter
    var out = clone(S);
    THETAS.forEach(function (th) {
      if (Array.isArray(S[th][0])) out[th] = S[th].map(function (row, a) { return row.map(function (v, b) { return v - lr * G[th][a][b]; }); });
      else out[th] = S[th].map(function (v, a) { return v - lr * G[th][a]; });
    });
    return out;
  }
  // n steps of plain gradient descent on this sequence, drawn as they go (about 60 frames): the network, the
  // tables and the loss curve follow the weights; the address is written at the end
  function runDescent() {
    var lr, n;
    try { lr = parseNum("learning rate", $("gd-lr").value); n = intIn("steps", $("gd-steps").value, 1, 5000); } catch (e) { setError(e.message); return; }
    if (!(lr > 0)) { setError("learning rate: must be positive, got " + lr); return; }
    if (gdFrame !== null) cancelAnimationFrame(gdFrame);
    var S = clone(state), prevS = null, losses = [], per = Math.max(1, Math.ceil(n / 60)), diverged = false;
    gdBefore = clone(state);
    document.documentElement.removeAttribute("data-gd");
    $("gd-run").disabled = true;
    function frame() {
      for (var j = 0; j < per && losses.length <= n && !diverged; j++) {
        var R = compute(S, true);
        if (!isFinite(R.loss) || THETAS.some(function (th) { return flat(R.grads[th]).some(function (v) { return !isFinite(v); }); })) {
          diverged = true;
          S = prevS;  // the last weights whose loss and gradients were finite
          break;
        }
        losses.push(R.loss);
        if (losses.length <= n) { prevS = S; S = descend(S, R.grads, lr); }
      }
      var done = diverged || losses.length > n;
      apply(clone(S), {keepUrl: !done});
      drawCurve(losses, lr, n);
      if (diverged) setError("gradient descent diverged after " + (losses.length - 1) + " steps (the loss or a gradient is not finite); the weights of the last finite step are kept; take a smaller learning rate");
      if (!done) { gdFrame = requestAnimationFrame(frame); return; }
      gdFrame = null;
      $("gd-run").disabled = false;
      $("gd-undo").disabled = false;
      document.documentElement.setAttribute("data-gd", "done");
    }
    frame();
  }
  function stopDescent() {  // the learner took the controls: the weights reached so far stay
    if (gdFrame === null) return;
    cancelAnimationFrame(gdFrame);
    gdFrame = null;
    $("gd-run").disabled = false;
    $("gd-undo").disabled = false;
    document.documentElement.setAttribute("data-gd", "stopped");
  }
  function drawCurve(L, lr, n) {
    var W = 520, Hh = 180, pad = 40, max = Math.max.apply(null, L), min = Math.min.apply(null, L);
    if (max === min) max = min + 1;
    var pts = L.map(function (v, s) {
      return (pad + (W - pad - 10) * s / Math.max(1, n)).toFixed(1) + "," + (10 + (Hh - 40) * (1 - (v - min) / (max - min))).toFixed(1);
    }).join(" ");
    $("gd-curve").innerHTML = '<svg class="curve" width="' + W + '" height="' + Hh + '" viewBox="0 0 ' + W + " " + Hh + '" role="img" aria-label="loss curve">' +
      '<polyline fill="none" stroke="#c46a00" stroke-width="1.5" points="' + pts + '"/>' +
      '<text x="2" y="16">' + esc(g6(max, 4)) + '</text><text x="2" y="' + (Hh - 28) + '">' + esc(g6(min, 4)) + "</text>" +
      '<text x="' + pad + '" y="' + (Hh - 8) + '">step 0</text><text x="' + (W - 60) + '" y="' + (Hh - 8) + '">step ' + n + "</text></svg>" +
      "<p>Loss " + N("gd loss[0]", L[0]) + " &rarr; " + N("gd loss[" + (L.length - 1) + "]", L[L.length - 1]) + " after " + (L.length - 1) + " of " + n + " steps of " +
      "plain gradient descent (learning rate " + esc(g6(lr)) + ") on this one sequence; the controls hold the weights reached.</p>";
  }

  // ---------------------------------------------------------------- start
  live.addEventListener("input", onInput);
  live.addEventListener("keydown", onKey);
  live.addEventListener("change", onChange);
  live.addEventListener("click", onClick);
  document.addEventListener("click", function (ev) {
    var b = ev.target.closest && ev.target.closest("#stale-restore");
    if (b) { setNote(""); apply(clone(INIT.state)); }
  });
  $("live-focus-select").addEventListener("change", function (ev) {
    var p = ev.target.value.split(":");
    focus = {theta: p[0], entry: +p[1]};
    entries[p[0]] = +p[1];
    render();
  });
  function load(frag) {
    if (!frag) return apply(clone(INIT.state), {keepUrl: true}) && writeFragment();
    try {
      var S = fromFragment(frag, INIT.state);
      var ok = apply(S, {keepUrl: true});
      if (ok) writeFragment();
      else { var err = $("live-error").textContent; apply(clone(INIT.state), {keepUrl: true}); setError("URL fragment: " + err + " (showing the page's own configuration)"); }
    } catch (e) {
      if (!(e instanceof Bad)) throw e;
      apply(clone(INIT.state), {keepUrl: true});
      setError("URL fragment: " + e.message + " (showing the page's own configuration)");
    }
  }
  window.addEventListener("hashchange", function () {
    var frag = decodeURIComponent(location.hash.slice(1));
    if (frag !== toFragment(state)) load(location.hash.slice(1));
  });
  written = toFragment(INIT.state);
  load(location.hash.slice(1));
  window.bpttLive = {
    recomputes: function () { return recomputes; },
    lastMs: function () { return lastMs; },
    fragment: function () { return toFragment(state); },
    state: function () { return clone(state); },
    compute: function (S) { return compute(S); },
    timings: function () { return timings; },
    typesets: function () { return typesets; },
    draws: function () { return draws; }
  };
  document.documentElement.setAttribute("data-ready", "1");
})();

/* The plot of a verified board (SVG, no library): one row per entry, a dot at its value, a line from ci_low to
 * ci_high, the leader's interval as a shaded band across every row, the rank (with its range when ties make it
 * uncertain) and the user on the left, a tie marker on the right. People would rather look than read. */
(function () {
  "use strict";
  const LB = (window.LB = window.LB || {});
  LB.loaded = LB.loaded || {};

  const NS = "http://www.w3.org/2000/svg";
  const ROW_PX = 24;
  const RANK_PX = 64;
  const LABEL_PX = 220;
  const NAME_CHARS = 20;
  const PLOT_PX = 440;
  const MARKER_PX = 130;
  const TOP_PX = 6;
  const AXIS_PX = 30;

  /* svg("line", {x1: 0, ...}, child): an SVG element; text children are never parsed. */
  function svg(tag, attrs, ...children) {
    const el = document.createElementNS(NS, tag);
    for (const [name, value] of Object.entries(attrs || {})) if (value !== null && value !== undefined) el.setAttribute(name, String(value));
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  /* "2 (1–3)" when the rank range differs from the rank, else "2". */
  LB.rankText = (entry) => {
    const [best, worst] = entry.rank_range || [entry.rank, entry.rank];
    return best === worst ? String(entry.rank) : entry.rank + " (" + best + "–" + worst + ")";
  };

  /* The shown span of values: every interval and value, padded, within [0, 1] (every verified metric lies there). */
  function domain(entries) {
    let lo = Math.min(...entries.map((e) => Math.min(e.ci_low, e.value)));
    let hi = Math.max(...entries.map((e) => Math.max(e.ci_high, e.value)));
    const pad = Math.max(0.01, (hi - lo) * 0.08);
    lo = Math.max(0, lo - pad);
    hi = Math.min(1, hi + pad);
    if (hi - lo < 0.02) [lo, hi] = [Math.max(0, hi - 0.02), Math.min(1, lo + 0.02)];
    return [lo, hi];
  }

  /* About five round ticks between lo and hi. */
  function ticks(lo, hi) {
    const raw = (hi - lo) / 4;
    const power = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw) || raw;
    const digits = Math.max(0, -Math.floor(Math.log10(step)));
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-12; v += step) out.push([v, v.toFixed(digits)]);
    return out;
  }

  /* The plot of `board` (the API's verified answer); `leader` is the board's first entry (page 1), else null. */
  LB.intervalPlot = (board) => {
    const entries = board.entries || [];
    const leader = board.offset === 0 && entries.length ? entries[0] : null;
    const [lo, hi] = domain(entries);
    const x = (v) => LABEL_PX + ((Math.min(hi, Math.max(lo, v)) - lo) / (hi - lo)) * PLOT_PX;
    const width = LABEL_PX + PLOT_PX + MARKER_PX;
    const bottom = TOP_PX + entries.length * ROW_PX;
    const height = bottom + AXIS_PX;
    const parts = [];
    if (leader) {
      parts.push(svg("rect", { class: "lb-plot-band", x: x(leader.ci_low), y: TOP_PX, width: Math.max(1, x(leader.ci_high) - x(leader.ci_low)), height: bottom - TOP_PX },
        svg("title", null, LB.t("plot_band", { low: LB.fmtMetric(leader.ci_low), high: LB.fmtMetric(leader.ci_high) }))));
      parts.push(svg("line", { class: "lb-plot-leader", x1: x(leader.value), x2: x(leader.value), y1: TOP_PX, y2: bottom }));
    }
    entries.forEach((e, i) => {
      const y = TOP_PX + i * ROW_PX + ROW_PX / 2;
      const tied = e.tied_with_leader === true;
      const name = e.user + (e.method ? " · " + e.method : "");
      const summary = "#" + LB.rankText(e) + " " + name + ": " + LB.fmtMetric(e.value) + " [" + LB.fmtMetric(e.ci_low) + ", " + LB.fmtMetric(e.ci_high) + "]" + (tied ? " " + LB.t("tie_marker") : "");
      parts.push(svg("g", { class: "lb-plot-row" + (tied ? " lb-plot-tied" : ""), "data-id": e.submission_id, "data-rank": e.rank },
        svg("title", null, summary),
        svg("text", { class: "lb-plot-rank", x: 2, y, "dominant-baseline": "middle" }, "#" + LB.rankText(e)),
        svg("text", { class: "lb-plot-label", x: RANK_PX, y, "dominant-baseline": "middle" }, name.length > NAME_CHARS ? name.slice(0, NAME_CHARS - 1) + "…" : name),
        svg("line", { class: "lb-plot-ci", x1: x(e.ci_low), x2: x(e.ci_high), y1: y, y2: y }),
        svg("line", { class: "lb-plot-cap", x1: x(e.ci_low), x2: x(e.ci_low), y1: y - 5, y2: y + 5 }),
        svg("line", { class: "lb-plot-cap", x1: x(e.ci_high), x2: x(e.ci_high), y1: y - 5, y2: y + 5 }),
        svg("circle", { class: "lb-plot-dot", cx: x(e.value), cy: y, r: 4.5 }),
        tied ? svg("text", { class: "lb-plot-tie", x: LABEL_PX + PLOT_PX + 10, y, "dominant-baseline": "middle" }, LB.t("tie_marker")) : null));
    });
    parts.push(svg("line", { class: "lb-plot-axis", x1: LABEL_PX, x2: LABEL_PX + PLOT_PX, y1: bottom + 2, y2: bottom + 2 }));
    for (const [v, text] of ticks(lo, hi)) {
      parts.push(svg("line", { class: "lb-plot-axis", x1: x(v), x2: x(v), y1: bottom + 2, y2: bottom + 7 }));
      parts.push(svg("text", { class: "lb-plot-tick", x: x(v), y: bottom + 19, "text-anchor": "middle" }, text));
    }
    parts.push(svg("text", { class: "lb-plot-tick", x: LABEL_PX + PLOT_PX + 26, y: bottom + 19 }, board.metric + " →"));
    const label = LB.t("plot_label", { metric: board.metric });
    return svg("svg", { class: "lb-plot", viewBox: "0 0 " + width + " " + height, width: "100%", role: "img", "aria-label": label, preserveAspectRatio: "xMinYMin meet", style: "max-width: " + width * 1.15 + "px" },
      svg("title", null, label), parts);
  };

  LB.loaded.plot = true;
})();

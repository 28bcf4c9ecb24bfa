// Charts on the vendored uPlot (web/vendor/, MIT). A chart lives in a container of fixed size (app.css):
// a refresh replaces its data in place (setData), so the page never reflows; the chart is rebuilt only
// when its series change (a queue appears or goes). uPlot draws on a canvas and sets element.style
// through the CSSOM, which the page's CSP (style-src 'self') allows; it writes no HTML strings.

import uPlot from "./vendor/uPlot.esm.js";
import { h } from "./dom.js";

const WIDTH = 560;
const HEIGHT = 200;

/** A distinct, stable colour for the i-th series. */
export function colour(i) {
  return `hsl(${(i * 137.5) % 360}, 62%, 42%)`;
}

const pad = (n) => String(n).padStart(2, "0");

/** Epoch seconds as HH:MM in the browser's time zone (24-hour, as operators read times here). */
function hourMinute(seconds) {
  const date = new Date(seconds * 1000);
  return `${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

/** Ticks closer than a few minutes apart (a backlog sampled for seconds) need the seconds too. */
function timeLabel(splits) {
  const span = splits.length > 1 ? splits[splits.length - 1] - splits[0] : 0;
  if (span >= 600) return hourMinute;
  return (seconds) => `${hourMinute(seconds)}:${pad(new Date(seconds * 1000).getSeconds())}`;
}

let firstChartMarked = false;

function markFirstChart() {
  if (firstChartMarked) return;
  firstChartMarked = true;
  performance.mark("console.first-chart");
}

function countPoints(data) {
  let n = 0;
  for (const series of data.slice(1)) for (const v of series) if (v !== null && v !== undefined) n += 1;
  return n;
}

/**
 * A time-series chart: xs in epoch seconds, series [{label, values}]. Returns {element, update(xs, series)}.
 * `element` has data-chart (its name) and data-points (non-empty values drawn) for tests and monitoring.
 */
export function timeChart(name, title, { kind = "line" } = {}) {
  const holder = h("div.chart-canvas");
  const element = h("figure.chart", { dataset: { chart: name, points: "0" } }, h("figcaption", title), holder);
  let plot = null;
  let labels = "";

  function options(series) {
    const barPaths = kind === "bars" ? uPlot.paths.bars({ size: [0.7, 40] }) : undefined;
    return {
      width: WIDTH,
      height: HEIGHT,
      scales: { x: { time: true } },
      legend: { live: false },
      cursor: { drag: { x: false, y: false } },
      axes: [{ values: (u, splits) => splits.map(timeLabel(splits)) }, { size: 50 }],
      series: [
        {},
        ...series.map((s, i) => ({
          label: s.label,
          stroke: colour(i),
          fill: kind === "bars" ? colour(i) : undefined,
          width: 1.5,
          paths: barPaths,
          spanGaps: false,
          points: { show: false },
        })),
      ],
    };
  }

  function update(xs, series) {
    const data = [xs, ...series.map((s) => s.values)];
    const key = series.map((s) => s.label).join("\u0000");
    if (!plot || key !== labels) {
      if (plot) plot.destroy();
      labels = key;
      plot = new uPlot(options(series), data, holder);
      markFirstChart();
    } else {
      plot.setData(data);
    }
    element.dataset.points = String(countPoints(data));
  }

  return {
    element,
    update,
    destroy() {
      if (plot) plot.destroy();
      plot = null;
    },
  };
}

/**
 * Horizontal bars drawn as elements (labels stay text): rows [{label, value, title?}], each bar's width
 * set through the CSSOM. Rows are reused between refreshes, so the page does not reflow while counts change.
 */
export function barList(name, { empty = "无数据" } = {}) {
  const list = h("ol.bars", { dataset: { bars: name } });
  const none = h("p.empty", empty);
  const element = h("div.bar-list", list, none);
  const rows = new Map();

  function update(items) {
    const max = Math.max(1, ...items.map((item) => item.value));
    const keep = new Set();
    items.forEach((item, i) => {
      keep.add(item.key);
      let row = rows.get(item.key);
      if (!row) {
        const label = h("span.bar-label");
        const bar = h("span.bar");
        const value = h("span.bar-value");
        row = { li: h("li", { dataset: { key: item.key } }, label, h("span.bar-track", bar), value), label, bar, value };
        rows.set(item.key, row);
      }
      row.label.textContent = item.label;
      row.value.textContent = String(item.value);
      row.bar.style.width = `${(100 * item.value) / max}%`;
      row.bar.style.backgroundColor = item.colour || colour(i);
      if (item.data) Object.assign(row.value.dataset, item.data);
      if (list.children[i] !== row.li) list.insertBefore(row.li, list.children[i] || null);
    });
    for (const [key, row] of rows) {
      if (!keep.has(key)) {
        row.li.remove();
        rows.delete(key);
      }
    }
    none.hidden = items.length > 0;
  }

  return { element, update };
}

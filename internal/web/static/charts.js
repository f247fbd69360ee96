// Charts over uPlot (vendored in vendor/uplot): one per panel, created once and then fed new
// data, so that a page updated for hours keeps a steady number of canvases.
import uPlot from './vendor/uplot/uPlot.esm.js';

function css(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || '#888';
}

// marks draws a vertical line at each verdict (time in seconds, color by verdict).
function marksPlugin(getMarks) {
  return {
    hooks: {
      draw: [(u) => {
        const { ctx } = u;
        const { top, height } = u.bbox;
        for (const m of getMarks()) {
          const x = Math.round(u.valToPos(m.t, 'x', true));
          if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue;
          ctx.save();
          ctx.strokeStyle = m.fail ? css('--bad') : css('--good');
          ctx.lineWidth = 2 * devicePixelRatio;
          ctx.setLineDash([4 * devicePixelRatio, 3 * devicePixelRatio]);
          ctx.beginPath();
          ctx.moveTo(x, top);
          ctx.lineTo(x, top + height);
          ctx.stroke();
          ctx.restore();
        }
      }],
    },
  };
}

// Chart is one panel: series is [{label, color, dash}], data is [xs, ...ys] as uPlot takes it.
export class Chart {
  constructor(el, { title, unit, series, yRange }) {
    this.el = el;
    this.marks = [];
    const axis = { stroke: css('--fg-muted'), grid: { stroke: css('--grid') }, ticks: { stroke: css('--grid') } };
    this.opts = {
      title,
      width: this.width(),
      height: this.height(),
      legend: { live: false },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true }, y: yRange ? { range: yRange } : {} },
      axes: [axis, { ...axis, values: (u, vals) => vals.map((v) => fmt(v, unit)), size: 60 }],
      series: [{}, ...series.map((s) => ({ label: s.label, stroke: css(s.color), width: 2, dash: s.dash, spanGaps: false,
        value: (u, v) => (v == null ? '—' : fmt(v, unit)), points: { show: false } }))],
      plugins: [marksPlugin(() => this.marks)],
    };
    this.plot = null;
  }

  width() { return Math.max(260, (this.el.clientWidth || 600) - 16); }

  // height grows with the width, so that a wall display's charts are not thin strips.
  height() { return Math.round(Math.min(480, Math.max(200, this.width() * 0.4))); }

  set(data, marks) {
    this.marks = marks || [];
    if (!this.plot) this.plot = new uPlot(this.opts, data, this.el);
    else this.plot.setData(data);
  }

  resize() { if (this.plot) this.plot.setSize({ width: this.width(), height: this.height() }); }

  destroy() { if (this.plot) this.plot.destroy(); this.plot = null; }
}

export function fmt(v, unit) {
  if (v == null || Number.isNaN(v)) return '—';
  switch (unit) {
    case '%': return (Math.round(v * 100) / 100) + '%';
    case 'ratio': return v.toFixed(2) + '×';
    case 'ms': return v >= 1000 ? (v / 1000).toFixed(2) + ' s' : (Math.round(v * 10) / 10) + ' ms';
    default: return String(Math.round(v * 1000) / 1000);
  }
}

// durationMs reads a Go duration string ("1.5ms", "250µs", "2s", "1m30s") as milliseconds.
export function durationMs(s) {
  if (!s) return null;
  const units = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, 'μs': 1e-3, ms: 1, s: 1000, m: 60000, h: 3600000 };
  let total = 0;
  let found = false;
  for (const m of String(s).matchAll(/([\d.]+)(ns|us|µs|μs|ms|s|m|h)/g)) {
    total += Number(m[1]) * units[m[2]];
    found = true;
  }
  return found ? total : null;
}

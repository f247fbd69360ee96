// Charts over uPlot (vendored in vendor/uplot): one per panel, created once and then fed new
// data, so that a page updated for hours keeps a steady number of canvases. The rollout page
// imports this module only when it has a chart to draw, so the page's reads go out before uPlot
// is evaluated.
import uPlot from './vendor/uplot/uPlot.esm.js';
import { fmt } from './dom.js';

// Colours come from the style sheet's variables, read once per colour scheme: reading a
// computed style after the page changed forces the browser to recompute styles.
let colours = null;
const scheme = matchMedia('(prefers-color-scheme: dark)');
scheme.addEventListener('change', () => { colours = null; });

function css(name) {
  if (!colours) colours = { style: getComputedStyle(document.documentElement) };
  if (!(name in colours)) colours[name] = colours.style.getPropertyValue(name).trim() || '#888';
  return colours[name];
}

// Marks: what each kind of mark looks like (a verdict, a step's start, an abort).
const markStyles = {
  pass: { colour: '--good', dash: [4, 3], width: 2, label: '✓' },
  fail: { colour: '--bad', dash: [], width: 2, label: '✗' },
  inconclusive: { colour: '--warn', dash: [4, 3], width: 2, label: '?' },
  abort: { colour: '--bad', dash: [8, 3], width: 2, label: '■' },
  step: { colour: '--fg-muted', dash: [2, 4], width: 1, label: '' },
};

// marksPlugin draws a vertical line at each mark (time in seconds), with a short label at its
// top.
function marksPlugin(getMarks) {
  return {
    hooks: {
      draw: [(u) => {
        const { ctx } = u;
        const { top, height, left, width } = u.bbox;
        const px = devicePixelRatio;
        const drawn = [];
        for (const m of getMarks()) {
          const st = markStyles[m.kind] || markStyles.step;
          const x = Math.round(u.valToPos(m.t, 'x', true));
          if (x < left || x > left + width) continue;
          drawn.push(m.kind);
          ctx.save();
          ctx.strokeStyle = ctx.fillStyle = css(st.colour);
          ctx.lineWidth = st.width * px;
          ctx.setLineDash(st.dash.map((d) => d * px));
          ctx.beginPath();
          ctx.moveTo(x, top);
          ctx.lineTo(x, top + height);
          ctx.stroke();
          if (st.label) {
            ctx.font = `${12 * px}px system-ui, sans-serif`;
            ctx.textAlign = 'center';
            ctx.fillText(st.label, x, top + 12 * px);
          }
          ctx.restore();
        }
        // What was drawn, for people's tools and the browser tests.
        u.root.parentElement?.setAttribute('data-drawn', drawn.join(' '));
      }],
    },
  };
}

// Chart is one panel: series is [{label, color, dash}], data is [xs, ...ys] as uPlot takes it;
// marks are [{t, kind, text}]. width is the panel's width, measured by the caller once for all
// panels (every panel of the grid is as wide).
export class Chart {
  constructor(el, { title, unit, series, yRange }, width) {
    this.el = el;
    this.marks = [];
    this.w = width;
    const axis = { stroke: css('--fg-muted'), grid: { stroke: css('--grid') }, ticks: { stroke: css('--grid') } };
    this.opts = {
      title,
      width: this.width(),
      height: this.height(),
      legend: { live: false },
      cursor: { drag: { x: false, y: false } },
      // The x axis reaches the last mark too: a verdict in the slot still filling is drawn now,
      // not when the slot closes.
      scales: { x: { time: true, range: (u, min, max) => this.xRange(min, max) }, y: yRange ? { range: yRange } : {} },
      axes: [axis, { ...axis, values: (u, vals) => vals.map((v) => fmt(v, unit)), size: 60 }],
      series: [{}, ...series.map((s) => ({ label: s.label, stroke: css(s.color), width: 2, dash: s.dash, spanGaps: false,
        value: (u, v) => (v == null ? '—' : fmt(v, unit)), points: { show: false } }))],
      plugins: [marksPlugin(() => this.marks)],
    };
    this.plot = null;
  }

  xRange(min, max) {
    for (const m of this.marks) if (m.t > max && m.t - max < 60) max = m.t + 2;
    return [min, max];
  }

  width() { return Math.max(260, (this.w || this.el.clientWidth || 600) - 16); }

  // height grows with the width, so that a wall display's charts are not thin strips.
  height() { return Math.round(Math.min(480, Math.max(200, this.width() * 0.4))); }

  set(data, marks) {
    this.marks = marks || [];
    if (!this.plot) this.plot = new uPlot(this.opts, data, this.el);
    else this.plot.setData(data);
  }

  resize(width) {
    this.w = width;
    if (this.plot) this.plot.setSize({ width: this.width(), height: this.height() });
  }

  destroy() { if (this.plot) this.plot.destroy(); this.plot = null; }
}

// What a rollout page charts, from the API's answers: the canary's share of traffic, canary
// against baseline per metric the judge watches, the effect against its margin; and the marks on
// them (each verdict and step from the events, the moment a metric failed from its
// measurements). Pure functions of their arguments: no DOM here.
import { durationMs, fmt } from './dom.js';

// markOf says which events are marked on the charts, and how.
export const markOf = {
  AnalysisPassed: 'pass', GatePassed: 'pass',
  AnalysisFailed: 'fail', GateFailed: 'fail',
  AnalysisInconclusive: 'inconclusive',
  Aborted: 'abort',
  StepStarted: 'step',
};

const secs = (t) => Date.parse(t) / 1000;

// eventMarks are the marks of events (newest first, as the page keeps them).
export function eventMarks(events) {
  const out = [];
  for (const e of events) {
    const kind = markOf[e.kind];
    if (kind) out.push({ t: secs(e.time), kind, text: e.kind + (e.reason ? ': ' + e.reason : ''), at: e.time });
  }
  return out.reverse(); // oldest first
}

// metricMarks adds, to the events' marks, the moments the metric's own measurements failed that
// no verdict event marks already (a failing measurement ends its check at once).
function metricMarks(marks, m) {
  const own = (m.measurements || []).filter((p) => p.phase === 'Failed').map((p) => ({ t: secs(p.at), kind: 'fail', text: `${m.metric} failed`, at: p.at }));
  const fresh = own.filter((o) => !marks.some((x) => x.kind === 'fail' && Math.abs(x.t - o.t) < 5));
  return fresh.length ? marks.concat(fresh) : marks;
}

// plannedWeight is the canary weight the events set, at each slot (events newest first).
function plannedWeight(xs, events) {
  const evs = events.slice().reverse(); // oldest first
  let i = 0;
  let w = null;
  return xs.map((t) => {
    while (i < evs.length && secs(evs[i].time) <= t + 10) { w = evs[i].canaryWeight; i++; }
    return w;
  });
}

function slug(s) { return String(s).toLowerCase().replace(/[^a-z0-9]+/g, '-'); }

// panels turns the series, the newest analysis run's metrics (failing first) and the events into
// chart panels: {key, metric, title, unit, series, data, marks, yRange}.
// The failing metric's panels come first.
export function panels(args) {
  const failed = new Set(args.metrics.filter((m) => m.phase === 'Failed').map((m) => m.metric));
  const out = draw(args);
  return out.filter((p) => failed.has(p.metric)).concat(out.filter((p) => !failed.has(p.metric)));
}

function draw({ series: sr, status: s = {}, run, metrics, events }) {
  const out = [];
  const stable = (run && run.stable) || s.stableVersion;
  const canary = (run && run.canary) || s.canaryVersion;
  const marks = eventMarks(events);
  if (sr && sr.times && sr.times.length && sr.versions) {
    // From the slot before the first request on: the windows reach 15 minutes back.
    const first = Math.max(0, sr.times.findIndex((_, i) => sr.versions.some((v) => v.requests[i] > 0)) - 1);
    const cut = (a) => a.slice(first);
    const xs = cut(sr.times);
    const by = Object.fromEntries(sr.versions.map((v) => [v.version, Object.fromEntries(Object.entries(v).map(([k, a]) => [k, Array.isArray(a) ? cut(a) : a]))]));
    const c = by[canary];
    if (c) {
      const share = xs.map((_, i) => {
        const total = Object.values(by).reduce((n, v) => n + v.requests[i], 0);
        return total ? (100 * c.requests[i]) / total : null;
      });
      out.push({ key: 'traffic', title: `Traffic share of ${canary}`, unit: '%', yRange: [0, 100],
        series: [{ label: 'measured', color: '--canary' }, { label: 'planned weight', color: '--fg-muted', dash: [6, 4] }],
        data: [xs, share, plannedWeight(xs, events)], marks });
    }
    const b = by[stable];
    for (const m of metrics) {
      if (m.kind !== 'sequential' || !c || !b) continue;
      const bound = durationMs(m.boundary);
      if (m.boundary && bound > 0) {
        const q = ((m.text || '').match(/\bp(50|90|95|99)\b/) || [null, '95'])[1];
        out.push({ key: 'lat-' + slug(m.metric), metric: m.metric, title: `${m.metric}: p${q} latency, canary vs baseline (boundary ${fmt(bound, 'ms')})`, unit: 'ms',
          series: [{ label: canary, color: '--canary' }, { label: stable, color: '--stable' }, { label: 'boundary', color: '--bad', dash: [4, 4] }],
          data: [xs, c[`p${q}Ms`], b[`p${q}Ms`], xs.map(() => bound)], marks: metricMarks(marks, m) });
      } else if (/error/i.test(m.metric) || /error/i.test(m.text)) {
        const pct = (v) => v.errorRate.map((r) => (r == null ? null : r * 100));
        out.push({ key: 'err-' + slug(m.metric), metric: m.metric, title: `${m.metric}: error rate, canary vs baseline`, unit: '%',
          series: [{ label: canary, color: '--canary' }, { label: stable, color: '--stable' }],
          data: [xs, pct(c), pct(b)], marks: metricMarks(marks, m) });
      }
    }
  }
  for (const m of metrics) {
    const pts = (m.measurements || []).filter((p) => typeof p.value === 'number');
    if (pts.length < 2) continue; // a line needs two points
    const xs = pts.map((p) => secs(p.at));
    if (m.kind === 'sequential') {
      out.push({ key: 'eff-' + slug(m.metric), metric: m.metric, title: `${m.metric}: effect (canary ÷ baseline) against the margin`, unit: 'ratio',
        series: [{ label: 'effect', color: '--canary' }, { label: 'margin', color: '--bad', dash: [4, 4] }],
        data: [xs, pts.map((p) => p.value), xs.map(() => m.margin || null)], marks: metricMarks(marks, m) });
    } else {
      out.push({ key: 'val-' + slug(m.metric), metric: m.metric, title: `${m.metric}: measured value`, unit: '',
        series: [{ label: m.metric, color: '--canary' }], data: [xs, pts.map((p) => p.value)], marks: metricMarks(marks, m) });
    }
  }
  return out;
}

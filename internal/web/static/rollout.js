// A rollout's page: the failing metric first, then the versions and controls, the steps as a
// timeline, traffic share and canary-versus-baseline charts, the evidence in words, events and
// history. Updated live from the event stream; the charts' measurements are re-read every slot.
import { get, post } from './api.js';
import { h, debounce, phaseBadge, verdictBadge, fmtTime, fmtDuration } from './dom.js';
import { confirmChange } from './confirm.js';
import { weightBar } from './overview.js';
import { Chart, fmt, durationMs } from './charts.js';

// The commands that fit each phase; the API has the last word and its refusal is shown.
const controls = {
  Progressing: ['pause', 'promote', 'promote-full', 'abort', 'restart'],
  Paused: ['pause', 'resume', 'promote', 'promote-full', 'abort', 'restart'], // pause: a pause step is not a person's pause
  Degraded: ['retry', 'undo'],
  Healthy: ['undo'],
};
const labels = {
  pause: 'Pause', resume: 'Resume', promote: 'Promote', 'promote-full': 'Promote fully', abort: 'Abort',
  retry: 'Retry', undo: 'Undo', restart: 'Restart',
};
const explain = {
  pause: 'Pause the rollout at its current step.', resume: 'Resume the rollout.',
  promote: 'End the current step and go on to the next.', 'promote-full': 'Skip every remaining step: the canary gets 100% and becomes stable.',
  abort: 'Abort: all traffic goes back to the stable version.', retry: 'Start the aborted rollout again.',
  undo: 'Go back to the previous stable version.', restart: 'Start the rollout in flight again from its first step.',
};
const MAX_EVENTS = 100;
const pauseWords = { PauseStep: 'a pause step', User: 'paused by a person', AnalysisInconclusive: 'an inconclusive analysis' };

export class RolloutPage {
  constructor(root, name, session) {
    this.root = root;
    this.name = name;
    this.session = session;
    this.events = [];
    this.charts = new Map();
    this.refresh = debounce(() => this.loadState(), 150);
    this.listener = (e) => { if (e.service === this.name) { this.addEvent(e); this.refresh(); } };
    this.onResize = debounce(() => { for (const c of this.charts.values()) c.resize(); }, 200);
  }

  async open() {
    const base = '/api/v1/services/' + encodeURIComponent(this.name);
    this.base = base;
    this.el = {
      failing: h('div', { id: 'failing', role: 'alert' }),
      head: h('div', { class: 'rollout-head' }),
      controls: h('div', { id: 'controls', class: 'controls', role: 'group', 'aria-label': 'Rollout controls' }),
      result: h('p', { id: 'result', class: 'error', role: 'alert' }),
      steps: h('ol', { id: 'steps', class: 'steps' }),
      charts: h('div', { id: 'charts', class: 'charts' }),
      evidence: h('div', { id: 'evidence' }),
      events: h('ol', { id: 'events', class: 'events', reversed: true }),
      history: h('tbody'),
    };
    this.root.replaceChildren(h('section', { id: 'rollout', 'data-service': this.name },
      h('p', { class: 'crumbs' }, h('a', { href: '#/', text: '← Services' })),
      h('h1', { text: this.name }),
      this.el.failing, this.el.head, this.el.controls, this.el.result,
      h('h2', { text: 'Steps' }), this.el.steps,
      h('h2', { text: 'Charts' }), this.el.charts,
      h('h2', { text: 'Evidence' }), this.el.evidence,
      h('div', { class: 'two' },
        h('div', {}, h('h2', { text: 'Events' }), this.el.events),
        h('div', {}, h('h2', { text: 'History' }), h('div', { class: 'scroll' }, h('table', { id: 'history' },
          h('thead', {}, h('tr', {}, ['#', 'When', 'What', 'Versions', 'Why', 'By'].map((t) => h('th', { scope: 'col', text: t })))),
          this.el.history))))));
    this.session.listeners.add(this.listener);
    window.addEventListener('resize', this.onResize);
    this.tick = setInterval(() => this.countdown(), 1000);
    this.poll = setInterval(() => this.loadMeasurements(), 10000);
    // Everything at once: the first render waits for the slowest answer, not for their sum.
    const events = get('/api/v1/events?service=' + encodeURIComponent(this.name) + '&last=' + MAX_EVENTS).catch(() => ({ events: [] }));
    const series = get(this.base + '/series').catch(() => null);
    await this.loadState();
    this.series = await series;
    this.renderCharts();
    // Marks read by bench/dashboard: the page's top (status, steps, charts, evidence, history)
    // is drawn; then the event list below it too.
    performance.mark('aviary:rollout-rendered');
    // Live events may have come in while the stored ones were read: keep both, once each.
    const seen = new Set(this.events.map((e) => e.seq));
    const stored = (await events).events.filter((e) => !seen.has(e.seq));
    this.events = this.events.concat(stored.reverse()).sort((x, y) => y.seq - x.seq).slice(0, MAX_EVENTS);
    this.renderEvents();
    this.renderCharts(); // the planned weight comes from the events
    performance.mark('aviary:rollout-complete');
  }

  close() {
    this.closed = true;
    this.session.listeners.delete(this.listener);
    window.removeEventListener('resize', this.onResize);
    clearInterval(this.tick);
    clearInterval(this.poll);
    for (const c of this.charts.values()) c.destroy();
    this.charts.clear();
  }

  addEvent(e) {
    if (this.events.length && this.events[0].seq >= e.seq) return;
    this.events.unshift(e);
    if (this.events.length > MAX_EVENTS) this.events.length = MAX_EVENTS;
    this.renderEvents();
  }

  async loadState() {
    if (this.closed) return;
    try {
      const [st, hist, an] = await Promise.all([get(this.base + '/rollout'), get(this.base + '/history'), get(this.base + '/analysis')]);
      if (this.closed) return;
      this.status = st;
      this.statusAt = Date.now();
      this.runs = an.runs || [];
      this.renderHead();
      this.renderControls();
      this.renderSteps();
      this.renderEvidence();
      this.renderHistory(hist.history || []);
    } catch (e) {
      this.el.failing.replaceChildren(h('p', { class: 'error', text: 'Could not read the rollout of ' + this.name + ': ' + e.message }));
    }
  }

  async loadMeasurements() {
    if (this.closed) return;
    try {
      const [series, an] = await Promise.all([get(this.base + '/series'), get(this.base + '/analysis')]);
      if (this.closed) return;
      this.series = series;
      this.runs = an.runs || [];
      this.renderEvidence();
      this.renderCharts();
    } catch { /* the next poll tries again */ }
  }

  renderHead() {
    const s = this.status;
    this.el.head.replaceChildren(
      h('dl', { class: 'facts' },
        h('div', {}, h('dt', { text: 'Phase' }), h('dd', { id: 'phase' }, phaseBadge(s.phase))),
        h('div', {}, h('dt', { text: 'Stable' }), h('dd', { id: 'stable', text: s.stableVersion || '—' })),
        h('div', {}, h('dt', { text: 'Canary' }), h('dd', { id: 'canary', text: s.canaryVersion || '—' })),
        h('div', {}, h('dt', { text: 'Weight' }), h('dd', { id: 'weight' }, weightBar(s.canaryWeight || 0))),
        h('div', {}, h('dt', { text: 'Strategy' }), h('dd', { text: s.strategy || '—' })),
        s.startedAt ? h('div', {}, h('dt', { text: 'Started' }), h('dd', { text: fmtTime(s.startedAt) })) : null),
      s.message ? h('p', { id: 'message', class: 'message', text: s.message }) : null);
  }

  whoChanged() { if (this.status) this.renderControls(); }

  renderControls() {
    const may = this.session.who && this.session.who.canChange;
    const st = this.status;
    const byPerson = (st.pauseReasons || []).some((p) => p.kind === 'User');
    const fits = (a) => (a === 'undo' ? Boolean(st.previousVersion) : a === 'pause' ? !byPerson : a === 'resume' ? byPerson : true);
    const acts = may ? (controls[st.phase] || []).filter(fits) : [];
    this.el.controls.hidden = acts.length === 0;
    this.el.controls.replaceChildren(...acts.map((a) => h('button', {
      type: 'button', 'data-action': a, class: a === 'abort' ? 'danger' : '', text: labels[a],
      onclick: () => confirmChange(`${explain[a]} (${this.name})`, (reason) => this.command(a, reason)),
    })));
  }

  async command(action, reason) {
    const full = action === 'promote-full';
    const path = this.base + '/rollout/' + (full ? 'promote' : action);
    const st = await post(path, full ? { full: true, reason } : { reason });
    this.status = st;
    this.el.result.textContent = '';
    this.refresh();
  }

  countdown() {
    const el = document.getElementById('countdown');
    const s = this.status;
    if (!el || !s || s.stepRemainingSeconds == null) return;
    const left = s.stepRemainingSeconds - (Date.now() - this.statusAt) / 1000;
    // A person's pause stops the clock of a timed step; a pause step alone does not.
    el.textContent = (s.pauseReasons || []).some((p) => p.kind === 'User') ? 'held by a person' : fmtDuration(left) + ' left';
  }

  renderSteps() {
    const s = this.status;
    this.el.steps.replaceChildren(...(s.steps || []).map((st) => h('li', {
      class: 'step ' + st.state, 'data-state': st.state, 'aria-current': st.state === 'current' ? 'step' : null,
    }, h('span', { class: 'dot', 'aria-hidden': 'true' }), h('span', { class: 'text', text: st.text }),
    st.state === 'current' && s.stepRemainingSeconds != null ? h('span', { id: 'countdown', class: 'countdown' }) : null,
    st.state === 'current' && s.pauseReasons.length ? h('span', { class: 'muted small', text: ' waiting: ' + s.pauseReasons.map((p) => pauseWords[p.kind] || p.kind).join(', ') }) : null)));
    if (!s.steps || !s.steps.length) this.el.steps.append(h('li', { class: 'muted', text: 'No rollout steps: the service is not being rolled out.' }));
    this.countdown();
  }

  // latest is the newest run's metrics, failing first, then critical ones.
  latest() {
    const run = this.runs && this.runs.length ? this.runs[this.runs.length - 1] : null;
    if (!run) return { run: null, metrics: [] };
    const rank = (m) => (m.phase === 'Failed' ? 0 : m.phase === 'Error' ? 1 : m.critical ? 2 : 3);
    return { run, metrics: run.metrics.slice().sort((a, b) => rank(a) - rank(b)) };
  }

  renderEvidence() {
    const { run, metrics } = this.latest();
    const failed = metrics.filter((m) => m.phase === 'Failed');
    this.el.failing.replaceChildren(...failed.map((m) => h('div', { class: 'failing card', 'data-metric': m.metric },
      h('strong', { text: 'Failing: ' + m.metric }), ' ', h('span', { text: m.text }))));
    if (!run) {
      this.el.evidence.replaceChildren(h('p', { class: 'muted', text: 'No analysis has run for this service yet.' }));
      return;
    }
    const side = (s) => (s && s.requests ? `${s.version}: ${fmt(s.rate * 100, '%')} (${s.events} of ${s.requests})` : '—');
    this.el.evidence.replaceChildren(
      h('p', {}, 'Run ', h('code', { text: run.id }), ` (${run.kind}, ${run.stable} → ${run.canary}, since ${fmtTime(run.startedAt)}): `, verdictBadge(run.verdict), run.verdict !== 'Running' && run.message ? ' ' + run.message : ''),
      h('div', { class: 'scroll' }, h('table', { id: 'evidence-table', class: 'evidence' },
        h('thead', {}, h('tr', {}, ['Metric', 'Verdict', 'Canary', 'Baseline', 'Effect', 'Evidence', 'In words'].map((t) => h('th', { scope: 'col', text: t })))),
        h('tbody', {}, metrics.map((m) => h('tr', { 'data-metric': m.metric, class: m.phase === 'Failed' ? 'failed' : '' },
          h('th', { scope: 'row' }, m.metric, m.critical ? h('span', { class: 'muted small', text: ' critical' }) : null),
          h('td', {}, verdictBadge(m.phase)),
          h('td', { text: side(m.canary) }),
          h('td', { text: side(m.baseline) }),
          h('td', { text: m.effect ? fmt(m.effect, 'ratio') + (m.margin ? ` (margin ${fmt(m.margin, 'ratio')})` : '') : '—' }),
          h('td', { text: m.needed ? `${fmt(m.evidence)} of ${fmt(m.needed)}` : (m.kind === 'threshold' ? `${m.successful || 0} ok, ${m.failed || 0} failed` : '—') }),
          h('td', { class: 'words', text: m.text })))))));
  }

  renderCharts() {
    const panels = this.panels();
    const keep = new Set(panels.map((p) => p.key));
    for (const [k, c] of this.charts) if (!keep.has(k)) { c.destroy(); this.charts.delete(k); document.getElementById('chart-' + k)?.remove(); }
    this.el.charts.querySelector(':scope > p.muted')?.remove();
    for (const p of panels) {
      let c = this.charts.get(p.key);
      if (!c) {
        const box = h('figure', { id: 'chart-' + p.key, class: 'chart', 'data-metric': p.metric || '', 'data-points': '0' });
        this.el.charts.append(box);
        c = new Chart(box, p);
        this.charts.set(p.key, c);
      }
      c.set(p.data, p.marks);
      const pts = p.data.slice(1).reduce((n, ys) => n + ys.filter((v) => v != null).length, 0);
      c.el.setAttribute('data-points', String(pts));
    }
    if (!panels.length) this.el.charts.replaceChildren(h('p', { class: 'muted', text: 'No measurements yet.' }));
  }

  // panels turns the series and the analysis into chart panels.
  panels() {
    const out = [];
    const sr = this.series;
    const s = this.status || {};
    const { run, metrics } = this.latest();
    const stable = (run && run.stable) || s.stableVersion;
    const canary = (run && run.canary) || s.canaryVersion;
    const marks = [];
    for (const m of metrics) for (const p of m.measurements || []) if (p.phase !== 'Running') marks.push({ t: Date.parse(p.at) / 1000, fail: p.phase === 'Failed' });
    if (sr && sr.times.length) {
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
          data: [xs, share, this.plannedWeight(xs)], marks });
      }
      const b = by[stable];
      for (const m of metrics) {
        if (m.kind !== 'sequential' || !c || !b) continue;
        const bound = durationMs(m.boundary);
        if (m.boundary && bound > 0) {
          const q = ((m.text || '').match(/\bp(50|90|95|99)\b/) || [null, '95'])[1];
          out.push({ key: 'lat-' + slug(m.metric), metric: m.metric, title: `${m.metric}: p${q} latency, canary vs baseline (boundary ${fmt(bound, 'ms')})`, unit: 'ms',
            series: [{ label: canary, color: '--canary' }, { label: stable, color: '--stable' }, { label: 'boundary', color: '--bad', dash: [4, 4] }],
            data: [xs, c[`p${q}Ms`], b[`p${q}Ms`], xs.map(() => bound)], marks });
        } else if (/error/i.test(m.metric) || /error/i.test(m.text)) {
          const pct = (v) => v.errorRate.map((r) => (r == null ? null : r * 100));
          out.push({ key: 'err-' + slug(m.metric), metric: m.metric, title: `${m.metric}: error rate, canary vs baseline`, unit: '%',
            series: [{ label: canary, color: '--canary' }, { label: stable, color: '--stable' }],
            data: [xs, pct(c), pct(b)], marks });
        }
      }
    }
    for (const m of metrics) {
      const pts = (m.measurements || []).filter((p) => typeof p.value === 'number');
      if (pts.length < 2) continue; // a line needs two points
      const xs = pts.map((p) => Date.parse(p.at) / 1000);
      const own = pts.filter((p) => p.phase !== 'Running').map((p) => ({ t: Date.parse(p.at) / 1000, fail: p.phase === 'Failed' }));
      if (m.kind === 'sequential') {
        out.push({ key: 'eff-' + slug(m.metric), metric: m.metric, title: `${m.metric}: effect (canary ÷ baseline) against the margin`, unit: 'ratio',
          series: [{ label: 'effect', color: '--canary' }, { label: 'margin', color: '--bad', dash: [4, 4] }],
          data: [xs, pts.map((p) => p.value), xs.map(() => m.margin || null)], marks: own });
      } else {
        out.push({ key: 'val-' + slug(m.metric), metric: m.metric, title: `${m.metric}: measured value`, unit: '',
          series: [{ label: m.metric, color: '--canary' }], data: [xs, pts.map((p) => p.value)], marks: own });
      }
    }
    return out;
  }

  // plannedWeight is the canary weight the events set, at each slot.
  plannedWeight(xs) {
    const evs = this.events.slice().reverse(); // oldest first
    let i = 0;
    let w = null;
    return xs.map((t) => {
      while (i < evs.length && Date.parse(evs[i].time) / 1000 <= t + 10) { w = evs[i].canaryWeight; i++; }
      return w;
    });
  }

  renderEvents() {
    this.el.events.replaceChildren(...this.events.slice(0, 50).map((e) => h('li', { 'data-kind': e.kind },
      h('time', { datetime: e.time, text: fmtTime(e.time) }), ' ', h('strong', { text: e.kind }),
      ` ${e.canaryVersion ? e.stableVersion + ' → ' + e.canaryVersion + ' at ' + e.canaryWeight + '%' : e.stableVersion}`,
      e.reason ? h('span', { class: 'why', text: ' — ' + e.reason }) : null,
      h('span', { class: 'muted small', text: ' by ' + e.by }))));
    if (!this.events.length) this.el.events.append(h('li', { class: 'muted', text: 'No events yet.' }));
  }

  renderHistory(hist) {
    this.el.history.replaceChildren(...hist.slice().reverse().map((r) => h('tr', {},
      h('td', { text: r.revision }), h('td', { text: fmtTime(r.time) }), h('td', { text: r.kind }),
      h('td', { text: r.canaryVersion ? r.stableVersion + ' → ' + r.canaryVersion : r.stableVersion }),
      h('td', { text: r.reason }), h('td', { text: r.by }))));
  }
}

function slug(s) { return String(s).toLowerCase().replace(/[^a-z0-9]+/g, '-'); }

// A rollout's page: the failing metric first, then the versions and controls, the steps as a
// timeline, traffic share and canary-versus-baseline charts, the evidence in words, events and
// history. Updated live from the event stream; the charts' measurements are re-read every slot.
//
// The first render is one piece: the reads go out at once (uPlot is imported beside them, not
// before them), and the page is put into the document once they have answered, so the browser
// lays it out once instead of a skeleton first and the page again.
import { get, post } from './api.js';
import { h, debounce, phaseBadge, verdictBadge, fmtTime, fmtDuration, fmt } from './dom.js';
import { confirmChange } from './confirm.js';
import { weightBar } from './overview.js';
import { panels, eventMarks } from './panels.js';

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
    this.onResize = debounce(() => {
      const first = this.charts.values().next().value;
      const width = first ? first.el.clientWidth : 0;
      for (const c of this.charts.values()) c.resize(width);
    }, 200);
  }

  async open() {
    const base = '/api/v1/services/' + encodeURIComponent(this.name);
    this.base = base;
    // Everything at once: the first render waits for the slowest answer, not for their sum.
    const events = get('/api/v1/events?service=' + encodeURIComponent(this.name) + '&last=' + MAX_EVENTS).catch(() => ({ events: [] }));
    const series = get(this.base + '/series').catch(() => null);
    const state = this.readState();
    const charts = import('./charts.js');
    this.el = {
      failing: h('div', { id: 'failing', role: 'alert' }),
      head: h('div', { class: 'rollout-head' }),
      controls: h('div', { id: 'controls', class: 'controls', role: 'group', 'aria-label': 'Rollout controls' }),
      result: h('p', { id: 'result', class: 'error', role: 'alert' }),
      steps: h('ol', { id: 'steps', class: 'steps' }),
      marks: h('p', { id: 'marks', class: 'muted small' }),
      charts: h('div', { id: 'charts', class: 'charts' }),
      evidence: h('div', { id: 'evidence' }),
      events: h('ol', { id: 'events', class: 'events', reversed: true }),
      history: h('tbody'),
    };
    const page = h('section', { id: 'rollout', 'data-service': this.name },
      h('p', { class: 'crumbs' }, h('a', { href: '#/', text: '← Services' })),
      h('h1', { text: this.name }),
      this.el.failing, this.el.head, this.el.controls, this.el.result,
      h('h2', { text: 'Steps' }), this.el.steps,
      h('h2', { text: 'Charts' }), this.el.marks, this.el.charts,
      h('h2', { text: 'Evidence' }), this.el.evidence,
      h('div', { class: 'two' },
        h('div', {}, h('h2', { text: 'Events' }), this.el.events),
        h('div', {}, h('h2', { text: 'History' }), h('div', { class: 'scroll' }, h('table', { id: 'history' },
          h('thead', {}, h('tr', {}, ['#', 'When', 'What', 'Versions', 'Why', 'By'].map((t) => h('th', { scope: 'col', text: t })))),
          this.el.history)))));
    this.session.listeners.add(this.listener);
    window.addEventListener('resize', this.onResize);
    this.tick = setInterval(() => this.countdown(), 1000);
    this.poll = setInterval(() => this.loadMeasurements(), 10000);
    this.showState(await state);
    if (this.closed) return;
    // Live events may have come in while the stored ones were read: keep both, once each.
    const seen = new Set(this.events.map((e) => e.seq));
    const stored = (await events).events.filter((e) => !seen.has(e.seq));
    this.events = this.events.concat(stored.reverse()).sort((x, y) => y.seq - x.seq).slice(0, MAX_EVENTS);
    this.series = await series;
    try {
      this.Chart = (await charts).Chart;
    } catch (e) {
      this.el.charts.replaceChildren(h('p', { class: 'error', text: 'The charts did not load: ' + e.message + '. Reload the page.' }));
    }
    if (this.closed) return;
    this.renderEvents();
    this.root.replaceChildren(page);
    this.renderCharts(); // in the document: a chart takes its panel's width
    // Marks read by bench/dashboard: the whole page (status, steps, charts, evidence, events,
    // history) is drawn. (-rendered is kept for the memory measure, which waits for it.)
    performance.mark('aviary:rollout-rendered');
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

  // readState reads what the page's top shows; an error is kept to be shown.
  async readState() {
    try {
      const [st, hist, an] = await Promise.all([get(this.base + '/rollout'), get(this.base + '/history'), get(this.base + '/analysis')]);
      return { st, hist, an };
    } catch (e) {
      return { error: e };
    }
  }

  showState({ st, hist, an, error }) {
    if (this.closed) return;
    if (error) {
      this.el.failing.replaceChildren(h('p', { class: 'error', text: 'Could not read the rollout of ' + this.name + ': ' + error.message }));
      return;
    }
    this.status = st;
    this.statusAt = Date.now();
    this.runs = an.runs || [];
    this.renderHead();
    this.renderControls();
    this.renderSteps();
    this.renderEvidence();
    this.renderHistory(hist.history || []);
  }

  async loadState() {
    if (this.closed) return;
    this.showState(await this.readState());
    if (this.Chart) this.renderCharts(); // a new verdict or step is marked
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
      ...(s.message ? [h('p', { id: 'message', class: 'message', text: s.message })] : []));
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
    return { run, metrics: (run.metrics || []).slice().sort((a, b) => rank(a) - rank(b)) };
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
    if (!this.Chart) return;
    const { run, metrics } = this.latest();
    const ps = panels({ series: this.series, status: this.status, run, metrics, events: this.events });
    this.renderMarks();
    const keep = new Set(ps.map((p) => p.key));
    for (const [k, c] of this.charts) if (!keep.has(k)) { c.destroy(); this.charts.delete(k); c.el.remove(); }
    this.el.charts.querySelector(':scope > p')?.remove();
    // The new panels' boxes first, then one measure of their width for all of them: a measure
    // after each chart would make the browser lay the page out once per chart.
    const fresh = ps.filter((p) => !this.charts.has(p.key));
    const boxes = fresh.map((p) => h('figure', { id: 'chart-' + p.key, class: 'chart', 'data-metric': p.metric || '', 'data-points': '0' }));
    this.el.charts.append(...boxes);
    const width = boxes.length ? boxes[0].clientWidth : 0;
    fresh.forEach((p, i) => this.charts.set(p.key, new this.Chart(boxes[i], p, width)));
    // In the failing-first order.
    ps.forEach((p, i) => { const el = this.charts.get(p.key).el; if (this.el.charts.children[i] !== el) this.el.charts.insertBefore(el, this.el.charts.children[i]); });
    for (const p of ps) {
      const c = this.charts.get(p.key);
      c.set(p.data, p.marks);
      const pts = p.data.slice(1).reduce((n, ys) => n + ys.filter((v) => v != null).length, 0);
      c.el.setAttribute('data-points', String(pts));
      c.el.setAttribute('data-marks', p.marks.filter((m) => m.kind !== 'step').map((m) => m.kind).join(' '));
    }
    if (!ps.length) this.el.charts.replaceChildren(h('p', { class: 'muted', text: 'No measurements yet.' }));
  }

  // renderMarks says what the marks on the charts are, and lists the latest verdicts.
  renderMarks() {
    const verdicts = eventMarks(this.events).filter((m) => m.kind !== 'step').slice(-5).reverse();
    this.el.marks.replaceChildren('Marks: ', h('span', { class: 'mark pass', text: '✓ passed' }), ', ',
      h('span', { class: 'mark fail', text: '✗ failed' }), ', ', h('span', { class: 'mark inconclusive', text: '? inconclusive' }), ', ',
      h('span', { class: 'mark abort', text: '■ aborted' }), ', dotted grey: a step began.',
      ...(verdicts.length ? [h('ul', { id: 'verdicts', class: 'verdicts' }, verdicts.map((m) => h('li', { 'data-kind': m.kind },
        h('time', { datetime: m.at, text: fmtTime(m.at) }), ' ', h('span', { class: 'mark ' + m.kind, text: m.text }))))] : []));
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

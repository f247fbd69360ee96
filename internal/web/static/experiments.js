// The experiments pages: #/experiments lists every experiment of the config with its phase;
// #/experiments/NAME shows its results (GET /api/v1/experiments/{name}/results): the decision in
// words, a banner when the split is broken (sample ratio mismatch), the units per arm against
// their shares, per metric and arm the effect with the anytime-valid interval beside the fixed
// one, the guardrails' state, and start, stop and conclude for a token that may change things.
// Results are computed when read and change with every tracked event (no event says so), so the
// page re-reads them every 10 s besides following the experiment's events. Fields are read
// defensively: the results grow (stopped arms, builtin metrics) and an older server lacks them.
import { get, post, APIError } from './api.js';
import { h, debounce, fmtTime } from './dom.js';
import { confirmChange } from './confirm.js';

const REFRESH_MS = 10000;
const reasonLabel = 'Reason (logged with the change)';
const verdictWords = { 'keep-running': 'Keep running', ship: 'Ship', stop: 'Stop: no difference', blocked: 'Blocked' };
const verdictClass = { 'keep-running': 'verdict-running', ship: 'verdict-pass', stop: 'verdict-inconclusive', blocked: 'verdict-fail' };

function phaseOf(p) {
  return h('span', { class: 'badge exp-' + (p || 'none'), text: p || 'not started' });
}

function subject(e) {
  if (e.service) return h('span', {}, 'versions of ', h('a', { href: '#/services/' + encodeURIComponent(e.service), text: e.service }));
  if (e.flag) return h('span', {}, 'variants of flag ', h('a', { href: '#/flags', text: e.flag }));
  return h('span', { class: 'muted', text: '—' });
}

// mentions says whether a live event may concern experiment name (any experiment without one):
// an experiment's own events, and an arm stopped by its guardrail.
function mentions(e, name) {
  if (e.experiment) return !name || e.experiment === name;
  return /^(Experiment|Arm)/.test(String(e.kind || ''));
}

export class ExperimentsPage {
  constructor(root, session) {
    this.root = root;
    this.session = session;
    this.refresh = debounce(() => this.load(), 300);
    this.listener = (e) => { if (mentions(e)) this.refresh(); };
  }

  async open() {
    this.session.listeners.add(this.listener);
    this.body = h('tbody');
    this.error = h('p', { class: 'error', role: 'alert' });
    this.root.replaceChildren(h('section', { id: 'experiments-page' },
      h('div', { class: 'head' }, h('h1', { text: 'Experiments' })),
      this.error,
      h('div', { class: 'scroll' }, h('table', { id: 'experiments', class: 'services' },
        h('thead', {}, h('tr', {}, ['Experiment', 'Phase', 'Arms', 'Of', 'Started', 'Stopped'].map((t) => h('th', { scope: 'col', text: t })))),
        this.body))));
    this.timer = setInterval(() => this.load(), REFRESH_MS);
    await this.load();
  }

  close() { this.closed = true; this.session.listeners.delete(this.listener); clearInterval(this.timer); }

  async load() {
    if (this.closed) return;
    let list;
    try {
      list = (await get('/api/v1/experiments')).experiments || [];
      this.error.textContent = '';
    } catch (e) {
      this.error.textContent = e instanceof APIError && e.status === 404
        ? 'This server has no experiments API.'
        : 'Could not read the experiments: ' + e.message;
      return;
    }
    if (this.closed) return;
    this.body.replaceChildren(...list.map((e) => h('tr', { 'data-experiment': e.name, 'data-phase': e.phase || '' },
      h('th', { scope: 'row' }, h('a', { href: '#/experiments/' + encodeURIComponent(e.name), text: e.name })),
      h('td', { class: 'phase' }, phaseOf(e.phase)),
      h('td', { class: 'arms', text: (e.arms || []).map((a) => (typeof a === 'string' ? a : a.name)).join(', ') }),
      h('td', {}, subject(e)),
      h('td', { text: e.started ? fmtTime(e.started) : '—' }),
      h('td', { text: e.stopped ? fmtTime(e.stopped) : '—' }))));
    if (!list.length) this.body.append(h('tr', {}, h('td', { colspan: '6', class: 'muted', text: 'No experiments in the config (experiments: in docs/experiments.md).' })));
  }
}

// Numbers in words: a relative effect as a signed percentage, an absolute one with 3 digits.
const signed = (v, s) => (v > 0 ? '+' : v < 0 ? '−' : '') + s(Math.abs(v));
const pct = (v) => (v == null || !Number.isFinite(v) ? '—' : signed(v, (a) => (a * 100).toPrecision(3).replace(/\.?0+$/, '') + '%'));
const num = (v) => (v == null || !Number.isFinite(v) ? '—' : signed(v, (a) => String(Number(a.toPrecision(3)))));
const mean = (v) => (v == null || !Number.isFinite(v) ? '—' : String(Number(v.toPrecision(4))));
const pval = (p) => (p == null || !Number.isFinite(p) ? '—' : p < 0.0001 ? '< 0.0001' : String(Number(p.toPrecision(2))));
const peq = (p) => (p != null && p < 0.0001 ? 'p < 0.0001' : 'p = ' + pval(p)); // "p = 0.03", "p < 0.0001"

export class ExperimentPage {
  constructor(root, name, session) {
    this.root = root;
    this.name = name;
    this.session = session;
    this.refresh = debounce(() => this.load(), 300);
    this.listener = (e) => { if (mentions(e, this.name)) this.refresh(); };
    this.path = '/api/v1/experiments/' + encodeURIComponent(name);
  }

  async open() {
    this.session.listeners.add(this.listener);
    this.el = {
      srm: h('div', { id: 'srm' }),
      head: h('div', { class: 'exp-head' }),
      decision: h('div', { id: 'decision' }),
      controls: h('div', { id: 'controls', class: 'controls', role: 'group', 'aria-label': 'Experiment controls' }),
      units: h('div', { id: 'units' }),
      metrics: h('div', { id: 'metrics' }),
      guardrails: h('div', { id: 'guardrails' }),
      notes: h('ul', { id: 'notes', class: 'muted' }),
      error: h('p', { class: 'error', role: 'alert' }),
    };
    this.root.replaceChildren(h('section', { id: 'experiment', 'data-experiment': this.name },
      h('p', { class: 'crumbs' }, h('a', { href: '#/experiments', text: '← Experiments' })),
      h('h1', { text: this.name }),
      this.el.srm, this.el.head, this.el.decision, this.el.controls, this.el.error,
      h('h2', { text: 'Units' }), this.el.units,
      h('h2', { text: 'Metrics' }), this.el.metrics,
      h('h2', { text: 'Guardrails' }), this.el.guardrails,
      this.el.notes));
    this.timer = setInterval(() => this.load(), REFRESH_MS);
    await this.load();
  }

  close() { this.closed = true; this.session.listeners.delete(this.listener); clearInterval(this.timer); }

  whoChanged() { this.renderControls(); }

  async load() {
    if (this.closed) return;
    const [list, res] = await Promise.all([
      get('/api/v1/experiments').then((l) => l.experiments || [], () => []),
      get(this.path + '/results').then((r) => ({ r }), (e) => ({ e })),
    ]);
    if (this.closed) return;
    this.summary = list.find((e) => e.name === this.name) || null;
    this.results = res.r || null;
    if (res.e && !(res.e instanceof APIError && res.e.status === 409)) {
      this.el.error.textContent = res.e instanceof APIError && res.e.status === 404
        ? `No experiment ${this.name}: it is not in the config.`
        : 'Could not read the results: ' + res.e.message;
    } else {
      this.el.error.textContent = '';
    }
    this.render();
  }

  phase() { return (this.results && this.results.phase) || (this.summary && this.summary.phase) || ''; }

  render() {
    const r = this.results;
    const s = this.summary || {};
    this.el.head.replaceChildren(h('dl', { class: 'facts' },
      h('div', {}, h('dt', { text: 'Phase' }), h('dd', { id: 'exp-phase' }, phaseOf(this.phase()))),
      h('div', {}, h('dt', { text: 'Arms of' }), h('dd', {}, subject(s))),
      (r && r.started) || s.started ? h('div', {}, h('dt', { text: 'Started' }), h('dd', { text: fmtTime((r && r.started) || s.started) })) : null,
      s.stopped ? h('div', {}, h('dt', { text: 'Stopped' }), h('dd', { text: fmtTime(s.stopped) })) : null,
      r && r.at ? h('div', {}, h('dt', { text: 'Results as of' }), h('dd', { text: fmtTime(r.at) })) : null));
    this.renderControls();
    if (!r) {
      this.el.srm.replaceChildren();
      this.el.decision.replaceChildren(h('p', { class: 'muted', text: this.phase() ? 'No results yet.' : 'Not started: there are no results before the experiment starts.' }));
      for (const k of ['units', 'metrics', 'guardrails', 'notes']) this.el[k].replaceChildren();
      return;
    }
    this.renderSRM(r);
    const d = r.decision || {};
    this.el.decision.replaceChildren(h('div', { class: 'card decision', 'data-verdict': d.verdict || '' },
      h('span', { class: 'badge ' + (verdictClass[d.verdict] || ''), text: verdictWords[d.verdict] || d.verdict || '—' }), ' ',
      h('span', { id: 'decision-text', text: d.text || '' }),
      d.daysNeeded != null ? h('p', { class: 'muted small', text: `About ${Math.ceil(d.daysNeeded)} more day(s) at today's rate of units to detect the minimum effect.` }) : null));
    this.renderUnits(r);
    this.renderMetrics(r);
    this.renderGuardrails(r);
    this.el.notes.replaceChildren(...(r.notes || []).map((n) => h('li', { text: n })));
  }

  renderSRM(r) {
    const srm = r.srm;
    // With a broken split the figures below are shown dimmed: they cannot be trusted.
    this.el.metrics.classList.toggle('untrusted', Boolean(srm && srm.mismatch));
    if (srm && srm.mismatch) {
      this.el.srm.replaceChildren(h('div', { class: 'failing card', role: 'alert', id: 'srm-banner' },
        h('strong', { text: 'Sample ratio mismatch: ' }),
        `the units per arm (${(r.arms || []).map((a) => `${a.name} ${a.units}`).join(', ')}) are not the configured split `,
        `(${shares(r.arms).map((a) => `${a.name} ${pct(a.expected).replace('+', '')}`).join(', ')}); sequential ${peq(srm.pSequential)}, χ² ${peq(srm.pChiSquare)}. `,
        'No result below can be trusted: find where units are lost or misplaced (redirects, bots, an arm that crashes before its exposure is recorded) before reading any metric.'));
    } else if (srm && srm.chiSquareMismatch) {
      this.el.srm.replaceChildren(h('p', { class: 'muted small', id: 'srm-note',
        text: `The split passes the sequential check (${peq(srm.pSequential)}); χ² alone (${peq(srm.pChiSquare)}) would flag it, but χ² holds only for one planned look.` }));
    } else {
      this.el.srm.replaceChildren();
    }
  }

  renderUnits(r) {
    const arms = shares(r.arms);
    this.el.units.replaceChildren(h('div', { class: 'scroll' }, h('table', { id: 'units-table' },
      h('thead', {}, h('tr', {}, ['Arm', 'Units', 'Share', 'Configured', 'State'].map((t) => h('th', { scope: 'col', text: t })))),
      h('tbody', {}, arms.map((a, i) => h('tr', { 'data-arm': a.name },
        h('th', { scope: 'row' }, a.name, i === 0 ? h('span', { class: 'muted small', text: ' control' }) : null),
        h('td', { text: String(a.units) }), h('td', { text: pct(a.share).replace('+', '') }), h('td', { text: pct(a.expected).replace('+', '') }),
        h('td', {}, a.stopped ? h('span', { class: 'error', text: `stopped ${fmtTime(a.stopped.at)}: ${a.stopped.reason || a.stopped.metric || ''}` } ) : h('span', { class: 'muted', text: 'running' })))))),
    r.crossovers ? h('p', { class: 'muted small', text: `${r.crossovers} unit(s) saw more than one arm; each counts in its first.` }) : null));
  }

  renderMetrics(r) {
    const ms = (r.metrics || []).slice().sort((a, b) => Number(Boolean(a.guardrail)) - Number(Boolean(b.guardrail)));
    if (!ms.length) {
      this.el.metrics.replaceChildren(h('p', { class: 'muted', text: 'No metric has results yet (each arm needs enough units; see the notes below).' }));
      return;
    }
    const control = r.arms && r.arms[0] ? r.arms[0].name : 'control';
    this.el.metrics.replaceChildren(...ms.map((m) => {
      const rows = (m.arms || []).map((a) => ({ a, e: a.relative || a.absolute || {}, rel: Boolean(a.relative) }));
      const reach = Math.max(1e-12, ...rows.flatMap(({ e }) => [e.estimate, e.sequential && e.sequential.lo, e.sequential && e.sequential.hi, e.fixed && e.fixed.lo, e.fixed && e.fixed.hi]
        .filter((v) => v != null && Number.isFinite(v)).map(Math.abs)));
      const show = (v, rel) => (rel ? pct(v) : num(v));
      const iv = (i, rel) => (i ? `[${show(i.lo, rel)}, ${show(i.hi, rel)}]` : '—');
      return h('div', { class: 'metric', 'data-metric': m.metric },
        h('h3', {}, m.metric, ' ', h('span', { class: 'muted small', text: (m.goal === 'decrease' ? '↓ lower is better' : '↑ higher is better') + (m.guardrail ? ' · guardrail' : '') })),
        h('div', { class: 'scroll' }, h('table', { class: 'effects' },
          h('thead', {}, h('tr', {}, [`Arm vs ${control}`, 'Means', 'Effect', 'Anytime-valid interval', 'Fixed interval', 'p (anytime, adjusted)', ''].map((t) => h('th', { scope: 'col', text: t })))),
          h('tbody', {}, rows.map(({ a, e, rel }) => h('tr', { 'data-arm': a.arm, class: tone(m, a) },
            h('th', { scope: 'row', text: a.arm }),
            h('td', { text: `${mean(a.armMean)} vs ${mean(a.controlMean)}` }),
            h('td', { class: 'effect', text: show(e.estimate, rel) + (rel ? '' : ' (absolute)') }),
            h('td', { class: 'seq', text: iv(e.sequential, rel) }),
            h('td', { class: 'fixed', text: iv(e.fixed, rel) }),
            h('td', { text: pval(a.pSequentialAdjusted) }),
            h('td', { class: 'ci-cell' }, ciBar(e, reach, tone(m, a)),
              a.cuped && a.cuped.narrowing > 0 ? h('span', { class: 'muted small', text: ` CUPED −${Math.round(a.cuped.narrowing * 100)}% width` }) : null)))))));
    }), h('p', { class: 'muted small', text: 'Anytime-valid interval: holds however often the results are read (the decision uses it). Fixed interval: holds only if read once, at the planned number of units. The bar: the anytime-valid interval (thick), the fixed one (thin) and the estimate (dot) against no difference (dashed line).' }));
  }

  renderGuardrails(r) {
    const gs = (r.metrics || []).filter((m) => m.guardrail);
    const stopped = (r.arms || []).filter((a) => a.stopped);
    const harmed = new Set(((r.decision || {}).harmed) || []);
    if (!gs.length && !stopped.length) {
      this.el.guardrails.replaceChildren(h('p', { class: 'muted', text: 'No guardrail metrics.' }));
      return;
    }
    this.el.guardrails.replaceChildren(h('ul', { class: 'guardrails' },
      gs.flatMap((m) => (m.arms || []).map((a) => {
        const bad = harmed.has(a.arm) && tone(m, a) === 'worse';
        return h('li', { 'data-metric': m.metric, 'data-arm': a.arm, 'data-state': bad ? 'broken' : 'holding' },
          h('span', { class: 'badge ' + (bad ? 'verdict-fail' : 'verdict-pass'), text: bad ? 'broken' : 'holding' }),
          ` ${m.metric} on ${a.arm}: ${pct((a.relative || {}).estimate)} (${peq(a.pSequentialAdjusted)})`);
      })),
      stopped.map((a) => h('li', { 'data-arm': a.name, 'data-state': 'stopped' },
        h('span', { class: 'badge verdict-fail', text: 'arm stopped' }), ` ${a.name} at ${fmtTime(a.stopped.at)}: ${a.stopped.reason || ''} — its users get ${r.arms[0].name}.`))));
  }

  renderControls() {
    const may = this.session.who && this.session.who.canChange;
    const p = this.phase();
    const acts = [];
    if (may && !p) acts.push(['start', 'Start', 'Start the experiment: units and events count from now.']);
    if (may && p === 'running') acts.push(['stop', 'Stop', 'Stop the experiment for good: later units and events no longer count.']);
    // Conclude ships an arm: the rollout of its version, or the flag rollout of its variant (the API
    // refuses a flag bound to no service, and says so).
    if (may && (p === 'running' || p === 'stopped') && this.results && (this.results.arms || []).length) acts.push(['conclude', 'Conclude…', 'Conclude: ship the chosen arm — the rollout of its version, or the flag rollout of its variant — judged like any rollout.']);
    this.el.controls.hidden = acts.length === 0;
    this.el.controls.replaceChildren(...acts.map(([a, label, text]) => h('button', { type: 'button', 'data-action': a, class: a === 'stop' ? 'danger' : '', text: label,
      onclick: () => this.ask(a, text) })));
  }

  ask(action, text) {
    let pick = null;
    if (action === 'conclude') {
      const arms = (this.results.arms || []).map((a) => a.name);
      const winner = (this.results.decision || {}).winner;
      pick = h('select', { id: 'conclude-arm', 'aria-label': 'Arm to ship' }, arms.map((n) => h('option', { value: n, selected: n === winner, text: n + (n === winner ? ' (the winner)' : '') })));
    }
    confirmChange(`${text} (${this.name})`, async (reason) => {
      const body = { reason };
      if (pick) body.arm = pick.value;
      await post(`${this.path}/${action}`, body);
      await this.load();
    }, { reasonLabel, extra: pick ? h('label', {}, 'Arm ', pick) : null });
  }
}

// shares adds each arm's share of the units and its configured share.
function shares(arms) {
  const list = arms || [];
  const units = list.reduce((n, a) => n + (a.units || 0), 0);
  const weight = list.reduce((n, a) => n + (a.weight || 0), 0);
  return list.map((a) => ({ ...a, share: units ? a.units / units : null, expected: weight ? a.weight / weight : null }));
}

// tone says whether an arm is better or worse than control by its anytime-valid interval (one
// that excludes zero), or neither yet.
function tone(m, a) {
  const e = a.relative || a.absolute;
  const s = e && e.sequential;
  if (!s || !(s.lo > 0 || s.hi < 0)) return '';
  const up = s.lo > 0;
  return up === (m.goal !== 'decrease') ? 'better' : 'worse';
}

// ciBar draws the estimate and both intervals on a line centred at zero (no difference), scaled
// to the widest interval of the metric.
function ciBar(e, reach, cls) {
  const at = (v) => Math.max(0, Math.min(100, 50 + (50 * v) / reach)) + '%';
  const seg = (i, c) => (i && Number.isFinite(i.lo) && Number.isFinite(i.hi) ? h('span', { class: c, style: `left:${at(i.lo)};width:calc(${at(i.hi)} - ${at(i.lo)})` }) : null);
  return h('span', { class: 'ci ' + cls, role: 'img', 'aria-label': 'effect with its intervals against zero' },
    h('span', { class: 'zero' }), seg(e.fixed, 'fixed'), seg(e.sequential, 'seq'),
    Number.isFinite(e.estimate) ? h('span', { class: 'est', style: `left:${at(e.estimate)}` }) : null);
}

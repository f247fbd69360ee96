// The overview: every service with its phase, versions, weight bar, step and last verdict;
// filtered by a search box (and, for `aviary controller`'s Rollouts named NAMESPACE/NAME, by
// namespace), updated live from the event stream.
import { get } from './api.js';
import { h, debounce, phaseBadge, verdictBadge, fmtAgo } from './dom.js';

const verdictOf = {
  AnalysisPassed: 'Pass', AnalysisFailed: 'Fail', AnalysisInconclusive: 'Inconclusive',
  GatePassed: 'Pass', GateFailed: 'Fail',
};

export class Overview {
  constructor(root, session) {
    this.root = root;
    this.session = session;
    this.services = [];
    this.verdicts = new Map(); // service -> {verdict, time}
    this.filter = sessionStorage.getItem('aviary.filter') || '';
    this.namespace = sessionStorage.getItem('aviary.namespace') || '';
    this.spaces = '';
    this.refresh = debounce(() => this.load(), 150);
    this.listener = (e) => this.onEvent(e);
  }

  async open() {
    this.session.listeners.add(this.listener);
    this.input = h('input', { id: 'filter', type: 'search', placeholder: 'Filter: name, version or phase', value: this.filter,
      'aria-label': 'Filter services', oninput: () => { this.filter = this.input.value; sessionStorage.setItem('aviary.filter', this.filter); this.render(); } });
    this.nsSelect = h('select', { id: 'namespace', 'aria-label': 'Namespace', hidden: true,
      onchange: () => { this.namespace = this.nsSelect.value; sessionStorage.setItem('aviary.namespace', this.namespace); this.render(); } });
    this.count = h('span', { class: 'muted', role: 'status' });
    this.body = h('tbody');
    this.error = h('p', { class: 'error', role: 'alert' });
    this.root.replaceChildren(h('section', { id: 'overview' },
      h('div', { class: 'head' }, h('h1', { text: 'Services' }), this.nsSelect, this.input, this.count),
      this.error,
      h('div', { class: 'scroll' }, h('table', { id: 'services', class: 'services' },
        h('thead', {}, h('tr', {}, ['Service', 'Phase', 'Stable', 'Canary', 'Weight', 'Step', 'Last verdict'].map((t) => h('th', { scope: 'col', text: t })))),
        this.body))));
    try {
      const evs = await get('/api/v1/events?last=1000');
      for (const e of evs.events) this.noteVerdict(e);
    } catch { /* the verdicts fill in from the stream */ }
    await this.load();
    performance.mark('aviary:overview-rendered'); // read by bench/dashboard
  }

  close() { this.session.listeners.delete(this.listener); this.closed = true; }

  noteVerdict(e) {
    const v = verdictOf[e.kind];
    if (v) this.verdicts.set(e.service, { verdict: v, time: e.time });
    else if (e.kind === 'RolloutStarted' || e.kind === 'Retried' || e.kind === 'Restarted') this.verdicts.delete(e.service);
  }

  onEvent(e) {
    this.noteVerdict(e);
    this.refresh();
  }

  async load() {
    if (this.closed) return;
    try {
      const res = await get('/api/v1/services');
      this.services = res.services || [];
      this.error.textContent = '';
    } catch (e) {
      this.error.textContent = 'Could not read the services: ' + e.message;
    }
    if (!this.closed) this.render();
  }

  matches(s, ns) {
    if (ns && namespaceOf(s.name) !== ns) return false;
    const f = this.filter.trim().toLowerCase();
    if (!f) return true;
    const r = s.rollout || {};
    return [s.name, r.phase, r.stableVersion || s.stableVersion, r.canaryVersion].some((x) => x && String(x).toLowerCase().includes(f));
  }

  // namespaces fills the namespace filter, shown only when the services have namespaces, and
  // returns the one chosen ('' for all).
  namespaces() {
    const spaces = [...new Set(this.services.map((s) => namespaceOf(s.name)).filter(Boolean))].sort();
    this.nsSelect.hidden = spaces.length === 0;
    if (spaces.join('\n') !== this.spaces) {
      this.spaces = spaces.join('\n');
      this.nsSelect.replaceChildren(h('option', { value: '', text: 'All namespaces' }), ...spaces.map((n) => h('option', { value: n, text: n })));
    }
    const ns = spaces.includes(this.namespace) ? this.namespace : '';
    this.nsSelect.value = ns;
    return ns;
  }

  render() {
    const ns = this.namespaces();
    const shown = this.services.filter((s) => this.matches(s, ns));
    this.count.textContent = `${shown.length} of ${this.services.length}`;
    this.body.replaceChildren(...shown.map((s) => this.row(s)));
  }

  row(s) {
    const r = s.rollout || {};
    const weight = r.managed ? r.canaryWeight : (s.versions || []).filter((v) => v.name !== s.stableVersion).reduce((a, v) => a + v.weight, 0);
    const steps = r.steps || [];
    const step = r.canaryVersion && steps.length ? `${Math.min(r.currentStepIndex + 1, steps.length)} / ${steps.length}` : '—';
    const v = this.verdicts.get(s.name);
    const last = (r.checks || []).map((c) => c.lastVerdict).filter(Boolean).pop();
    const verdict = last && last.phase !== 'Running' ? { verdict: last.phase, time: last.at } : v;
    return h('tr', { 'data-service': s.name, 'data-phase': r.phase || '' },
      h('th', { scope: 'row' }, h('a', { href: '#/services/' + encodeURIComponent(s.name), text: s.name })),
      h('td', { class: 'phase' }, r.phase ? phaseBadge(r.phase) : h('span', { class: 'muted', text: 'unmanaged' })),
      h('td', { class: 'stable', text: r.stableVersion || s.stableVersion }),
      h('td', { class: 'canary', text: r.canaryVersion || '—' }),
      h('td', { class: 'weight' }, weightBar(weight || 0)),
      h('td', { class: 'step', text: step }),
      h('td', { class: 'verdict' }, verdictBadge(verdict && verdict.verdict),
        verdict && verdict.time ? h('span', { class: 'muted small', text: ' ' + fmtAgo(verdict.time) }) : null));
  }
}

// namespaceOf is the namespace of a Rollout named NAMESPACE/NAME ('' for a service of aviary serve).
function namespaceOf(name) {
  const i = String(name).indexOf('/');
  return i > 0 ? name.slice(0, i) : '';
}

export function weightBar(w) {
  const bar = h('span', { class: 'weightbar', role: 'meter', 'aria-valuemin': '0', 'aria-valuemax': '100', 'aria-valuenow': String(w),
    'aria-label': `canary ${w}%`, title: `canary ${w}%, stable ${100 - w}%` });
  const fill = h('span', { class: 'fill' });
  fill.style.width = w + '%';
  bar.append(fill);
  return h('span', { class: 'weight-cell' }, bar, h('span', { class: 'num', text: w + '%' }));
}

// The flags page: every flag in force with its state, source, default and variants, the share of
// a flag rollout in flight, and the kill switch (disable, enable) for a token that may change
// things; updated live from the event stream (flag events, and the rollouts named flag:KEY).
import { get, post } from './api.js';
import { h, debounce, phaseBadge } from './dom.js';
import { confirmChange } from './confirm.js';
import { weightBar } from './overview.js';

export class FlagsPage {
  constructor(root, session) {
    this.root = root;
    this.session = session;
    this.refresh = debounce(() => this.load(), 150);
    this.listener = (e) => { if (e.flag || String(e.service || '').startsWith('flag:')) this.refresh(); };
  }

  async open() {
    this.session.listeners.add(this.listener);
    this.body = h('tbody');
    this.error = h('p', { class: 'error', role: 'alert' });
    this.files = h('ul', { id: 'flag-files', class: 'muted' });
    this.root.replaceChildren(h('section', { id: 'flags-page' },
      h('div', { class: 'head' }, h('h1', { text: 'Flags' })),
      this.error,
      h('div', { class: 'scroll' }, h('table', { id: 'flags', class: 'services' },
        h('thead', {}, h('tr', {}, ['Flag', 'State', 'Source', 'Default', 'Variants', 'Rollout', ''].map((t) => h('th', { scope: 'col', text: t })))),
        this.body)),
      this.files));
    await this.load();
  }

  close() { this.session.listeners.delete(this.listener); this.closed = true; }

  whoChanged() { this.load(); }

  async load() {
    if (this.closed) return;
    let list;
    try {
      list = await get('/api/v1/flags');
      this.error.textContent = '';
    } catch (e) {
      // aviary controller serves Rollouts, no flags: its API has no /flags.
      this.error.textContent = e.status === 404 ? 'This server has no flags (Kubernetes mode serves Rollouts only).' : 'Could not read the flags: ' + e.message;
      return;
    }
    // A flag rollout is a rollout named flag:KEY; a flag without one answers 404.
    const rollouts = await Promise.all((list.flags || []).map((f) =>
      get('/api/v1/services/' + encodeURIComponent('flag:' + f.key) + '/rollout').catch(() => null)));
    if (this.closed) return;
    this.body.replaceChildren(...(list.flags || []).map((f, i) => this.row(f, rollouts[i])));
    const refused = ((list.status || {}).files || []).filter((x) => x.error);
    this.files.replaceChildren(...refused.map((x) => h('li', { class: 'error', text: `${x.path}: refused — ${x.error}` })));
  }

  row(f, r) {
    const canChange = this.session.who && this.session.who.canChange;
    const disabled = f.state === 'DISABLED';
    const action = disabled ? 'enable' : 'disable';
    const control = canChange ? h('button', { type: 'button', 'data-action': action, class: disabled ? '' : 'danger',
      text: disabled ? 'Enable' : 'Disable',
      onclick: () => confirmChange(disabled ? `Enable ${f.key} again?` : `Disable ${f.key} everywhere (the kill switch): every application gets its code's default?`,
        async (reason) => { await post(`/api/v1/flags/${encodeURIComponent(f.key)}/${action}`, { reason }); await this.load(); }) }) : null;
    const ks = f.killSwitch ? h('span', { class: 'muted small', text: ` by ${f.killSwitch.by}` }) : null;
    const rollout = r && r.phase ? h('a', { href: '#/services/' + encodeURIComponent('flag:' + f.key) },
      phaseBadge(r.phase), ' ', r.canaryVersion ? weightBar(r.canaryWeight || 0) : h('span', { text: r.stableVersion })) : h('span', { class: 'muted', text: '—' });
    return h('tr', { 'data-flag': f.key, 'data-state': f.state },
      h('th', { scope: 'row', text: f.key }),
      h('td', { class: 'state' }, h('span', { class: 'badge ' + (disabled ? 'verdict-fail' : 'verdict-pass'), text: f.state }), ks),
      h('td', { class: 'source', text: f.source }),
      h('td', { class: 'default', text: f.defaultVariant || '— (code default)' }),
      h('td', { class: 'variants', text: Object.keys(f.variants || {}).sort().join(', ') }),
      h('td', { class: 'rollout' }, rollout),
      h('td', { class: 'switch' }, control));
  }
}

// The dashboard's shell: sign-in, the live event stream, the confirmation dialog and the routes
// (#/ the overview, #/services/NAME a rollout, #/flags the flags, #/experiments and
// #/experiments/NAME the experiments).
import { get, post, token, Stream, APIError } from './api.js';
import { h } from './dom.js';
import { Overview } from './overview.js';
import { RolloutPage } from './rollout.js';
import { FlagsPage } from './flags.js';
import { ExperimentsPage, ExperimentPage } from './experiments.js';

const main = document.getElementById('main');
const live = document.getElementById('live');
const whoEl = document.getElementById('who');
const signout = document.getElementById('signout');

export const session = { who: null, stream: null, listeners: new Set() };
let page = null;

function setLive(on) {
  live.textContent = on ? 'live' : 'offline';
  live.className = 'live ' + (on ? 'on' : 'off');
}

function onEvent(e) {
  for (const fn of session.listeners) fn(e);
}

async function signIn() {
  try {
    session.who = await get('/api/v1/whoami');
  } catch (e) {
    if (e instanceof APIError && e.status === 401) return showSignIn(token.get() ? e.message : '');
    main.replaceChildren(h('p', { class: 'error', role: 'alert', text: 'The admin API did not answer: ' + e.message }));
    return false;
  }
  whoEl.textContent = session.who.role === 'open' ? 'open API' : session.who.role + ' token';
  signout.hidden = session.who.role === 'open';
  if (!session.stream) {
    session.stream = new Stream(onEvent, (on, err) => {
      setLive(on);
      if (err) { session.stream = null; showSignIn(err.message); }
    });
    session.stream.start();
  }
  return true;
}

function showSignIn(msg) {
  if (page) page.close();
  page = null;
  const input = h('input', { id: 'token', type: 'password', autocomplete: 'current-password', required: true, 'aria-describedby': 'token-help' });
  const form = h('form', { id: 'signin', class: 'card signin', onsubmit: async (ev) => {
    ev.preventDefault();
    token.set(input.value.trim());
    if (await signIn()) route();
  } },
  h('h1', { text: 'Sign in' }),
  h('label', { for: 'token', text: 'Admin or read token' }), input,
  h('p', { id: 'token-help', class: 'muted', text: 'The token stays in this tab (sessionStorage) and is sent only as a header to this API.' }),
  msg ? h('p', { class: 'error', role: 'alert', text: msg }) : null,
  h('button', { type: 'submit', text: 'Sign in' }));
  main.replaceChildren(form);
  input.focus();
  return false;
}

signout.addEventListener('click', () => {
  token.clear();
  if (session.stream) session.stream.stop();
  session.stream = null;
  session.who = null;
  setLive(false);
  showSignIn('');
});

function route(early) {
  if (!session.who && !early) return;
  if (page) page.close();
  const m = location.hash.match(/^#\/services\/([^/]+)$/);
  let m2;
  if (m) page = new RolloutPage(main, decodeURIComponent(m[1]), session);
  else if (location.hash === '#/flags') page = new FlagsPage(main, session);
  else if (location.hash === '#/experiments') page = new ExperimentsPage(main, session);
  else if ((m2 = location.hash.match(/^#\/experiments\/([^/]+)$/))) page = new ExperimentPage(main, decodeURIComponent(m2[1]), session);
  else page = new Overview(main, session);
  page.open();
}

window.addEventListener('hashchange', route);
// A browser keeps at most six connections to a host over HTTP/1.1: the stream of a page that is
// gone must not hold one.
window.addEventListener('pagehide', () => { if (session.stream) session.stream.stop(); session.stream = null; });
window.addEventListener('pageshow', (ev) => { if (ev.persisted && session.who) { session.who = null; signIn().then((ok) => ok && route()); } });


// The page's reads start with the sign-in check, not after it: a first render waits for one
// round of answers. Controls appear once whoami says the token may change things.
(async () => {
  const who = signIn();
  route(true);
  if (!(await who)) return;
  if (!page) route();
  else if (page.whoChanged) page.whoChanged();
})();

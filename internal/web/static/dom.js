// Small DOM helpers: elements are built with h(), never from HTML strings, so that no value from
// the API is ever read as markup.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'style') el.style.cssText = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

// One formatter for every time on the page: toLocaleString with options builds a new one at each
// call, which costs a rollout page's first render a few milliseconds per event listed.
const timeFormat = new Intl.DateTimeFormat(undefined, {
  year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: '2-digit', second: '2-digit', hour12: false,
});

export function fmtTime(t) {
  if (!t) return '';
  const d = new Date(t);
  return Number.isNaN(d.getTime()) ? '' : timeFormat.format(d);
}

export function fmtAgo(t, now = Date.now()) {
  const s = Math.max(0, Math.round((now - new Date(t).getTime()) / 1000));
  if (s < 60) return s + ' s ago';
  if (s < 3600) return Math.round(s / 60) + ' min ago';
  if (s < 86400) return Math.round(s / 3600) + ' h ago';
  return Math.round(s / 86400) + ' d ago';
}

export function fmtDuration(sec) {
  sec = Math.max(0, Math.ceil(sec));
  const m = Math.floor(sec / 60);
  const s = sec % 60;
  return m > 0 ? `${m} min ${String(s).padStart(2, '0')} s` : `${s} s`;
}

// debounce runs fn at most once per ms, after the last call in a burst (and at least every ms
// during a long one).
export function debounce(fn, ms) {
  let timer = null;
  let first = 0;
  return () => {
    const now = Date.now();
    if (!timer) first = now;
    clearTimeout(timer);
    const wait = Math.max(0, Math.min(ms, first + ms * 4 - now));
    timer = setTimeout(() => { timer = null; fn(); }, wait);
  };
}

export function phaseBadge(phase) {
  return h('span', { class: 'badge phase-' + String(phase || 'none').toLowerCase(), text: phase || '—' });
}

export function verdictBadge(v) {
  if (!v) return h('span', { class: 'muted', text: '—' });
  return h('span', { class: 'badge verdict-' + v.toLowerCase(), text: v });
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

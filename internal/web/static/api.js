// The admin API as the pages use it: the token from sessionStorage as a bearer header (never in a
// URL), JSON in and out, and the API's own message on a refusal.
const KEY = 'aviary.token';

export const token = {
  get: () => sessionStorage.getItem(KEY) || '',
  set: (t) => sessionStorage.setItem(KEY, t),
  clear: () => sessionStorage.removeItem(KEY),
};

export class APIError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function headers(extra) {
  const h = { Accept: 'application/json', ...extra };
  const t = token.get();
  if (t) h.Authorization = 'Bearer ' + t;
  return h;
}

export async function get(path, signal) {
  return answer(await fetch(path, { headers: headers(), signal, cache: 'no-store' }));
}

export async function post(path, body) {
  return answer(await fetch(path, {
    method: 'POST',
    headers: headers({ 'Content-Type': 'application/json' }),
    body: JSON.stringify(body || {}),
  }));
}

async function answer(resp) {
  let body = null;
  try { body = await resp.json(); } catch { /* not JSON */ }
  if (!resp.ok) {
    let msg = (body && body.error) || resp.status + ' ' + resp.statusText;
    if (body && body.errors) msg += ': ' + body.errors.join('; ');
    throw new APIError(resp.status, msg);
  }
  return body;
}

// Stream reads /api/v1/events/stream with fetch (EventSource cannot send a header) and calls
// onEvent for each event; it reconnects with Last-Event-ID so that nothing is missed.
export class Stream {
  constructor(onEvent, onState) {
    this.onEvent = onEvent;
    this.onState = onState;
    this.last = 0;
    this.ctrl = null;
    this.stopped = false;
  }

  start() { this.loop(); }

  stop() {
    this.stopped = true;
    if (this.ctrl) this.ctrl.abort();
  }

  async loop() {
    let delay = 500;
    while (!this.stopped) {
      this.ctrl = new AbortController();
      try {
        const h = headers({ Accept: 'text/event-stream' });
        if (this.last) h['Last-Event-ID'] = String(this.last);
        const resp = await fetch('/api/v1/events/stream', { headers: h, signal: this.ctrl.signal, cache: 'no-store' });
        if (!resp.ok) throw new APIError(resp.status, 'event stream: ' + resp.status);
        this.onState(true);
        delay = 500;
        await this.read(resp.body.getReader());
      } catch (e) {
        if (this.stopped) return;
        if (e instanceof APIError && e.status === 401) { this.onState(false, e); return; }
      }
      this.onState(false);
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 10000);
    }
  }

  async read(reader) {
    const dec = new TextDecoder();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += dec.decode(value, { stream: true });
      let cut;
      while ((cut = buf.indexOf('\n\n')) >= 0) {
        this.dispatch(buf.slice(0, cut));
        buf = buf.slice(cut + 2);
      }
    }
  }

  dispatch(block) {
    let id = 0;
    let data = '';
    for (const line of block.split('\n')) {
      if (line.startsWith('id: ')) id = Number(line.slice(4));
      else if (line.startsWith('data: ')) data += line.slice(6);
    }
    if (!data) return;
    if (id) this.last = id;
    try { this.onEvent(JSON.parse(data)); } catch { /* a malformed event is skipped */ }
  }
}

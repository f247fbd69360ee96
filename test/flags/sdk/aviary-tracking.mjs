// AviaryTrackingProvider is the OFREP provider with OpenFeature's tracking API forwarded to
// Aviary's experiments: client.track(event, context, details) becomes one event of
// POST {baseUrl}/ofrep/v1/track, with the context's targetingKey as the unit, details.value as the
// value and details.id (or a random id) as the event id. @openfeature/ofrep-provider (0.1.x) has no
// track of its own — OFREP defines no tracking endpoint — so the SDK's track would go nowhere.
// docs/experiments.md shows the same few lines for an app to copy.
import { OFREPProvider } from '@openfeature/ofrep-provider';

export class AviaryTrackingProvider extends OFREPProvider {
  constructor(options) {
    super(options);
    this.aviary = { baseUrl: options.baseUrl, headers: new Headers(options.headers) };
    this.aviary.headers.set('Content-Type', 'application/json');
    this.sent = []; // the answers, for tests: track itself returns nothing
  }

  track(trackingEventName, context, details = {}) {
    const { value, id, ...rest } = details;
    const event = { id: id ?? crypto.randomUUID(), unit: context.targetingKey, event: trackingEventName, value: value ?? 0 };
    this.sent.push(
      fetch(`${this.aviary.baseUrl}/ofrep/v1/track`, {
        method: 'POST', headers: this.aviary.headers, body: JSON.stringify({ events: [event] }),
      }).then(async (r) => ({ status: r.status, body: await r.json(), rest })),
    );
  }
}

// The OpenFeature web SDK with its OFREP provider, bundled by esbuild into the page that
// test/flags/web_test.go loads in headless Chromium. Two providers evaluate the same flags: "sse"
// with the provider's defaults (it follows the change stream the bulk answer names), and "poll",
// which polls every 200 ms with If-None-Match instead. The Go test drives window.flagsTest.
import { OpenFeature, ProviderEvents } from '@openfeature/web-sdk';
import { OFREPWebProvider } from '@openfeature/ofrep-web-provider';

const domains = ['sse', 'poll'];

window.flagsTest = {
  changes: { sse: 0, poll: 0 },
  async start(gw, key) {
    await OpenFeature.setContext({ targetingKey: 'user-1', email: 'ann@example.com' });
    const common = { baseUrl: gw, headers: [['X-API-Key', key]], cacheMode: 'disabled' };
    await OpenFeature.setProviderAndWait('sse', new OFREPWebProvider(common));
    await OpenFeature.setProviderAndWait('poll', new OFREPWebProvider({ ...common, pollInterval: 200, changeDetection: 'polling' }));
    for (const d of domains) {
      OpenFeature.getClient(d).addHandler(ProviderEvents.ConfigurationChanged, () => { this.changes[d]++; });
    }
    return true;
  },
  // values are the details every kind of flag resolves to in a domain, as plain JSON.
  values(domain) {
    const c = OpenFeature.getClient(domain);
    const pick = (d) => ({ value: d.value, variant: d.variant ?? null, reason: d.reason ?? null, errorCode: d.errorCode ?? null });
    return {
      bool: pick(c.getBooleanDetails('bool-flag', false)),
      string: pick(c.getStringDetails('string-flag', 'fallback')),
      number: pick(c.getNumberDetails('number-flag', 0)),
      object: pick(c.getObjectDetails('object-flag', {})),
      staff: pick(c.getBooleanDetails('staff-only', false)),
      missing: pick(c.getBooleanDetails('no-such-flag', true)),
    };
  },
};

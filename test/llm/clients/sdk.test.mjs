// The official OpenAI and Anthropic SDKs against the real `aviary serve` and the project's fake
// model (aviary-fakellm): chat, Responses and Messages, JSON and streams, through a plain and a
// compressing upstream, a stream the client stops, and the tokens Aviary records compared exactly
// with the usage the SDKs report. test/llm/clients_test.go starts everything and runs this file;
// AVIARY_GW and AVIARY_ADMIN are the gateway's and the admin API's base URLs.
//
// Each scenario is pinned to a version of the service by the x-aviary-version header (a route),
// so that a version's token totals on /metrics are exactly the scenario's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';

const gw = process.env.AVIARY_GW;
const admin = process.env.AVIARY_ADMIN;
assert.ok(gw && admin, 'AVIARY_GW and AVIARY_ADMIN must be set (test/llm/clients_test.go sets them)');

const openai = (version) =>
  new OpenAI({ apiKey: 'test', baseURL: `${gw}/v1`, maxRetries: 0, defaultHeaders: { 'x-aviary-version': version } });
const anthropic = (version) =>
  new Anthropic({ apiKey: 'test', baseURL: gw, maxRetries: 0, defaultHeaders: { 'x-aviary-version': version } });

const messages = [{ role: 'user', content: 'Tell me about canaries.' }];

// Every SDK call of the scenarios that report usage, by API and form; each returns the usage
// the SDK saw as {input, output}.
const calls = {
  'chat JSON': async (v) => {
    const r = await openai(v).chat.completions.create({ model: 'm', messages });
    assert.ok(r.choices[0].message.content.length > 0);
    return { input: r.usage.prompt_tokens, output: r.usage.completion_tokens };
  },
  'chat stream with usage': async (v) => {
    const s = await openai(v).chat.completions.create({ model: 'm', messages, stream: true, stream_options: { include_usage: true } });
    let usage, text = '';
    for await (const c of s) {
      if (c.usage) usage = c.usage;
      text += c.choices[0]?.delta?.content ?? '';
    }
    assert.ok(text.length > 0 && usage, 'a streamed answer and its usage');
    return { input: usage.prompt_tokens, output: usage.completion_tokens };
  },
  'chat n=2 with a tool': async (v) => {
    const r = await openai(v).chat.completions.create({
      model: 'm', messages, n: 2,
      tools: [{ type: 'function', function: { name: 'lookup', parameters: { type: 'object', properties: {} } } }],
    });
    assert.equal(r.choices.length, 2);
    assert.equal(r.choices[1].message.tool_calls[0].function.name, 'lookup');
    JSON.parse(r.choices[1].message.tool_calls[0].function.arguments);
    return { input: r.usage.prompt_tokens, output: r.usage.completion_tokens };
  },
  'responses JSON': async (v) => {
    const r = await openai(v).responses.create({ model: 'm', input: 'Tell me about canaries.', instructions: 'Be brief.' });
    assert.ok(r.output_text.length > 0);
    return { input: r.usage.input_tokens, output: r.usage.output_tokens };
  },
  'responses stream': async (v) => {
    const s = await openai(v).responses.create({ model: 'm', input: 'Tell me about canaries.', stream: true });
    let done;
    for await (const e of s) if (e.type === 'response.completed') done = e.response;
    assert.ok(done, 'response.completed');
    return { input: done.usage.input_tokens, output: done.usage.output_tokens };
  },
  'messages JSON': async (v) => {
    const m = await anthropic(v).messages.create({ model: 'm', max_tokens: 200, system: 'Be brief.', messages });
    assert.equal(m.content[0].type, 'text');
    return { input: m.usage.input_tokens, output: m.usage.output_tokens };
  },
  'messages stream': async (v) => {
    const m = await anthropic(v).messages.stream({ model: 'm', max_tokens: 200, messages }).finalMessage();
    assert.ok(m.content[0].text.length > 0);
    return { input: m.usage.input_tokens, output: m.usage.output_tokens };
  },
};

// metrics reads Aviary's /metrics: the value of every sample, by its name and labels as written.
async function metrics() {
  const text = await (await fetch(`${admin}/metrics`)).text();
  const out = new Map();
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (m) out.set(m[1] + (m[2] ?? ''), Number(m[3]));
  }
  return out;
}

const sample = (name, labels) =>
  name + '{' + Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, val]) => `${k}="${val}"`).join(',') + '}';

const tokens = (version, type) => sample('aviary_llm_tokens_total', { role: 'primary', service: 'chat', type, version });
const perVersion = (name, version) => sample(name, { role: 'primary', service: 'chat', version });

// until polls Aviary's metrics until check holds: a record lands when the answer's body is closed,
// a moment after the SDK has what it needs. It fails with what it saw after 20 s.
async function until(what, check) {
  let m;
  for (const deadline = Date.now() + 20000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 50))) {
    m = await metrics();
    if (check(m)) return m;
  }
  assert.fail(`${what}: not so after 20 s`);
}

for (const version of ['plain', 'packed']) {
  test(`the tokens Aviary records are the SDKs' usage, exactly (${version} upstream)`, async () => {
    const want = { input: 0, output: 0 };
    for (const [name, call] of Object.entries(calls)) {
      const u = await call(version).catch((e) => assert.fail(`${name}: ${e}`));
      assert.ok(u.input > 0 && u.output > 0, `${name}: usage ${JSON.stringify(u)}`);
      want.input += u.input;
      want.output += u.output;
    }
    const m = await until(`${version}: Aviary's tokens equal the SDKs' ${JSON.stringify(want)}`,
      (m) => m.get(tokens(version, 'input')) === want.input && m.get(tokens(version, 'output')) === want.output);
    assert.equal(m.get(perVersion('aviary_llm_stream_errors_total', version)) ?? 0, 0, 'no stream errors');
    assert.equal(m.get(sample('aviary_llm_requests_total', {
      gen_ai_request_model: 'm', gen_ai_response_model: 'm', role: 'primary', service: 'chat', version,
    })), Object.keys(calls).length, 'every call recorded, with its model');
  });
}

test('the usage chunk Aviary asks for never reaches a client that did not ask', async () => {
  const s = await openai('hidden').chat.completions.create({ model: 'm', messages, stream: true });
  let chunks = 0;
  for await (const c of s) {
    chunks++;
    assert.ok(c.choices.length > 0, `a chunk without choices reached the client: ${JSON.stringify(c)}`);
    assert.equal(c.usage ?? null, null, 'no usage for a client that did not ask');
  }
  assert.ok(chunks > 2);
  // Aviary knows the tokens all the same: the fake's 40 output tokens.
  await until('the hidden usage recorded', (m) => m.get(tokens('hidden', 'output')) === 40);
});

test('a client that stops a stream is a client abort, not a stream error', async () => {
  const s = await openai('stopped').chat.completions.create({ model: 'm', messages, stream: true });
  let content = 0;
  for await (const c of s) {
    if (c.choices[0]?.delta?.content) content++;
    if (content === 3) break; // leaving the loop aborts the request: a "stop generating" button
  }
  const m = await until('the abort recorded', (m) => m.get(perVersion('aviary_llm_client_aborts_total', 'stopped')) === 1);
  assert.equal(m.get(perVersion('aviary_llm_stream_errors_total', 'stopped')) ?? 0, 0, 'not a stream error');
  const out = m.get(tokens('stopped', 'output'));
  assert.ok(out >= 3 && out < 200, `output tokens as far as the stream went: ${out}`);
});

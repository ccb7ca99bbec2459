// Chat prompts: a model's Jinja chat template from tokenizer_config.json rendered as transformers does (the expected
// strings written out by hand from the template), the 'default' entry of a template list, the plain template without
// one, and a template that does not parse named by its file; through the server, the rendered prompt is what is encoded.
import { cpSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setBackend } from '../../src/backend/registry.js';
import { loadModelDir } from '../../src/models/dir.js';
import { chatTemplateOf, PLAIN_CHAT } from '../../src/serve/chat.js';
import { BatchEngine } from '../../src/serve/engine.js';
import { createServer, type MoekitServer } from '../../src/serve/http.js';
import { ServerMetrics } from '../../src/serve/metrics.js';
import { tempDir } from '../helpers/tmp.js';

const CHATML = "{% for m in messages %}{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
const SHORT = '{% for m in messages %}{{ m.role[0] }}>{{ m.content }}|{% endfor %}a>'; // fits the tiny model's context of 64
const LLAMA = "{{ bos_token }}{% for m in messages %}[{{ m.role | upper }}] {{ m.content }}{{ eos_token }}{% endfor %}";
const dir = tempDir('moekit-chat-');
const write = (name: string, cfg: unknown): string => {
  const d = path.join(dir, name);
  cpSync('test/fixtures/legacy-run', d, { recursive: true });
  writeFileSync(path.join(d, 'tokenizer_config.json'), JSON.stringify(cfg));
  return d;
};
const msgs = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: [{ type: 'text' as const, text: 'Hello' }] }];

describe('chat templates', () => {
  it('renders the model\'s template with add_generation_prompt', () => {
    const t = chatTemplateOf(write('chatml', { chat_template: CHATML }));
    expect(t.fromModel).toBe(true);
    expect(t.render(msgs)).toBe('<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n');
  });
  it('passes bos_token and eos_token (strings or {content}) and takes the default of a template list', () => {
    const t = chatTemplateOf(write('llama', { chat_template: [{ name: 'tool_use', template: 'x' }, { name: 'default', template: LLAMA }], bos_token: { content: '<s>' }, eos_token: '</s>' }));
    expect(t.render(msgs)).toBe('<s>[SYSTEM] Be brief.</s>[USER] Hello</s>');
  });
  it('falls back to the plain template, and names a template that does not parse', () => {
    expect(chatTemplateOf('test/fixtures/legacy-run')).toBe(PLAIN_CHAT);
    expect(PLAIN_CHAT.render(msgs)).toBe('system: Be brief.\nuser: Hello\nassistant:');
    expect(() => chatTemplateOf(write('broken', { chat_template: '{% for m in messages %}' }))).toThrow(/tokenizer_config\.json: chat_template does not parse/);
  });
});

describe('the server encodes the rendered template', () => {
  let s: MoekitServer;
  let url = '';
  let encode: (t: string) => number[];
  beforeAll(async () => {
    await setBackend('js');
    const loaded = await loadModelDir(write('served', { chat_template: SHORT }));
    encode = (t) => loaded.tokenizer!.encode(t);
    const metrics = new ServerMetrics();
    s = createServer({ loaded, engine: new BatchEngine(loaded.model, { maxBatch: 2, observer: metrics }), metrics, modelId: 'm', maxQueue: 4, timeoutMs: 30_000 });
    url = await s.app.listen({ host: '127.0.0.1', port: 0 });
  });
  afterAll(async () => s.app.close());
  it('prompt_tokens counts the rendered prompt, with no BOS added', async () => {
    const r = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 2, temperature: 0 }) });
    const j = (await r.json()) as { usage: { prompt_tokens: number } };
    expect(r.status, JSON.stringify(j)).toBe(200);
    expect(j.usage.prompt_tokens).toBe(encode('u>Hi|a>').length);
  });
});

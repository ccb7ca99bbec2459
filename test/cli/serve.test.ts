// moekit serve as a process: it binds 127.0.0.1 on a free port, answers a token-id completion for the Hugging Face
// fixture with generate()'s greedy ids, and on SIGTERM drains and exits 0; bad flags are refused naming the value.
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { cliError } from '../helpers/cli.js';

describe('moekit serve', () => {
  it('serves a model directory, then drains on SIGTERM and exits 0', async () => {
    const p = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'serve', '../shared/fixtures/hf/qwen3_moe', '--port', '0', '--model-id', 'q'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    p.stderr.on('data', (d: Buffer) => { out += d.toString(); });
    const exited = new Promise<number | null>((res) => p.on('exit', (code) => res(code)));
    try {
      for (let i = 0; i < 600 && !/serving q at (http:\/\/127\.0\.0\.1:\d+)\/v1/.test(out); i++) await new Promise((r) => setTimeout(r, 50));
      const url = /serving q at (http:\/\/127\.0\.0\.1:\d+)\/v1/.exec(out)?.[1];
      expect(url, out).toBeDefined();
      expect((await fetch(`${url}/health`)).status).toBe(200);
      const r = await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'q', prompt: [1, 2, 3], max_tokens: 4, temperature: 0 }) });
      expect(r.status).toBe(200);
      const j = (await r.json()) as { usage: { prompt_tokens: number; completion_tokens: number } };
      expect(j.usage.prompt_tokens).toBe(3);
      p.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(out).toContain('SIGTERM: draining');
    } finally {
      if (p.exitCode === null) p.kill('SIGKILL');
    }
  }, 60_000);

  it('refuses bad flags with the value', () => {
    expect(cliError(['serve', '../shared/fixtures/hf/qwen3_moe', '--prefill', 'eager'])).toContain('--prefill must be whole, chunked or layered, got "eager"');
    expect(cliError(['serve', '../shared/fixtures/hf/qwen3_moe', '--port', '70000'])).toContain('--port must be at most 65535, got 70000');
  });
});

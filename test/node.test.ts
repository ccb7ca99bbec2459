// The 'moekit/node' entry: the main API re-exported unchanged, plus the Node-only parts (corpora, tokenizer files,
// GLUE/line readers, model directories, checkpoints). Everything below is called through the entry and checked
// against a reference computed here: ops on js and wasm against plain loops, a model directory round trip against the
// model it was saved from, a BPE tokenizer file against the merges it was written from, the readers against the
// files' own bytes.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import * as index from '../src/index.js';
import * as node from '../src/node.js';
import { maxAbsDiff } from './helpers/compare.js';
import { tempDir } from './helpers/tmp.js';

const tmp = tempDir('moekit-node-');

/** What src/node.ts adds to the main entry (its named exports that are values). */
const NODE_ONLY = [
  'BROWN_GENRES', 'loadBrown', 'splitBrown', 'brownGenreTask', 'brownDir', 'trainBpe', 'saveTokenizerJson', 'loadTokenizer', 'tokenizerJson',
  'readGlueTsv', 'readSst2', 'readMrpc', 'loadWikitext', 'WIKITEXT_FILES', 'readLines', 'ExpertStore', 'writeOffloadFile', 'train', 'sampleBatch',
  'Checkpoint', 'loadHfModel', 'readHfConfig', 'exportHf', 'loadModelDir', 'saveModelDir', 'materialize', 'MOEKIT_MODEL_FORMAT',
  'TraceWriter', 'readTrace', 'TRACE_FORMAT', 'TRACE_VERSION', 'traceModel', 'traceShape', 'readNpyTrace', 'writeNpy', 'parseNpyHeader',
  'readMegatronJsonl', 'writeMegatronJsonl', 'readPlanFile', 'writePlanFile', 'parsePlan', 'createServer', 'ServerMetrics',
  'exportGguf', 'ggufTensors', 'GGUF_ARCHS', 'GGUF_DTYPES', 'writeGguf', 'readGgufHeader', 'ggmlEncode',
] as const;

it('re-exports every binding of the main entry unchanged and adds the Node-only ones the main entry leaves out', () => {
  const main = Object.keys(index);
  expect(main.length).toBeGreaterThan(50);
  for (const k of main) expect((node as Record<string, unknown>)[k], k).toBe((index as Record<string, unknown>)[k]);
  for (const k of NODE_ONLY) {
    expect((node as Record<string, unknown>)[k], k).toBeDefined();
    expect(k in index, `${k} stays out of the main (browser) entry`).toBe(false);
  }
  expect(Object.keys(node).sort()).toEqual([...main, ...NODE_ONLY].sort());
});

describe('the engine through moekit/node', () => {
  // softmax(a · w) over the last axis, in double precision with plain loops
  const [M, K, N] = [5, 7, 3];
  const a = Float32Array.from({ length: M * K }, (_, i) => Math.sin(i * 0.7) * 2);
  const w = Float32Array.from({ length: K * N }, (_, i) => Math.cos(i * 1.3));
  const want: number[] = [];
  for (let m = 0; m < M; m++) {
    const z = Array.from({ length: N }, (_, n) => {
      let s = 0;
      for (let k = 0; k < K; k++) s += a[m * K + k]! * w[k * N + n]!;
      return s;
    });
    const mx = Math.max(...z);
    const e = z.map((x) => Math.exp(x - mx));
    const t = e.reduce((x, y) => x + y, 0);
    want.push(...e.map((x) => x / t));
  }
  const run = (b: index.Backend): Float32Array => {
    node.useBackend(b);
    try {
      return node.tidy(() => Float32Array.from(node.softmax(node.matmul(node.tensor(a, [M, K]), node.tensor(w, [K, N])), -1).dataSync()));
    } finally {
      node.useBackend(new node.JsBackend());
    }
  };

  it('softmax(matmul) on the js and wasm backends equals plain loops', async () => {
    const js = run(new node.JsBackend());
    const wasm = await node.WasmBackend.create({ threads: 1 });
    try {
      const got = run(wasm);
      const dj = maxAbsDiff(js, want);
      const dw = maxAbsDiff(got, js);
      console.log(`moekit/node softmax(matmul): js vs plain loops max |diff| ${dj.toExponential(2)}, wasm vs js ${dw.toExponential(2)}`);
      // float32 accumulation of 7 products of magnitude <= 2, then exp: a few ulps of values in [0, 1]
      expect(dj).toBeLessThan(1e-6);
      expect(dw).toBeLessThan(1e-6);
    } finally {
      await wasm.dispose();
    }
  });

  it('a model saved with saveModelDir loads back with loadModelDir: same config, weights and logits', async () => {
    node.useBackend(new node.JsBackend());
    const model = new node.MoELM({ ...node.PRESETS.tiny, seed: 3 });
    const dir = path.join(tmp, 'model');
    await node.saveModelDir(model, dir, { eosTokenIds: [0] });
    const info = JSON.parse(readFileSync(path.join(dir, 'moekit.json'), 'utf8')) as { format: string; config: unknown };
    expect(info.format).toBe(node.MOEKIT_MODEL_FORMAT);
    const back = await node.loadModelDir(dir);
    expect(back.kind).toBe('moekit');
    expect(back.config).toEqual(model.cfg);
    expect(back.eosTokenIds).toEqual([0]);
    // every parameter: through the loaded model, and read straight from model.safetensors with Checkpoint
    const ck = await node.Checkpoint.open(dir);
    const loaded = new Map(back.model.parameters());
    let worst = 0;
    try {
      for (const [n, p] of model.parameters()) {
        worst = Math.max(worst, maxAbsDiff(loaded.get(n)!.dataSync(), p.dataSync()), maxAbsDiff(await ck.readF32(n), p.dataSync()));
      }
    } finally {
      await ck.close();
    }
    expect(loaded.size).toBe(model.parameters().length);
    const ids = node.tensor(Int32Array.from({ length: 12 }, (_, i) => (i * 37) % model.cfg.vocabSize), [1, 12], 'i32');
    const logits = (m: index.MoELM): Float32Array => node.noGrad(() => node.tidy(() => Float32Array.from(m.forward(ids, { aux: false }).logits.dataSync())));
    const d = maxAbsDiff(logits(back.model), logits(model));
    console.log(`moekit/node model directory round trip: weights max |diff| ${worst}, logits max |diff| ${d}`);
    expect(worst).toBe(0); // F32 written, F32 read
    expect(d).toBe(0); // same weights, same backend
  });
});

describe('the Node-only readers', () => {
  it('loadBrown reads every file of the installed corpus, in id order, split and labelled by genre', () => {
    const files = readdirSync(node.brownDir()).filter((f) => /^c[a-r]\d\d$/.test(f)).sort();
    const docs = node.loadBrown();
    expect(docs.map((d) => d.id)).toEqual(files);
    expect(docs.length).toBe(500);
    expect(new Set(docs.map((d) => d.genre))).toEqual(new Set(node.BROWN_GENRES.map((g) => g.letter)));
    // the first file's words, tags stripped, in order (the text joins them with detokenized spacing)
    const raw = readFileSync(path.join(node.brownDir(), files[0]!), 'latin1').split(/\s+/).filter((t) => t.length > 0);
    const words = raw.map((t) => t.slice(0, t.lastIndexOf('/'))).filter((x) => x !== '``' && x !== "''");
    const text = docs[0]!.text.replace(/"/g, ' ');
    let at = 0;
    for (const x of words) {
      const i = text.indexOf(x, at);
      expect(i, `word "${x}" of ${files[0]} after offset ${at}`).toBeGreaterThanOrEqual(0);
      at = i + x.length;
    }
    const s = node.splitBrown(docs);
    const parts = [...s.train, ...s.valid, ...s.test].map((d) => d.id).sort();
    expect(parts).toEqual(files); // a partition
    for (const g of node.BROWN_GENRES) for (const split of [s.train, s.valid, s.test]) expect(split.some((d) => d.genre === g.letter), g.letter).toBe(true);
  });

  it('a BPE tokenizer trained on Brown, saved and loaded encodes as its merges say and decodes back to the text', () => {
    const docs = node.loadBrown();
    const bpe = node.trainBpe(docs.slice(0, 40).map((d) => d.text), { vocabSize: 600 });
    const file = path.join(tmp, 'tokenizer.json');
    node.saveTokenizerJson(bpe, file);
    const tok = node.loadTokenizer(file);
    expect(tok.vocabSize).toBe(bpe.vocab.size);
    expect(tok.tokenId('<|endoftext|>')).toBe(0);
    // reference: GPT-2's byte-level BPE, applied with the model's merges by rank
    const bytesToUnicode = (): string[] => {
      const bs: number[] = [];
      for (let b = 33; b <= 126; b++) bs.push(b);
      for (let b = 161; b <= 172; b++) bs.push(b);
      for (let b = 174; b <= 255; b++) bs.push(b);
      const out = new Array<string>(256);
      let n = 0;
      for (let b = 0; b < 256; b++) out[b] = String.fromCodePoint(bs.includes(b) ? b : 256 + n++);
      return out;
    };
    const b2u = bytesToUnicode();
    const rank = new Map(bpe.merges.map(([l, r], i) => [`${l} ${r}`, i]));
    const encodeRef = (text: string): number[] => {
      const out: number[] = [];
      for (const m of text.matchAll(/'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu)) {
        let sym = Array.from(new TextEncoder().encode(m[0]), (b) => b2u[b]!);
        for (;;) {
          let best = -1;
          let bestRank = Infinity;
          for (let i = 0; i + 1 < sym.length; i++) {
            const r = rank.get(`${sym[i]} ${sym[i + 1]}`);
            if (r !== undefined && r < bestRank) [best, bestRank] = [i, r];
          }
          if (best < 0) break;
          const [l, r] = bpe.merges[bestRank]!;
          const next: string[] = [];
          for (let i = 0; i < sym.length; i++) {
            if (i + 1 < sym.length && sym[i] === l && sym[i + 1] === r) next.push(sym[i++]! + sym[i]!);
            else next.push(sym[i]!);
          }
          sym = next;
        }
        out.push(...sym.map((s) => bpe.vocab.get(s)!));
      }
      return out;
    };
    let tokens = 0;
    let bytes = 0;
    for (const d of docs.slice(450, 455)) {
      const text = d.text.slice(0, 2000);
      const ids = tok.encode(text);
      expect(ids).toEqual(encodeRef(text));
      expect(tok.decode(ids)).toBe(text);
      tokens += ids.length;
      bytes += new TextEncoder().encode(text).length;
    }
    console.log(`moekit/node BPE (${bpe.merges.length} merges): ${tokens} tokens for ${bytes} bytes of held-out Brown text`);
    expect(tokens).toBeLessThan(bytes); // the merges apply
  });

  it('readLines, readSst2 and readMrpc return what the files hold', () => {
    const lines = ['\u00e9t\u00e9 \u{1F600} first', '', 'third\twith a tab', 'last'];
    const f = path.join(tmp, 'lines.txt');
    writeFileSync(f, '\uFEFF' + lines.join('\r\n') + '\n');
    // 3-byte chunks: the multi-byte characters straddle chunk boundaries
    expect([...node.readLines(f, 3)]).toEqual(lines);
    expect([...node.readLines(f)]).toEqual(lines);
    const sst = path.join(tmp, 'sst.tsv');
    writeFileSync(sst, 'sentence\tlabel\nit is good \t1\nbad , really\t0\n');
    expect(node.readSst2(sst)).toEqual([{ text: 'it is good ', label: 1 }, { text: 'bad , really', label: 0 }]);
    const mrpc = path.join(tmp, 'mrpc.tsv');
    writeFileSync(mrpc, 'Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t11\t12\tA cat sat .\tThe cat sat .\n0\t13\t14\tNo .\tYes .\n');
    expect(node.readMrpc(mrpc)).toEqual([{ text: 'A cat sat .', text2: 'The cat sat .', label: 1 }, { text: 'No .', text2: 'Yes .', label: 0 }]);
  });
});

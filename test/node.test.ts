// The 'moekit/node' entry re-exports the main API and adds the Node-only readers.
import { expect, it } from 'vitest';
import * as node from '../src/node.js';

it('moekit/node exposes the engine and the data readers', () => {
  expect(typeof node.matmul).toBe('function');
  expect(typeof node.loadBrown).toBe('function');
  expect(typeof node.trainBpe).toBe('function');
  expect(node.BROWN_GENRES).toHaveLength(15);
});

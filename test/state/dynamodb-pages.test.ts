import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  decodePage,
  encodePage,
  keyHash,
  lineVersions,
  type PageEntry,
  PageLayout,
  pageHolds,
  pageLine,
  pageOfSortKey,
  pageSortKey,
  pageTarget,
  planSplit,
} from '../../framework/src/state/dynamodb-pages.js';

const keys = Array.from({ length: 1_000 }, (_, i) => `sensor-${i}`);

describe('page layout: the trie of pages', () => {
  test('the key hash spreads similar keys evenly over the low bits pages split on', () => {
    for (const bit of [0, 1, 4, 9]) {
      const ones = keys.filter((k) => (keyHash(k) >>> bit) & 1).length;
      assert.ok(ones > 430 && ones < 570, `bit ${bit}: ${ones} of 1,000 keys`);
    }
    assert.equal(keyHash('sensor-1'), keyHash('sensor-1'));
  });

  test('a key is in exactly one leaf, whichever pages are split, and the leaf holds its hash', () => {
    const layout = new PageLayout();
    assert.deepEqual(layout.pageOf(keyHash('a')), { d: 0, b: 0 });
    layout.split(0, 0);
    layout.split(1, 1);
    layout.split(2, 1);
    const leaves = new Map<string, number>();
    for (const k of keys) {
      const id = layout.pageOf(keyHash(k));
      assert.ok(pageHolds(id, keyHash(k)));
      assert.ok(!layout.isSplit(id));
      leaves.set(pageSortKey(id), (leaves.get(pageSortKey(id)) ?? 0) + 1);
    }
    // 0 -> (1.0, 1.1); 1.1 -> (2.1, 2.3); 2.1 -> (3.1, 3.5): leaves 1.0, 2.3, 3.1, 3.5.
    assert.deepEqual([...leaves.keys()].sort(), ['p:1.0', 'p:2.3', 'p:3.1', 'p:3.5']);
    assert.deepEqual(pageOfSortKey('p:3.5'), { d: 3, b: 5 });
  });

  test('the directory encodes the splits in a few bytes and decodes to the same view; views merge', () => {
    const layout = new PageLayout();
    const queue = [{ d: 0, b: 0 }];
    for (let i = 0; i < 300; i++) {
      const id = queue.shift()!;
      layout.split(id.d, id.b);
      queue.push({ d: id.d + 1, b: id.b }, { d: id.d + 1, b: id.b + 2 ** id.d });
    }
    const bytes = layout.encode();
    assert.ok(bytes.length <= 80, `${bytes.length} bytes for 300 splits`);
    const back = PageLayout.decode(bytes);
    assert.equal(back.splits, 300);
    for (const k of keys) assert.deepEqual(back.pageOf(keyHash(k)), layout.pageOf(keyHash(k)));
    const partial = PageLayout.decode(new PageLayout().encode());
    assert.equal(partial.splits, 0);
    partial.merge(back);
    assert.equal(partial.splits, 300);
  });

  test('a split plan puts every key in one leaf, each expected to fit, within the cap', () => {
    const entries = keys.map((key) => ({ key, hash: keyHash(key), bytes: 150 }));
    const { splits, leaves } = planSplit({ d: 0, b: 0 }, entries, 0.2, 850, 64);
    const seen = leaves.flatMap((l) => l.keys);
    assert.equal(seen.length, 1_000);
    assert.equal(new Set(seen).size, 1_000);
    for (const leaf of leaves) {
      for (const k of leaf.keys) assert.ok(pageHolds(leaf.id, keyHash(k)));
      assert.ok(leaf.keys.length * 151 * 0.2 <= 850, `${leaf.keys.length} keys in ${pageSortKey(leaf.id)}`);
    }
    assert.equal(splits.length, leaves.length - 1, 'a binary trie');
    assert.deepEqual(splits[0], { d: 0, b: 0 });
    // Capped: at most 32 pages, however much is left over the target.
    assert.equal(planSplit({ d: 0, b: 0 }, entries, 1, 850, 32).leaves.length, 32);
    // One key is never split, however large.
    assert.deepEqual(planSplit({ d: 2, b: 1 }, [{ key: 'big', hash: 5, bytes: 100_000 }], 1, 850, 32).splits, []);
  });

  test('a page target keeps the item within one write unit, or whole units for long partition keys', () => {
    assert.equal(pageTarget(88), 1024 - 88 - 70);
    assert.ok(pageTarget(800) + 800 + 70 <= 2048 && pageTarget(800) >= 512);
  });
});

describe('page layout: the page payload', () => {
  const entry = (key: string, ttl: number, json: string): [string, PageEntry] => [key, { line: pageLine(key, ttl, json), ttl }];

  test('any key survives the round trip (empty, tabs, newlines, quotes, non-BMP); deflated once it pays', () => {
    const odd = ['', 'a\tb', 'line\nbreak', '"quoted"', '😀 snow ☃', 'k'];
    const small = new Map(odd.map((k, i) => entry(k, 1_800_000_000 + i, `[{"o":${i},"v":"{\\"n\\":${i}}"}]`)));
    const encoded = encodePage(small);
    const back = decodePage(encoded.payload, encoded.deflated);
    assert.deepEqual([...back.keys()], odd);
    for (const [k, e] of small) assert.deepEqual(back.get(k), e);
    assert.equal(lineVersions(back.get('a\tb')!.line), '[{"o":1,"v":"{\\"n\\":1}"}]');
    const big = new Map(
      keys
        .slice(0, 40)
        .map((k, i) =>
          entry(k, 1_800_000_000, `[{"o":${4000 + i},"v":"{\\"c\\":1767225604475,\\"w\\":[[1767225600000,1767225610000,[${i}]]]}"}]`),
        ),
    );
    const z = encodePage(big);
    assert.ok(z.deflated && z.bytes < z.rawBytes / 3, `${z.rawBytes} bytes deflated to ${z.bytes}`);
    assert.deepEqual(decodePage(z.payload, true), big);
    assert.equal(encodePage(new Map([entry('k', 1, '[]')])).deflated, false, 'too small to pay');
  });
});

'use strict';
const test = require('node:test');
const assert = require('node:assert');
const path = require('node:path');
const ex = require('../experiments.js');
// GrowthBook's published SDK vectors, the same file the server's tests read.
const cases = require(path.join(__dirname, '../../../tests/growth/experiments/growthbook_cases.json'));

function close(a, b) { return Math.abs(a - b) < 1e-9; }

test('hash matches every GrowthBook hash vector (v1, v2, unknown version)', () => {
  for (const [seed, value, version, expected] of cases.hash) {
    assert.strictEqual(ex.hash(seed, value, version), expected, `${seed}/${value}/v${version}`);
  }
});

test('bucketRanges matches every GrowthBook getBucketRange vector', () => {
  for (const [name, [n, coverage, weights], expected] of cases.getBucketRange) {
    const got = ex.bucketRanges(n, coverage, weights);
    assert.strictEqual(got.length, expected.length, name);
    got.forEach((r, i) => assert.ok(close(r[0], expected[i][0]) && close(r[1], expected[i][1]), name));
  }
});

test('chooseVariation matches every GrowthBook vector', () => {
  for (const [name, n, ranges, expected] of cases.chooseVariation) {
    assert.strictEqual(ex.chooseVariation(n, ranges), expected, name);
  }
});

test('inNamespace matches every GrowthBook vector', () => {
  for (const [name, id, ns, expected] of cases.inNamespace) {
    assert.strictEqual(ex.inNamespace(id, ns), expected, name);
  }
});

test('equalWeights matches every GrowthBook getEqualWeights vector', () => {
  for (const [n, expected] of cases.getEqualWeights) {
    const got = ex.equalWeights(n);
    assert.strictEqual(got.length, expected.length);
    got.forEach((w, i) => assert.ok(Math.abs(w - expected[i]) < 1e-8));
  }
});

test('assign agrees with the server worked example in docs/experiments.md', () => {
  // hash("bubble-title", "user-1", 2) = 0.1524 -> variant 0 of a 50/50 split.
  assert.strictEqual(ex.hash('bubble-title', 'user-1', 2), 0.1524);
  assert.strictEqual(ex.assign('user-1', { seed: 'bubble-title', weights: [0.5, 0.5], coverage: 1 }), 0);
});

test('assign takes the namespace as the API gives it ({id, start, end}) and as an array', () => {
  const users = Array.from({ length: 400 }, (_, i) => 'openid-' + i);
  const asArray = { seed: 'ns-test', weights: [0.5, 0.5], coverage: 1, namespace: ['shelf', 0, 0.5] };
  const asObject = { ...asArray, namespace: { id: 'shelf', start: 0, end: 0.5 } };
  let included = 0;
  for (const u of users) {
    const a = ex.assign(u, asArray);
    assert.strictEqual(ex.assign(u, asObject), a, u);
    if (a >= 0) included += 1;
  }
  assert.ok(included > 120 && included < 280, `about half in the namespace, got ${included}`);
});

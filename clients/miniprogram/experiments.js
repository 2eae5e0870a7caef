'use strict';
// GrowthBook-compatible bucketing for the mini-program: the same functions as the server's
// livecommerce/growth/experiments/bucketing.py, a port of growthbook/growthbook
// packages/sdk-js/src/util.ts (MIT). Both pass GrowthBook's SDK test vectors
// (tests/growth/experiments/growthbook_cases.json), so a phone computes its variant offline
// exactly as the server and GrowthBook SDKs do. No dependencies; ES2017.

// FNV-1a 32-bit over UTF-16 code units (charCodeAt), as GrowthBook's SDKs do.
function fnv1a32(str) {
  var h = 0x811c9dc5;
  for (var i = 0; i < str.length; i++) {
    h ^= str.charCodeAt(i);
    h += (h << 1) + (h << 4) + (h << 7) + (h << 8) + (h << 24);
  }
  return h >>> 0;
}

// A bucket in [0, 1): version 2 (10,000 buckets) is what experiments use; version 1 only for
// namespaces. null for an unknown version.
function hash(seed, value, version) {
  if (version === 2) return (fnv1a32(fnv1a32(seed + value) + '') % 10000) / 10000;
  if (version === 1) return (fnv1a32(value + seed) % 1000) / 1000;
  return null;
}

function equalWeights(n) {
  if (n <= 0) return [];
  var out = [];
  for (var i = 0; i < n; i++) out.push(1 / n);
  return out;
}

// One [start, end) per variant; coverage clamped to [0, 1]; bad weights -> equal weights.
function bucketRanges(n, coverage, weights) {
  coverage = coverage === undefined || coverage === null ? 1 : coverage;
  coverage = Math.min(1, Math.max(0, coverage));
  var equal = equalWeights(n);
  weights = weights || equal;
  if (weights.length !== n) weights = equal;
  var total = weights.reduce(function (s, w) { return s + w; }, 0);
  if (total < 0.99 || total > 1.01) weights = equal;
  var cumulative = 0;
  return weights.map(function (w) {
    var start = cumulative;
    cumulative += w;
    return [start, start + coverage * w];
  });
}

function chooseVariation(n, ranges) {
  for (var i = 0; i < ranges.length; i++) {
    if (n >= ranges[i][0] && n < ranges[i][1]) return i;
  }
  return -1;
}

// `namespace` is GrowthBook's array [id, start, end] (push frames) or the API's object
// {id, start, end} (GET /api/experiments/assignments' definitions).
function inNamespace(hashId, namespace) {
  if (!Array.isArray(namespace)) namespace = [namespace.id, namespace.start, namespace.end];
  var n = hash('__' + namespace[0], hashId, 1);
  return n !== null && n >= namespace[1] && n < namespace[2];
}

// The variant index for `user` (the openid) or -1 when not included. `exp` is one item of
// GET /api/experiments/assignments' `definitions`: {seed, weights, coverage, namespace}.
function assign(user, exp) {
  if (exp.namespace && !inNamespace(user, exp.namespace)) return -1;
  return chooseVariation(hash(exp.seed, user, 2), bucketRanges(exp.weights.length, exp.coverage, exp.weights));
}

module.exports = { fnv1a32: fnv1a32, hash: hash, equalWeights: equalWeights, bucketRanges: bucketRanges,
  chooseVariation: chooseVariation, inNamespace: inNamespace, assign: assign };

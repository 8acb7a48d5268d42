"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const { MetricsStore } = require("../dist/metrics.js");

test("a snapshot summarises each metric", () => {
  const store = new MetricsStore();
  store.record("latency_ms", 10, 1);
  store.record("latency_ms", 30, 2);
  store.record("errors", 1, 3);
  assert.deepEqual(store.snapshot(), {
    errors: { count: 1, last: 1, mean: 1 },
    latency_ms: { count: 2, last: 30, mean: 20 },
  });
});

test("subscribers hear every sample until they leave", () => {
  const store = new MetricsStore();
  const heard = [];
  const leave = store.subscribe((sample) => heard.push(sample.value));
  store.record("cpu", 0.5);
  leave();
  store.record("cpu", 0.7);
  assert.deepEqual(heard, [0.5]);
});

test("a value that is not a number is refused", () => {
  assert.throws(() => new MetricsStore().record("cpu", NaN), RangeError);
});

"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const { add } = require("../dist/add.js");

test("add", () => {
  assert.equal(add(1, 2), 3);
});

"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const { stockRow } = require("../src/stock.js");

test("stockRow", () => {
  assert.equal(stockRow({ sku: "A-1", name: "Anvil", quantity: 2 }), "A-1  Anvil: 2 on hand");
  assert.equal(stockRow({ sku: "B-2", name: "Bolt", quantity: 0 }), "B-2  Bolt: out of stock");
});

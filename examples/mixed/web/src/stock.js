"use strict";

/**
 * One row of the stock table, as the page shows it.
 * @param {{sku: string, name: string, quantity: number}} item
 * @returns {string}
 */
function stockRow(item) {
  const state = item.quantity === 0 ? "out of stock" : `${item.quantity} on hand`;
  return `${item.sku}  ${item.name}: ${state}`;
}

module.exports = { stockRow };

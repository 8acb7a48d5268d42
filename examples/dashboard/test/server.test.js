"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const { createServer } = require("../dist/server.js");

async function listening(server) {
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return `http://127.0.0.1:${server.address().port}`;
}

test("GET /health answers and an unknown path is a 404", async () => {
  const server = createServer();
  const base = await listening(server);
  try {
    const health = await fetch(`${base}/health`);
    assert.equal(health.status, 200);
    assert.deepEqual(await health.json(), { ok: true });
    assert.equal((await fetch(`${base}/nowhere`)).status, 404);
  } finally {
    server.closeAllConnections(); // fetch keeps sockets alive: close() waits for them
    server.close();
  }
});

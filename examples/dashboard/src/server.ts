/** The HTTP server: routes by method and path, `GET /health` built in. */

import * as http from "node:http";
import type { Duplex } from "node:stream";

export interface Route {
  method: string;
  path: string;
  handle(req: http.IncomingMessage, res: http.ServerResponse): void;
}

export type UpgradeHandler = (req: http.IncomingMessage, socket: Duplex) => boolean;

export function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(text),
  });
  res.end(text);
}

export function createServer(routes: Route[] = [], upgrades: UpgradeHandler[] = []): http.Server {
  const all: Route[] = [
    { method: "GET", path: "/health", handle: (_req, res) => sendJson(res, 200, { ok: true }) },
    ...routes,
  ];
  const server = http.createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://localhost").pathname;
    const route = all.find((r) => r.method === req.method && r.path === path);
    if (route === undefined) {
      sendJson(res, 404, { error: `no route for ${req.method} ${path}` });
      return;
    }
    route.handle(req, res);
  });
  server.on("upgrade", (req: http.IncomingMessage, socket: Duplex) => {
    if (!upgrades.some((handler) => handler(req, socket))) {
      socket.end("HTTP/1.1 404 Not Found\r\n\r\n");
    }
  });
  return server;
}

import { createHash } from "node:crypto";
import * as crypto from "crypto";

export function digests(password: string, body: string): string[] {
  return [
    // ruleid: js-weak-hash
    createHash("md5").update(password).digest("hex"),
    // ruleid: js-weak-hash
    crypto.createHash('sha1').update(body).digest("hex"),
    // ruleid: js-weak-hash
    crypto.createHmac("SHA1", "k").update(body).digest("hex"),
    // ok: js-weak-hash
    createHash("sha256").update(body).digest("hex"),
    // ok: js-weak-hash
    crypto.createHash("sha512").update(body).digest("hex"),
  ];
}

const WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

export function acceptKey(key: string): string {
  // ok: js-weak-hash
  return createHash("sha1").update(key + WS_GUID).digest("base64");
}

export function acceptKeyInline(key: string): string {
  // ok: js-weak-hash
  return crypto.createHash("sha1").update(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest("base64");
}

export function notTheHandshake(key: string): string {
  // ruleid: js-weak-hash
  return createHash("sha1").update(key + "some-other-salt").digest("base64");
}

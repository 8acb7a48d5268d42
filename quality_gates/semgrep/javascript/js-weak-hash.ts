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

const https = require("https");

// ruleid: js-tls-verify-off
const agent = new https.Agent({ keepAlive: true, rejectUnauthorized: false });
// ruleid: js-tls-verify-off
process.env.NODE_TLS_REJECT_UNAUTHORIZED = "0";
// ruleid: js-tls-verify-off
process.env["NODE_TLS_REJECT_UNAUTHORIZED"] = 0;

function request(url, options) {
  // ruleid: js-tls-verify-off
  options.rejectUnauthorized = false;
  return https.get(url, options);
}

// ok: js-tls-verify-off
const strict = new https.Agent({ keepAlive: true, rejectUnauthorized: true });
// ok: js-tls-verify-off
const pinned = new https.Agent({ ca: process.env.CA_PEM });
module.exports = { agent, strict, pinned, request };

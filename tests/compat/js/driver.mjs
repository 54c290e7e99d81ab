// Drives Postmark's official Node client for tests/compat (see tests/compat/js_client.py).
//
// One JSON request per stdin line, one JSON reply per stdout line, in order:
//   {"op": "describe"}
//     -> {"ok": true, "result": {"version": "5.1.0", "methods": {"server": [...], "account": [...]}}}
//   {"client": "server"|"account", "token": "...", "host": "127.0.0.1:8000", "method": "sendEmail", "args": [...]}
//     -> {"ok": true, "result": <what the client resolved>, "http": {"method", "path", "status"}}
//     -> {"ok": false, "error": {"name", "statusCode", "code", "message", "recipients"}, "http": ...}
// "http" is the last request the client made (null when it made none), seen through the client's
// own `fetch` option, so callers learn the status of calls that succeed too. A request's "id", if
// any, is echoed in its reply.
import { createRequire } from "node:module";
import { createInterface } from "node:readline";

import postmark from "postmark";

const require = createRequire(import.meta.url);
const { version } = require("postmark/package.json");

const CLASSES = { server: postmark.ServerClient, account: postmark.AccountClient };
const clients = new Map();
let lastHttp = null;

async function recordingFetch(input, init) {
  const url = new URL(String(input));
  lastHttp = { method: init?.method ?? "GET", path: url.pathname + url.search, status: null };
  const response = await fetch(input, init);
  lastHttp.status = response.status;
  return response;
}

function publicMethods(cls) {
  return Object.getOwnPropertyNames(cls.prototype)
    .filter((name) => name !== "constructor" && typeof cls.prototype[name] === "function")
    .sort();
}

function clientFor(kind, token, host) {
  const key = JSON.stringify([kind, token, host]);
  if (!clients.has(key)) {
    const options = { requestHost: host, useHttps: false, timeout: 10, fetch: recordingFetch };
    clients.set(key, new CLASSES[kind](token, options));
  }
  return clients.get(key);
}

async function handle(request) {
  lastHttp = null;
  if (request.op === "describe") {
    const methods = Object.fromEntries(Object.entries(CLASSES).map(([kind, cls]) => [kind, publicMethods(cls)]));
    return { ok: true, result: { version, methods } };
  }
  const cls = CLASSES[request.client];
  if (cls === undefined || !publicMethods(cls).includes(request.method)) {
    throw new TypeError(`no method ${request.client}.${request.method} in postmark ${version}`);
  }
  const client = clientFor(request.client, request.token, request.host);
  const result = await client[request.method](...(request.args ?? []));
  return { ok: true, result: result ?? null, http: lastHttp };
}

function describeError(error) {
  return {
    name: error?.name ?? "Error",
    statusCode: error?.statusCode ?? null,
    code: error?.code ?? null,
    message: String(error?.message ?? error),
    recipients: error?.recipients ?? null,
  };
}

for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
  if (line.trim() === "") continue;
  let request = {};
  let reply;
  try {
    request = JSON.parse(line);
    reply = await handle(request);
  } catch (error) {
    reply = { ok: false, error: describeError(error), http: lastHttp };
  }
  process.stdout.write(JSON.stringify({ id: request.id ?? null, ...reply }) + "\n");
}

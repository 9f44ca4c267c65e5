#!/usr/bin/env node
'use strict';
// Loopback HTTP proxy between sqs_ingest and the SQS emulator that injects
// failures and latency on demand.
//
//   node test/fault-proxy.js --listen PORT [--host 127.0.0.1] --target http://127.0.0.1:EMUPORT
//                            [--exit-with-parent]
//
// Requests are forwarded byte for byte, Host header included: the SigV4
// signature covers it, so the emulator must see what the client signed.
//
// Control, on the same port:
//   POST /__fault         {"delayMs": N,
//                          "deleteDelayMs": N,         (more delay for delete calls only)
//                          "deleteFailure": null | "http500" | "failed-entries" | "reset" | "hang",
//                          "deleteFailureCount": N,     (only the next N delete calls; absent = all)
//                          "receiveFailure": null | "http500" | "throttle" | "reset",
//                          "receiveFailureCount": N,
//                          "corruptBodies": N}          (garble the Body of the next N received
//                                                        messages, leaving their MD5OfBody)
//                         replaces the whole fault setting; {} clears it.
//   GET  /__fault         the current setting
//   GET  /__fault/stats   {"<Action>": {"forwarded": n, "failed": n}, ...}
//   POST /__fault/stats/reset
//
// "http500" answers 500 InternalError without forwarding; "throttle" answers
// 400 ThrottlingException, as SQS does past a rate quota; "failed-entries"
// answers 200 with every entry of the batch under Failed, without forwarding;
// "reset" destroys the client's connection; "hang" never answers, as an
// unreachable SQS would not, until the client gives up. delayMs holds every proxied
// request (a stand-in for the round trip to AWS). Prints "READY <port>".

const http = require('http');
const { exitWithParent } = require('./lib/process');

const JSON_TYPE = 'application/x-amz-json-1.0';
const DELETE_ACTIONS = new Set(['DeleteMessageBatch', 'DeleteMessage']);

function usage(msg) {
  if (msg) process.stderr.write(`fault-proxy: ${msg}\n`);
  process.stderr.write('usage: fault-proxy.js --listen PORT [--host HOST] --target URL [--exit-with-parent]\n');
  process.exit(2);
}

const opts = { listen: null, host: '127.0.0.1', target: null, exitWithParent: false };
{
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--exit-with-parent') {
      opts.exitWithParent = true;
      continue;
    }
    if (i + 1 >= argv.length) usage(`${a} needs a value`);
    if (a === '--listen') opts.listen = Number(argv[++i]);
    else if (a === '--host') opts.host = argv[++i];
    else if (a === '--target') opts.target = new URL(argv[++i]);
    else usage(`unknown argument ${a}`);
  }
  if (!Number.isInteger(opts.listen) || opts.listen < 0 || opts.listen > 65535) usage('--listen PORT is required');
  if (!opts.target || opts.target.protocol !== 'http:') usage('--target http://HOST:PORT is required');
}

const upstreamAgent = new http.Agent({ keepAlive: true, maxSockets: Infinity });

let fault = {};
let stats = {};

function validateFault(f) {
  if (!f || typeof f !== 'object' || Array.isArray(f)) return 'fault setting must be a JSON object';
  const known = ['delayMs', 'deleteDelayMs', 'deleteFailure', 'deleteFailureCount', 'receiveFailure', 'receiveFailureCount',
    'corruptBodies'];
  for (const k of Object.keys(f)) if (!known.includes(k)) return `unknown key ${k}`;
  for (const k of ['delayMs', 'deleteDelayMs', 'deleteFailureCount', 'receiveFailureCount', 'corruptBodies']) {
    if (f[k] !== undefined && f[k] !== null && !(Number.isInteger(f[k]) && f[k] >= 0)) {
      return `${k} must be a non-negative integer`;
    }
  }
  if (![undefined, null, 'http500', 'failed-entries', 'reset', 'hang'].includes(f.deleteFailure)) {
    return 'deleteFailure must be null, "http500", "failed-entries", "reset" or "hang"';
  }
  if (![undefined, null, 'http500', 'throttle', 'reset'].includes(f.receiveFailure)) {
    return 'receiveFailure must be null, "http500", "throttle" or "reset"';
  }
  return null;
}

function count(action, what) {
  const a = action || '(none)';
  if (!stats[a]) stats[a] = { forwarded: 0, failed: 0, corrupted: 0 };
  stats[a][what] += 1;
}

function reply(res, status, doc, extraHeaders) {
  const body = JSON.stringify(doc);
  res.writeHead(status, Object.assign({
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(body),
  }, extraHeaders || {}));
  res.end(body);
}

// The failure planned for this call, if any; consumes one of a limited count.
function takeFailure(action) {
  let kind = null;
  let countKey = null;
  if (DELETE_ACTIONS.has(action) && fault.deleteFailure) {
    kind = fault.deleteFailure;
    countKey = 'deleteFailureCount';
  } else if (action === 'ReceiveMessage' && fault.receiveFailure) {
    kind = fault.receiveFailure;
    countKey = 'receiveFailureCount';
  }
  if (!kind) return null;
  if (Number.isInteger(fault[countKey])) {
    if (fault[countKey] <= 0) return null;
    fault[countKey] -= 1;
  }
  return kind;
}

function injectFailure(kind, action, req, res, body) {
  count(action, 'failed');
  if (kind === 'hang') return;
  if (kind === 'reset') {
    const sock = req.socket;
    if (typeof sock.resetAndDestroy === 'function') sock.resetAndDestroy();
    else sock.destroy();
    return;
  }
  if (kind === 'failed-entries' && action === 'DeleteMessageBatch') {
    let entries = [];
    try {
      entries = JSON.parse(body.toString('utf8')).Entries || [];
    } catch (e) {
      entries = [];
    }
    reply(res, 200, {
      Successful: [],
      Failed: entries.map((e) => ({
        Id: e.Id, SenderFault: false, Code: 'InternalError', Message: 'Injected failure: entry not deleted.',
      })),
    }, { 'Content-Type': JSON_TYPE });
    return;
  }
  if (kind === 'throttle') {
    reply(res, 400, { __type: 'com.amazonaws.sqs#ThrottlingException', message: 'Rate exceeded.' },
      { 'Content-Type': JSON_TYPE, 'x-amzn-query-error': 'ThrottlingException;Sender' });
    return;
  }
  // http500, and failed-entries on a single DeleteMessage (it has no entries)
  reply(res, 500, { __type: 'InternalError', message: 'Injected failure: service unavailable.' },
    { 'Content-Type': JSON_TYPE, 'x-amzn-query-error': 'InternalError;Receiver' });
}

function forward(action, req, res, body) {
  const up = http.request({
    host: opts.target.hostname,
    port: opts.target.port || 80,
    method: req.method,
    path: req.url,
    headers: req.rawHeaders, // as received: names, values and order
    setHost: false,
    agent: upstreamAgent,
  }, (upRes) => {
    count(action, 'forwarded');
    if (action === 'ReceiveMessage' && fault.corruptBodies > 0 && upRes.statusCode === 200) {
      corruptBodies(upRes, res);
      return;
    }
    res.writeHead(upRes.statusCode, upRes.statusMessage, upRes.rawHeaders);
    upRes.pipe(res);
    upRes.on('error', () => res.destroy());
  });
  up.on('error', (err) => {
    count(action, 'failed');
    if (!res.headersSent) {
      reply(res, 502, { __type: 'InternalError', message: `fault-proxy: upstream unreachable: ${err.message}` },
        { 'Content-Type': JSON_TYPE });
    } else {
      res.destroy();
    }
  });
  // A client that gives up (e.g. during a long poll) takes its upstream call along.
  res.on('close', () => {
    if (!res.writableFinished) up.destroy();
  });
  up.end(body);
}

// Change received bodies in transit, as a broken network path would; the
// MD5OfBody that SQS computed stays as it was.
function corruptBodies(upRes, res) {
  const chunks = [];
  upRes.on('data', (c) => chunks.push(c));
  upRes.on('error', () => res.destroy());
  upRes.on('end', () => {
    let out = Buffer.concat(chunks);
    try {
      const doc = JSON.parse(out.toString('utf8'));
      for (const m of doc.Messages || []) {
        if (!(fault.corruptBodies > 0)) break;
        m.Body = m.Body.replace(/.$/, (c) => (c === 'X' ? 'Y' : 'X'));
        fault.corruptBodies -= 1;
        count('ReceiveMessage', 'corrupted');
      }
      out = Buffer.from(JSON.stringify(doc));
    } catch (e) {
      // not JSON: pass it on untouched
    }
    const headers = Object.assign({}, upRes.headers, { 'content-length': out.length });
    res.writeHead(upRes.statusCode, headers);
    res.end(out);
  });
}

function control(req, res, body) {
  const path = req.url.split('?')[0];
  if (req.method === 'GET' && path === '/__fault') return reply(res, 200, fault);
  if (req.method === 'GET' && path === '/__fault/stats') return reply(res, 200, stats);
  if (req.method === 'POST' && path === '/__fault/stats/reset') {
    stats = {};
    return reply(res, 200, stats);
  }
  if (req.method === 'POST' && path === '/__fault') {
    let f;
    try {
      f = JSON.parse(body.toString('utf8') || '{}');
    } catch (e) {
      return reply(res, 400, { error: `invalid JSON: ${e.message}` });
    }
    const err = validateFault(f);
    if (err) return reply(res, 400, { error: err });
    fault = f;
    return reply(res, 200, fault);
  }
  return reply(res, 404, { error: `no control endpoint ${req.method} ${path}` });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', async () => {
    const body = Buffer.concat(chunks);
    if (req.url.startsWith('/__fault')) return control(req, res, body);
    const target = String(req.headers['x-amz-target'] || '');
    const action = target.startsWith('AmazonSQS.') ? target.slice('AmazonSQS.'.length) : target;
    if (fault.delayMs) await sleep(fault.delayMs);
    if (fault.deleteDelayMs && DELETE_ACTIONS.has(action)) await sleep(fault.deleteDelayMs);
    if (res.destroyed) return;
    const kind = takeFailure(action);
    if (kind) return injectFailure(kind, action, req, res, body);
    return forward(action, req, res, body);
  });
});

// Idle longer than clients do, so a reused connection is never closed under them.
server.keepAliveTimeout = 120 * 1000;
server.headersTimeout = 121 * 1000;
server.requestTimeout = 0;
server.maxRequestsPerSocket = 0;
server.on('clientError', (err, socket) => socket.destroy());

server.listen(opts.listen, opts.host, () => {
  process.stdout.write(`READY ${server.address().port}\n`);
});
server.on('error', (err) => {
  process.stderr.write(`fault-proxy: ${err.message}\n`);
  process.exit(1);
});

function shutdown() {
  server.close(() => process.exit(0));
  server.closeAllConnections();
  upstreamAgent.destroy();
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
if (opts.exitWithParent) exitWithParent(shutdown);

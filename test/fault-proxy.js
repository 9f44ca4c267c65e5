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
// The action is read from X-Amz-Target (the JSON protocol) or from the
// form's Action (the Query protocol); injected errors are answered in the
// protocol of the request.
//
// Control, on the same port:
//   POST /__fault         {"delayMs": N,
//                          "deleteDelayMs": N,         (more delay for delete calls only)
//                          "deleteFailure": null | "http500" | "throttle" | "failed-entries" | "reset" | "hang"
//                                           | "denied" | "gone",
//                          "deleteFailureCount": N,     (only the next N delete calls; absent = all)
//                          "receiveFailure": null | "http500" | "throttle" | "reset",
//                          "receiveFailureCount": N,
//                          "corruptBodies": N,          (garble the Body of the next N received
//                                                        messages, leaving their MD5OfBody)
//                          "receiveSplitMs": N}         (send the first half of each ReceiveMessage
//                                                        answer at once, the rest N ms later)
//                         replaces the whole fault setting; {} clears it.
//   GET  /__fault         the current setting
//   GET  /__fault/stats   {"<Action>": {"forwarded": n, "failed": n}, ...}
//   POST /__fault/stats/reset
//
// "http500" answers 500 InternalError without forwarding; "throttle" answers
// 400 ThrottlingException, as SQS does past a rate quota; "failed-entries"
// answers 200 with every entry of the batch under Failed, without forwarding;
// "reset" destroys the client's connection; "hang" never answers, as an
// unreachable SQS would not, until the client gives up; "denied" answers 403
// AccessDenied, as SQS does to credentials without sqs:DeleteMessage; "gone"
// answers 400 QueueDoesNotExist, as SQS does once the queue is deleted. delayMs holds every proxied
// request (a stand-in for the round trip to AWS). Prints "READY <port>".

const http = require('http');
const {
  parseArgs, portNumber, httpUrl, withBody, sendJson, sqsCall, Refusal, controlApi, upstream,
  passThrough, serve,
} = require('./lib/server');

const JSON_TYPE = 'application/x-amz-json-1.0';
const DELETE_ACTIONS = new Set(['DeleteMessageBatch', 'DeleteMessage']);

const opts = parseArgs('fault-proxy.js', {
  listen: { value: 'PORT', parse: portNumber, required: true, key: 'port' },
  target: { value: 'URL', parse: httpUrl, required: true },
});
const target = upstream(opts.target);

let fault = {};
let stats = {};

function validateFault(f) {
  if (!f || typeof f !== 'object' || Array.isArray(f)) return 'fault setting must be a JSON object';
  const known = ['delayMs', 'deleteDelayMs', 'deleteFailure', 'deleteFailureCount', 'receiveFailure', 'receiveFailureCount',
    'corruptBodies', 'receiveSplitMs'];
  for (const k of Object.keys(f)) if (!known.includes(k)) return `unknown key ${k}`;
  for (const k of ['delayMs', 'deleteDelayMs', 'deleteFailureCount', 'receiveFailureCount', 'corruptBodies',
    'receiveSplitMs']) {
    if (f[k] !== undefined && f[k] !== null && !(Number.isInteger(f[k]) && f[k] >= 0)) {
      return `${k} must be a non-negative integer`;
    }
  }
  if (![undefined, null, 'http500', 'throttle', 'failed-entries', 'reset', 'hang', 'denied', 'gone']
    .includes(f.deleteFailure)) {
    return 'deleteFailure must be null, "http500", "throttle", "failed-entries", "reset", "hang", "denied" or "gone"';
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

// An AWS error as the request's protocol has it: JSON, or Query's XML.
function sendError(res, query, status, code, type, message) {
  if (query) {
    const xml = '<?xml version="1.0"?><ErrorResponse xmlns="http://queue.amazonaws.com/doc/2012-11-05/">'
      + `<Error><Type>${type}</Type><Code>${code}</Code><Message>${message}</Message><Detail/></Error>`
      + '<RequestId>fault-proxy</RequestId></ErrorResponse>';
    res.writeHead(status, { 'Content-Type': 'text/xml', 'Content-Length': Buffer.byteLength(xml) });
    res.end(xml);
    return;
  }
  sendJson(res, status, { __type: code === 'ThrottlingException' ? `com.amazonaws.sqs#${code}` : code, message },
    { 'Content-Type': JSON_TYPE, 'x-amzn-query-error': `${code};${type}` });
}

function injectFailure(kind, action, query, req, res, body) {
  count(action, 'failed');
  if (kind === 'hang') return;
  if (kind === 'reset') {
    const sock = req.socket;
    if (typeof sock.resetAndDestroy === 'function') sock.resetAndDestroy();
    else sock.destroy();
    return;
  }
  if (kind === 'failed-entries' && action === 'DeleteMessageBatch' && !query) {
    let entries = [];
    try {
      entries = JSON.parse(body.toString('utf8')).Entries || [];
    } catch (e) {
      entries = [];
    }
    sendJson(res, 200, {
      Successful: [],
      Failed: entries.map((e) => ({
        Id: e.Id, SenderFault: false, Code: 'InternalError', Message: 'Injected failure: entry not deleted.',
      })),
    }, { 'Content-Type': JSON_TYPE });
    return;
  }
  if (kind === 'throttle') {
    sendError(res, query, 400, 'ThrottlingException', 'Sender', 'Rate exceeded.');
    return;
  }
  if (kind === 'denied') {
    sendError(res, query, 403, query ? 'AccessDenied' : 'com.amazon.coral.service#AccessDeniedException', 'Sender',
      'User: arn:aws:iam::000000000000:user/ingest is not authorized to perform: sqs:deletemessage on resource: '
      + 'arn:aws:sqs:us-east-1:000000000000:queue because no identity-based policy allows the sqs:deletemessage action');
    return;
  }
  if (kind === 'gone') {
    sendError(res, query, 400, query ? 'AWS.SimpleQueueService.NonExistentQueue' : 'com.amazonaws.sqs#QueueDoesNotExist',
      'Sender', 'The specified queue does not exist.');
    return;
  }
  // http500, and failed-entries on a single DeleteMessage (it has no entries)
  // or in the Query protocol
  sendError(res, query, 500, 'InternalError', 'Receiver', 'Injected failure: service unavailable.');
}

function forward(action, req, res, body) {
  passThrough(target, req, body, res, (upRes) => {
    count(action, 'forwarded');
    if (action === 'ReceiveMessage' && fault.corruptBodies > 0 && upRes.statusCode === 200) {
      corruptBodies(upRes, res);
      return true;
    }
    if (action === 'ReceiveMessage' && fault.receiveSplitMs > 0 && upRes.statusCode === 200) {
      splitAnswer(upRes, res, fault.receiveSplitMs);
      return true;
    }
    return false;
  }, () => count(action, 'failed'));
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

// Send an answer in two pieces, the second splitMs after the first, as a
// slow network path would: SQS answered (and started the visibility
// timeout of the messages) before the first piece.
function splitAnswer(upRes, res, splitMs) {
  const chunks = [];
  upRes.on('data', (c) => chunks.push(c));
  upRes.on('error', () => res.destroy());
  upRes.on('end', () => {
    const out = Buffer.concat(chunks);
    const half = Math.floor(out.length / 2);
    res.writeHead(upRes.statusCode, Object.assign({}, upRes.headers, { 'content-length': out.length }));
    res.write(out.subarray(0, half));
    setTimeout(() => res.end(out.subarray(half)), splitMs);
  });
}

const control = controlApi({
  'GET /__fault': () => fault,
  'GET /__fault/stats': () => stats,
  'POST /__fault/stats/reset': () => {
    stats = {};
    return stats;
  },
  'POST /__fault': (f) => {
    const err = validateFault(f);
    if (err) throw new Refusal(err);
    fault = f;
    return fault;
  },
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const server = http.createServer(withBody(async (req, res, body) => {
  if (req.url.startsWith('/__fault')) return control(req, res, body);
  const { action, query } = sqsCall(req, body);
  if (fault.delayMs) await sleep(fault.delayMs);
  if (fault.deleteDelayMs && DELETE_ACTIONS.has(action)) await sleep(fault.deleteDelayMs);
  if (res.destroyed) return undefined;
  const kind = takeFailure(action);
  if (kind) return injectFailure(kind, action, query, req, res, body);
  return forward(action, req, res, body);
}));

serve(server, 'fault-proxy', Object.assign({ onShutdown: () => target.close() }, opts));

#!/usr/bin/env node
'use strict';
// A scripted hostile SQS endpoint for the tests: it stands between
// sqs_ingest and the SQS emulator, forwards every request untouched, and on
// demand answers the next calls of an action with one of the ways a real
// network or a broken endpoint answers: empty, truncated, wrong-shaped or
// non-JSON documents, invalid UTF-8, NUL bytes, oversized or deeply nested
// documents, malformed chunked encoding, stalls, resets, redirects, error
// statuses, out-of-range values, more messages than asked for.
//
//   node test/hostile-endpoint.js --listen PORT [--host 127.0.0.1] --target http://127.0.0.1:EMUPORT
//                                 [--cert FILE --key FILE] [--exit-with-parent]
//
// Requests are forwarded byte for byte, Host header included (the SigV4
// signature covers it). With --cert and --key (PEM) it speaks HTTPS: with no
// script, a TLS front for the emulator.
//
// Control, on the same port:
//   POST /__hostile        {"<Action>": {"case": NAME, "count": N}, ...}
//                          the next N calls (absent: every call) of each action
//                          named are answered as the case says; replaces the
//                          whole script, {} clears it.
//   GET  /__hostile        the current script
//   GET  /__hostile/cases  {"<case>": {"actions": [...], "invents": bool}, ...}
//                          (invents: answers with messages of its own making)
//   GET  /__hostile/stats  {"<Action>": {"forwarded": n, "served": {"<case>": n}},
//                           "clientClosed": n,  stalled connections the client gave up on
//                           "redirectsFollowed": n,
//                           "synthetic": [{"case", "MessageId", "ReceiptHandle", "user_id"}],
//                           "syntheticDeleted": [ReceiptHandle, ...]}
//   POST /__hostile/stats/reset
//
// Cases that change a message invent it ("synthetic" messages, receipt
// handles starting "hostile-"): the queue's real messages are never lost to
// a test. Deletes of synthetic handles are answered here. Prints
// "READY <port>".

const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const https = require('https');
const {
  parseArgs, portNumber, httpUrl, withBody, sendJson, sqsJsonAction, Refusal, controlApi, upstream,
  passThrough, serve,
} = require('./lib/server');

const JSON_TYPE = 'application/x-amz-json-1.0';
const ACTIONS = ['ReceiveMessage', 'DeleteMessageBatch', 'GetQueueAttributes'];
const ALL = ACTIONS;
const RECEIVE = ['ReceiveMessage'];
const ATTRIBUTES = ['GetQueueAttributes'];
const DELETE = ['DeleteMessageBatch'];
// cases that answer a receive with messages of their own making
const INVENTS = ['ReceiveMessage'];
// past the client's 16 MiB cap on a response
const HUGE_BYTES = 17 * 1024 * 1024;
// deeper than any parser's stack allows
const DEEP_LEVELS = 200000;
// longest a stalled connection is held if the client never gives up
const STALL_LIMIT_MS = 10 * 60 * 1000;

const opts = parseArgs('hostile-endpoint.js', {
  listen: { value: 'PORT', parse: portNumber, required: true, key: 'port' },
  target: { value: 'URL', parse: httpUrl, required: true },
  cert: { value: 'FILE' },
  key: { value: 'FILE' },
}, (o) => (!o.cert !== !o.key ? '--cert and --key go together' : null));
const target = upstream(opts.target);
const md5 = (buf) => crypto.createHash('md5').update(buf).digest('hex');

let script = {};
let stats;
function resetStats() {
  stats = { clientClosed: 0, redirectsFollowed: 0, synthetic: [], syntheticDeleted: [] };
  for (const a of ACTIONS) stats[a] = { forwarded: 0, served: {} };
}
resetStats();

// ---------------------------------------------------------------------
// ways of answering

function sendRaw(res, status, headers, body) {
  res.writeHead(status, headers);
  res.end(body);
}

function sendAwsJson(res, status, text, extra) {
  const body = Buffer.isBuffer(text) ? text : Buffer.from(text, 'utf8');
  sendRaw(res, status, Object.assign({ 'Content-Type': JSON_TYPE, 'Content-Length': body.length,
    'x-amzn-requestid': crypto.randomUUID() }, extra || {}), body);
}

// Write bytes straight to the connection, bypassing node's HTTP framing.
function writeSocket(ctx, bytes, then) {
  const sock = ctx.req.socket;
  sock.removeAllListeners('timeout');
  sock.write(bytes, () => {
    if (then === 'end') sock.end();
    else if (then === 'reset') resetSocket(sock);
  });
}

function resetSocket(sock) {
  if (typeof sock.resetAndDestroy === 'function') sock.resetAndDestroy();
  else sock.destroy();
}

// Hold the connection open, saying nothing more, until the client gives up.
function stall(ctx) {
  const sock = ctx.req.socket;
  const timer = setTimeout(() => sock.destroy(), STALL_LIMIT_MS);
  timer.unref();
  sock.on('close', () => {
    clearTimeout(timer);
    stats.clientClosed += 1;
  });
}

const headerBlock = (status, reason, headers) =>
  `HTTP/1.1 ${status} ${reason}\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;

// The document a well-behaved endpoint would give: forwarded for real.
function fetchUpstream(ctx) {
  return new Promise((resolve, reject) => {
    const up = target.request(ctx.req, (upRes) => {
      const chunks = [];
      upRes.on('data', (c) => chunks.push(c));
      upRes.on('end', () => resolve({ status: upRes.statusCode, headers: upRes.headers, body: Buffer.concat(chunks) }));
      upRes.on('error', reject);
    });
    up.on('error', reject);
    up.end(ctx.body);
  });
}

// A valid document for the action, from upstream; its text.
async function goodDocument(ctx) {
  const r = await fetchUpstream(ctx);
  stats[ctx.action].forwarded += 1;
  const text = r.body.toString('utf8');
  if (r.status !== 200) throw new Error(`upstream answered ${r.status}: ${text.slice(0, 200)}`);
  return text === '' ? '{}' : text;
}

function requestJson(ctx) {
  try {
    return JSON.parse(ctx.body.toString('utf8'));
  } catch (e) {
    return {};
  }
}

// A message sqs_ingest would store as a row, under the case's name.
function syntheticMessage(ctx, overrides) {
  const userId = `hostile-${ctx.caseName}-${crypto.randomBytes(4).toString('hex')}`;
  const body = JSON.stringify({
    user_id: userId, app_version: '1.2.3', device_type: 'android', ip: '10.0.0.1',
    locale: 'US', device_id: '123-45-6789',
  });
  const m = {
    MessageId: crypto.randomUUID(),
    ReceiptHandle: `hostile-${crypto.randomBytes(12).toString('hex')}`,
    MD5OfBody: md5(body),
    Body: body,
    Attributes: { SentTimestamp: String(Date.now()), ApproximateReceiveCount: '1' },
  };
  Object.assign(m, overrides || {});
  if (overrides && overrides.Attributes) m.Attributes = Object.assign({}, m.Attributes, overrides.Attributes);
  stats.synthetic.push({ case: ctx.caseName, MessageId: m.MessageId, ReceiptHandle: m.ReceiptHandle, user_id: userId });
  return m;
}

function receiveWith(ctx, messages) {
  sendAwsJson(ctx.res, 200, JSON.stringify({ Messages: messages }));
}

// A body without user_id: a dead letter, which keeps the message's
// SentTimestamp and receive count.
const DEAD_BODY = JSON.stringify({ note: 'no user_id: a dead letter' });

const WRONG_SHAPES = {
  ReceiveMessage: '{"Messages":"none"}',
  DeleteMessageBatch: '{"Successful":"all","Failed":{"Id":"0"}}',
  GetQueueAttributes: '{"Attributes":["ApproximateNumberOfMessages",3]}',
};

// name -> [actions, serve(ctx)]
const CASES = {
  // 200 with nothing in it (local-aws-sqs answers an empty receive so)
  empty: [ALL, (ctx) => sendRaw(ctx.res, 200, { 'Content-Type': JSON_TYPE, 'Content-Length': 0 }, '')],
  // a complete HTTP answer whose document stops half-way
  truncated: [ALL, async (ctx) => {
    const doc = await goodDocument(ctx);
    sendAwsJson(ctx.res, 200, doc.slice(0, Math.max(1, Math.floor(doc.length / 2))));
  }],
  // Content-Length promises more than comes before the connection closes
  'short-body': [ALL, async (ctx) => {
    const doc = Buffer.from(await goodDocument(ctx));
    writeSocket(ctx, Buffer.concat([Buffer.from(headerBlock(200, 'OK',
      { 'Content-Type': JSON_TYPE, 'Content-Length': doc.length + 100 })), doc]), 'end');
  }],
  'wrong-shape': [ALL, (ctx) => sendAwsJson(ctx.res, 200, WRONG_SHAPES[ctx.action])],
  'json-null': [ALL, (ctx) => sendAwsJson(ctx.res, 200, 'null')],
  'json-array': [ALL, (ctx) => sendAwsJson(ctx.res, 200, '[]')],
  'json-string': [ALL, (ctx) => sendAwsJson(ctx.res, 200, '"OK"')],
  'messages-null': [RECEIVE, (ctx) => sendAwsJson(ctx.res, 200, '{"Messages":null}')],
  'messages-number': [RECEIVE, (ctx) => sendAwsJson(ctx.res, 200, '{"Messages":7}')],
  'message-not-object': [RECEIVE, (ctx) => sendAwsJson(ctx.res, 200, '{"Messages":[42,"x",null]}')],
  'message-fields-wrong-type': [RECEIVE, (ctx) => sendAwsJson(ctx.res, 200,
    '{"Messages":[{"MessageId":17,"ReceiptHandle":["h"],"Body":"{}","Attributes":"none"}]}')],
  // HTML from something in the way (a captive portal, a load balancer)
  'non-json': [ALL, (ctx) => sendRaw(ctx.res, 200, { 'Content-Type': 'text/html' },
    '<html><body><h1>502 Bad Gateway</h1></body></html>')],
  // the upstream document with bytes that are not UTF-8 in a string
  'invalid-utf8': [ALL, async (ctx) => {
    const doc = JSON.parse(await goodDocument(ctx));
    doc.ResponseMetadata = { RequestId: '@@BAD@@' };
    const text = JSON.stringify(doc);
    const at = text.indexOf('@@BAD@@');
    sendAwsJson(ctx.res, 200, Buffer.concat([Buffer.from(text.slice(0, at)), Buffer.from([0xc3, 0x28, 0xff, 0xfe]),
      Buffer.from(text.slice(at + 7))]));
  }],
  // a raw NUL byte inside a string of the upstream document
  'nul-byte': [ALL, async (ctx) => {
    const doc = JSON.parse(await goodDocument(ctx));
    doc.ResponseMetadata = { RequestId: '@@NUL@@' };
    const text = JSON.stringify(doc);
    const at = text.indexOf('@@NUL@@');
    sendAwsJson(ctx.res, 200, Buffer.concat([Buffer.from(text.slice(0, at)), Buffer.from([0x61, 0x00, 0x62]),
      Buffer.from(text.slice(at + 7))]));
  }],
  // a synthetic message whose Body holds invalid UTF-8 (its MD5 matches)
  'body-invalid-utf8': [INVENTS, (ctx) => {
    const raw = Buffer.concat([Buffer.from('{"user_id":"x'), Buffer.from([0xff, 0xc3, 0x28]), Buffer.from('"}')]);
    const m = syntheticMessage(ctx, { Body: '@@BODY@@', MD5OfBody: md5(raw) });
    const text = JSON.stringify({ Messages: [m] });
    const at = text.indexOf('@@BODY@@');
    sendAwsJson(ctx.res, 200, Buffer.concat([Buffer.from(text.slice(0, at)),
      Buffer.from(raw.toString('latin1').replace(/["\\]/g, (c) => `\\${c}`), 'latin1'),
      Buffer.from(text.slice(at + 8))]));
  }],
  // more than the client's 16 MiB cap
  huge: [ALL, (ctx) => {
    const res = ctx.res;
    const head = Buffer.from('{"Padding":"');
    const tail = Buffer.from('"}');
    res.writeHead(200, { 'Content-Type': JSON_TYPE, 'Content-Length': head.length + HUGE_BYTES + tail.length });
    res.on('error', () => {});
    res.write(head);
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    let left = HUGE_BYTES;
    const pump = () => {
      while (left > 0) {
        const n = Math.min(left, chunk.length);
        left -= n;
        if (!res.write(n === chunk.length ? chunk : chunk.subarray(0, n))) {
          res.once('drain', pump);
          return;
        }
      }
      res.end(tail);
    };
    pump();
  }],
  // nesting far deeper than any real answer
  deep: [ALL, (ctx) => {
    const key = { ReceiveMessage: 'Messages', DeleteMessageBatch: 'Failed', GetQueueAttributes: 'Attributes' }[ctx.action];
    sendAwsJson(ctx.res, 200, `{"${key}":${'['.repeat(DEEP_LEVELS)}${']'.repeat(DEEP_LEVELS)}}`);
  }],
  // a chunk size that is not hexadecimal
  'bad-chunked': [ALL, (ctx) => writeSocket(ctx,
    `${headerBlock(200, 'OK', { 'Content-Type': JSON_TYPE, 'Transfer-Encoding': 'chunked' })}zz\r\n{"Messages":[]}\r\n0\r\n\r\n`,
    'end')],
  // a chunk announced longer than what follows, then the end
  'chunk-overrun': [ALL, (ctx) => writeSocket(ctx,
    `${headerBlock(200, 'OK', { 'Content-Type': JSON_TYPE, 'Transfer-Encoding': 'chunked' })}fffff\r\n{}\r\n0\r\n\r\n`,
    'end')],
  // never a status line
  'stall-headers': [ALL, (ctx) => stall(ctx)],
  // headers, then no body
  'stall-body': [ALL, (ctx) => {
    writeSocket(ctx, headerBlock(200, 'OK', { 'Content-Type': JSON_TYPE, 'Content-Length': 100 }));
    stall(ctx);
  }],
  // headers and half the body, then nothing
  'stall-mid-body': [ALL, async (ctx) => {
    const doc = Buffer.from(await goodDocument(ctx));
    writeSocket(ctx, Buffer.concat([Buffer.from(headerBlock(200, 'OK',
      { 'Content-Type': JSON_TYPE, 'Content-Length': doc.length })), doc.subarray(0, doc.length >> 1)]));
    stall(ctx);
  }],
  // the connection reset before an answer
  reset: [ALL, (ctx) => resetSocket(ctx.req.socket)],
  // reset half-way through the body
  'reset-mid-body': [ALL, async (ctx) => {
    const doc = Buffer.from(await goodDocument(ctx));
    writeSocket(ctx, Buffer.concat([Buffer.from(headerBlock(200, 'OK',
      { 'Content-Type': JSON_TYPE, 'Content-Length': doc.length })), doc.subarray(0, doc.length >> 1)]), 'reset');
  }],
  // a redirect, which must not be followed
  redirect: [ALL, (ctx) => sendRaw(ctx.res, 307, {
    Location: `${opts.cert ? 'https' : 'http'}://${opts.host}:${server.address().port}/__hostile/redirected`, 'Content-Length': 0,
  }, '')],
  'status-400-empty': [ALL, (ctx) => sendRaw(ctx.res, 400, { 'Content-Length': 0 }, '')],
  'status-400-body': [ALL, (ctx) => sendAwsJson(ctx.res, 400,
    '{"__type":"com.amazon.coral.validate#ValidationException","message":"Hostile validation failure."}')],
  'status-403-html': [ALL, (ctx) => sendRaw(ctx.res, 403, { 'Content-Type': 'text/html' },
    '<html><body>Forbidden</body></html>')],
  'status-404-empty': [ALL, (ctx) => sendRaw(ctx.res, 404, { 'Content-Length': 0 }, '')],
  'status-500-empty': [ALL, (ctx) => sendRaw(ctx.res, 500, { 'Content-Length': 0 }, '')],
  'status-503-body': [ALL, (ctx) => sendAwsJson(ctx.res, 503,
    '{"__type":"com.amazonaws.sqs#ServiceUnavailable","message":"Hostile: service unavailable."}')],
  'status-500-non-json': [ALL, (ctx) => sendRaw(ctx.res, 500, { 'Content-Type': 'text/plain' },
    'upstream connect error or disconnect/reset before headers')],
  // an error document whose fields have the wrong types
  'status-400-wrong-shape': [ALL, (ctx) => sendAwsJson(ctx.res, 400, '{"__type":42,"message":["x"]}')],

  // ReceiveMessage: values out of their types' ranges. Each sends a message
  // that would be a row and one that is a dead letter (which keeps the
  // message's SentTimestamp and receive count).
  'timestamp-max': [INVENTS, (ctx) => receiveWith(ctx, outOfRange(ctx, { SentTimestamp: '9223372036854775807' }))],
  'timestamp-overflow': [INVENTS, (ctx) => receiveWith(ctx, outOfRange(ctx, { SentTimestamp: '99999999999999999999' }))],
  'timestamp-negative': [INVENTS, (ctx) => receiveWith(ctx, outOfRange(ctx, { SentTimestamp: '-9223372036854775808' }))],
  'timestamp-not-number': [INVENTS, (ctx) => receiveWith(ctx, outOfRange(ctx, { SentTimestamp: 'yesterday' }))],
  'receive-count-max': [INVENTS, (ctx) => receiveWith(ctx, outOfRange(ctx, { ApproximateReceiveCount: '9223372036854775807' }))],
  'receive-count-negative': [INVENTS, (ctx) => receiveWith(ctx, outOfRange(ctx, { ApproximateReceiveCount: '-3' }))],
  // a Body that is JSON but not a string
  'body-number': [INVENTS, (ctx) => receiveWith(ctx, [syntheticMessage(ctx, { Body: 12345, MD5OfBody: md5('12345') })])],
  'body-object': [INVENTS, (ctx) => {
    const m = syntheticMessage(ctx);
    m.Body = JSON.parse(m.Body);
    m.MD5OfBody = md5(JSON.stringify(m.Body));
    receiveWith(ctx, [m]);
  }],
  // a MessageId longer than the ledger's index holds, next to a good message
  'message-id-long': [INVENTS, (ctx) => receiveWith(ctx, [
    syntheticMessage(ctx, { MessageId: crypto.randomBytes(6000).toString('base64') }),
    syntheticMessage(ctx),
  ])],
  // more messages than MaxNumberOfMessages
  'too-many': [INVENTS, (ctx) => {
    const asked = Number(requestJson(ctx).MaxNumberOfMessages) || 1;
    receiveWith(ctx, Array.from({ length: asked + 50 }, () => syntheticMessage(ctx)));
  }],

  // DeleteMessageBatch: every entry reported as both deleted and failed,
  // and failures about entries never sent
  'delete-failed-unknown-ids': [DELETE, (ctx) => {
    const entries = requestJson(ctx).Entries || [];
    const failed = Array.from({ length: 1000 }, (_, i) => ({ Id: `x${i}`, SenderFault: false, Code: 'InternalError',
      Message: 'Hostile: an entry nobody sent.' }));
    sendAwsJson(ctx.res, 200, JSON.stringify({ Successful: entries.map((e) => ({ Id: e.Id })), Failed: failed }));
  }],

  // GetQueueAttributes: counts outside bigint, negative, not numbers
  'count-overflow': [ATTRIBUTES, (ctx) => sendAwsJson(ctx.res, 200, JSON.stringify({ Attributes: {
    ApproximateNumberOfMessages: '99999999999999999999', ApproximateNumberOfMessagesNotVisible: '9223372036854775808',
    ApproximateNumberOfMessagesDelayed: '18446744073709551615' } }))],
  'count-negative': [ATTRIBUTES, (ctx) => sendAwsJson(ctx.res, 200, JSON.stringify({ Attributes: {
    ApproximateNumberOfMessages: '-1', ApproximateNumberOfMessagesNotVisible: '-9223372036854775808',
    ApproximateNumberOfMessagesDelayed: '-0' } }))],
  'count-not-number': [ATTRIBUTES, (ctx) => sendAwsJson(ctx.res, 200, JSON.stringify({ Attributes: {
    ApproximateNumberOfMessages: 'many', ApproximateNumberOfMessagesNotVisible: '1e3',
    ApproximateNumberOfMessagesDelayed: ' 7' } }))],
  'count-json-number': [ATTRIBUTES, (ctx) => sendAwsJson(ctx.res, 200,
    '{"Attributes":{"ApproximateNumberOfMessages":1e400,"ApproximateNumberOfMessagesNotVisible":-1,"ApproximateNumberOfMessagesDelayed":3.5}}')],
};

function outOfRange(ctx, attributes) {
  return [syntheticMessage(ctx, { Attributes: attributes }),
    syntheticMessage(ctx, { Body: DEAD_BODY, MD5OfBody: md5(DEAD_BODY), Attributes: attributes })];
}

// ---------------------------------------------------------------------
// dispatch

function validateScript(s) {
  if (!s || typeof s !== 'object' || Array.isArray(s)) return 'script must be a JSON object';
  for (const [action, step] of Object.entries(s)) {
    if (!ACTIONS.includes(action)) return `unknown action ${action}`;
    if (!step || typeof step !== 'object') return `${action}: needs {"case": NAME}`;
    const c = CASES[step.case];
    if (!c) return `${action}: unknown case ${step.case}`;
    if (!c[0].includes(action)) return `${action}: case ${step.case} is for ${c[0].join(', ')}`;
    if (step.count !== undefined && !(Number.isInteger(step.count) && step.count >= 0)) {
      return `${action}: count must be a non-negative integer`;
    }
  }
  return null;
}

// The case to serve for this call, if any; consumes one of a limited count.
function takeCase(action) {
  const step = script[action];
  if (!step) return null;
  if (Number.isInteger(step.count)) {
    if (step.count <= 0) return null;
    step.count -= 1;
  }
  return step.case;
}

const control = controlApi({
  'GET /__hostile': () => script,
  'GET /__hostile/stats': () => stats,
  'GET /__hostile/cases': () => Object.fromEntries(Object.entries(CASES).map(([k, v]) =>
    [k, { actions: v[0], invents: v[0] === INVENTS }])),
  'POST /__hostile/stats/reset': () => {
    resetStats();
    return stats;
  },
  'POST /__hostile': (s) => {
    const err = validateScript(s);
    if (err) throw new Refusal(err);
    script = s;
    return script;
  },
});

// Deletes of synthetic receipt handles are answered here; a batch mixing
// them with real ones is forwarded and the emulator's verdict on the
// synthetic ones corrected.
async function forwardDelete(ctx) {
  const entries = requestJson(ctx).Entries || [];
  const ours = new Set(entries.filter((e) => String(e.ReceiptHandle).startsWith('hostile-')).map((e) => e.Id));
  for (const e of entries) if (ours.has(e.Id)) stats.syntheticDeleted.push(e.ReceiptHandle);
  if (ours.size === 0) return forward(ctx);
  if (ours.size === entries.length) {
    return sendAwsJson(ctx.res, 200, JSON.stringify({ Successful: entries.map((e) => ({ Id: e.Id })) }));
  }
  const r = await fetchUpstream(ctx);
  stats[ctx.action].forwarded += 1;
  let out = r.body;
  if (r.status === 200) {
    const doc = JSON.parse(r.body.toString('utf8') || '{}');
    doc.Successful = (doc.Successful || []).concat([...ours].map((Id) => ({ Id })));
    doc.Failed = (doc.Failed || []).filter((f) => !ours.has(f.Id));
    if (doc.Failed.length === 0) delete doc.Failed;
    out = Buffer.from(JSON.stringify(doc));
  }
  return sendAwsJson(ctx.res, r.status, out);
}

// Pass a call through untouched.
function forward(ctx) {
  passThrough(target, ctx.req, ctx.body, ctx.res, () => {
    if (stats[ctx.action]) stats[ctx.action].forwarded += 1;
    return false;
  });
}

const handler = withBody(async (req, res, body) => {
  if (req.url.split('?')[0] === '/__hostile/redirected') {
    stats.redirectsFollowed += 1;
    return sendJson(res, 200, {});
  }
  if (req.url.startsWith('/__hostile')) return control(req, res, body);
  const action = sqsJsonAction(req);
  const caseName = takeCase(action);
  const ctx = { req, res, body, action, caseName };
  try {
    if (!caseName) {
      if (action === 'DeleteMessageBatch') return await forwardDelete(ctx);
      return forward(ctx);
    }
    stats[action].served[caseName] = (stats[action].served[caseName] || 0) + 1;
    return await CASES[caseName][1](ctx);
  } catch (err) {
    process.stderr.write(`hostile-endpoint: ${action} ${caseName || '(forward)'}: ${err.stack}\n`);
    if (!res.headersSent) sendJson(res, 502, { __type: 'InternalError', message: `hostile-endpoint: ${err.message}` });
    else res.destroy();
    return undefined;
  }
});
const server = opts.cert
  ? https.createServer({ cert: fs.readFileSync(opts.cert), key: fs.readFileSync(opts.key) }, handler)
  : http.createServer(handler);

serve(server, 'hostile-endpoint', Object.assign({ onShutdown: () => target.close() }, opts));

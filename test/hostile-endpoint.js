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
// It speaks both protocols the extension does: a call in the JSON protocol
// (X-Amz-Target) is answered in JSON, a call in the Query protocol
// (form-encoded, Action=...) in XML, as SQS would. A case is served only to
// calls in a protocol it has a form for (the others are forwarded and the
// case stays scripted); the XML cases add documents with a DTD, entities
// (internal, a local file, a URL) or XInclude, none of which may be read.
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
//   GET  /__hostile/cases  {"<case>": {"actions": [...], "protocols": ["json", "query"],
//                                     "invents": bool}, ...}
//                          (invents: answers with messages of its own making)
//   GET  /__hostile/entity-file  {"path": P, "marker": M}: the local file the
//                          external-entity case points at, and the text in it
//   GET  /__hostile/stats  {"<Action>": {"forwarded": n, "served": {"<case>": n}},
//                           "clientClosed": n,  stalled connections the client gave up on
//                           "redirectsFollowed": n,
//                           "fetched": n,       URLs of DTDs, entities, XIncludes read
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
const os = require('os');
const path = require('path');
const {
  parseArgs, portNumber, httpUrl, withBody, sendJson, sqsCall, Refusal, controlApi, upstream,
  passThrough, serve,
} = require('./lib/server');

const JSON_TYPE = 'application/x-amz-json-1.0';
const XML_TYPE = 'text/xml';
const SQS_XMLNS = 'http://queue.amazonaws.com/doc/2012-11-05/';
const JSON_ONLY = ['json'];
const QUERY_ONLY = ['query'];
const BOTH = ['json', 'query'];
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

// A local file that an external entity points at: its text must never
// reach the client's tables or logs.
const entityFile = {
  path: path.join(os.tmpdir(), `hostile-entity-${process.pid}-${crypto.randomBytes(4).toString('hex')}`),
  marker: `hostile-entity-secret-${crypto.randomBytes(8).toString('hex')}`,
};
fs.writeFileSync(entityFile.path, entityFile.marker, { mode: 0o644 });

const md5 = (buf) => crypto.createHash('md5').update(buf).digest('hex');

let script = {};
let stats;
function resetStats() {
  stats = { clientClosed: 0, redirectsFollowed: 0, fetched: 0, synthetic: [], syntheticDeleted: [] };
  for (const a of ACTIONS) stats[a] = { forwarded: 0, served: {} };
}
resetStats();

// ---------------------------------------------------------------------
// ways of answering

function sendRaw(res, status, headers, body) {
  res.writeHead(status, headers);
  res.end(body);
}

// A document in the call's protocol (ctx.type), text or bytes.
function sendDocument(ctx, status, text, extra) {
  const body = Buffer.isBuffer(text) ? text : Buffer.from(text, 'utf8');
  sendRaw(ctx.res, status, Object.assign({ 'Content-Type': ctx.type, 'Content-Length': body.length,
    'x-amzn-requestid': crypto.randomUUID() }, extra || {}), body);
}

function xmlEscape(text) {
  return String(text).replace(/[<>&'"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' }[c]));
}

// An XML answer to the call's action, as SQS words it: inner inside the
// <ActionResult> element; prolog (a DTD) before the root.
function xmlAnswer(ctx, inner, prolog) {
  return `<?xml version="1.0"?>${prolog || ''}<${ctx.action}Response xmlns="${SQS_XMLNS}">` +
    `<${ctx.action}Result>${inner}</${ctx.action}Result>` +
    `<ResponseMetadata><RequestId>${crypto.randomUUID()}</RequestId></ResponseMetadata></${ctx.action}Response>`;
}

// An AWS Query error document.
function xmlError(type, code, message) {
  return `<?xml version="1.0"?><ErrorResponse xmlns="${SQS_XMLNS}"><Error><Type>${type}</Type>` +
    `<Code>${code}</Code><Message>${xmlEscape(message)}</Message><Detail/></Error>` +
    `<RequestId>${crypto.randomUUID()}</RequestId></ErrorResponse>`;
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

// The upstream document with bytes put into a string of it (the request
// id, which nobody reads).
async function goodDocumentWith(ctx, bytes) {
  const text = await goodDocument(ctx);
  let before;
  let after;
  if (ctx.protocol === 'query') {
    const at = text.indexOf('</RequestId>');
    if (at < 0) throw new Error('upstream document without a RequestId');
    [before, after] = [text.slice(0, at), text.slice(at)];
  } else {
    const doc = JSON.parse(text);
    doc.ResponseMetadata = { RequestId: '@@AT@@' };
    [before, after] = JSON.stringify(doc).split('@@AT@@');
  }
  return Buffer.concat([Buffer.from(before), Buffer.from(bytes), Buffer.from(after)]);
}

// The call's parameters: its JSON document, or for the Query protocol the
// same names read from the form (entries as Entries: [{Id, ReceiptHandle}]).
function requestJson(ctx) {
  if (ctx.protocol === 'query') {
    const entries = [];
    for (const [k, v] of ctx.form) {
      const m = /^DeleteMessageBatchRequestEntry\.(\d+)\.(Id|ReceiptHandle)$/.exec(k);
      if (!m) continue;
      entries[m[1]] = entries[m[1]] || {};
      entries[m[1]][m[2]] = v;
    }
    return { MaxNumberOfMessages: ctx.form.get('MaxNumberOfMessages'), Entries: entries.filter(Boolean) };
  }
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

// A message as the Query protocol writes it; body is put in as it is
// (raw), escaped unless raw.
function xmlMessage(m, raw) {
  const attributes = Object.entries(m.Attributes || {}).map(([k, v]) =>
    `<Attribute><Name>${k}</Name><Value>${xmlEscape(v)}</Value></Attribute>`).join('');
  return `<Message><MessageId>${xmlEscape(m.MessageId)}</MessageId>` +
    `<ReceiptHandle>${xmlEscape(m.ReceiptHandle)}</ReceiptHandle>` +
    (m.MD5OfBody ? `<MD5OfBody>${m.MD5OfBody}</MD5OfBody>` : '') +
    `<Body>${raw ? m.Body : xmlEscape(m.Body)}</Body>${attributes}</Message>`;
}

function receiveWith(ctx, messages) {
  if (ctx.protocol === 'query') sendDocument(ctx, 200, xmlAnswer(ctx, messages.map((m) => xmlMessage(m)).join('')));
  else sendDocument(ctx, 200, JSON.stringify({ Messages: messages }));
}

// The answer to a batch delete: ids deleted, and failures {Id, Code, Message}.
function deleteAnswer(ctx, deleted, failed) {
  if (ctx.protocol === 'query') {
    return xmlAnswer(ctx, deleted.map((Id) => `<DeleteMessageBatchResultEntry><Id>${xmlEscape(Id)}</Id>` +
      '</DeleteMessageBatchResultEntry>').join('') +
      failed.map((f) => `<BatchResultErrorEntry><Id>${xmlEscape(f.Id)}</Id><Code>${f.Code}</Code>` +
        `<Message>${xmlEscape(f.Message)}</Message><SenderFault>false</SenderFault></BatchResultErrorEntry>`).join(''));
  }
  const doc = { Successful: deleted.map((Id) => ({ Id })) };
  if (failed.length) doc.Failed = failed.map((f) => Object.assign({ SenderFault: false }, f));
  return JSON.stringify(doc);
}

// The answer to GetQueueAttributes with these attributes (name -> text).
function attributesAnswer(ctx, attributes) {
  if (ctx.protocol === 'query') {
    return xmlAnswer(ctx, Object.entries(attributes).map(([k, v]) =>
      `<Attribute><Name>${k}</Name><Value>${xmlEscape(v)}</Value></Attribute>`).join(''));
  }
  return JSON.stringify({ Attributes: attributes });
}

// A body without user_id: a dead letter, which keeps the message's
// SentTimestamp and receive count.
const DEAD_BODY = JSON.stringify({ note: 'no user_id: a dead letter' });

const WRONG_SHAPES = {
  ReceiveMessage: '{"Messages":"none"}',
  DeleteMessageBatch: '{"Successful":"all","Failed":{"Id":"0"}}',
  GetQueueAttributes: '{"Attributes":["ApproximateNumberOfMessages",3]}',
};

// elements where SQS has text
const WRONG_SHAPES_XML = {
  ReceiveMessage: '<Message><MessageId><Id>1</Id></MessageId><ReceiptHandle>hostile-x</ReceiptHandle>' +
    '<Body><user_id>x</user_id></Body></Message>',
  DeleteMessageBatch: '<DeleteMessageBatchResultEntry><Id><Value>0</Value></Id></DeleteMessageBatchResultEntry>',
  GetQueueAttributes: '<Attribute><Name>ApproximateNumberOfMessages</Name><Value><Count>3</Count></Value></Attribute>',
};

// Where the hostile XML cases put an entity or an element: the text a
// decoder reads from the answer to each action.
function xmlCarrying(ctx, text) {
  if (ctx.action === 'ReceiveMessage') {
    const userId = `hostile-${ctx.caseName}-${crypto.randomBytes(4).toString('hex')}`;
    // no MD5OfBody: were the entity read, the message would be stored
    return xmlMessage({
      MessageId: crypto.randomUUID(), ReceiptHandle: `hostile-${crypto.randomBytes(12).toString('hex')}`,
      Body: `{"user_id":"${userId}${text}","app_version":"1.2.3","device_type":"android","ip":"10.0.0.1",` +
        '"locale":"US","device_id":"123-45-6789"}',
      Attributes: { SentTimestamp: String(Date.now()), ApproximateReceiveCount: '1' },
    }, true);
  }
  if (ctx.action === 'DeleteMessageBatch') {
    return requestJson(ctx).Entries.map((e) => `<DeleteMessageBatchResultEntry><Id>${xmlEscape(e.Id)}${text}</Id>` +
      '</DeleteMessageBatchResultEntry>').join('');
  }
  return `<Attribute><Name>ApproximateNumberOfMessages</Name><Value>${text}</Value></Attribute>`;
}

const fetchUrl = (what) => `${opts.cert ? 'https' : 'http'}://${opts.host}:${server.address().port}/__hostile/fetch/${what}`;

// name -> [actions, protocols, serve(ctx)]; ctx.type is the content type of
// the call's protocol, ctx.protocol 'json' or 'query'
const CASES = {
  // 200 with nothing in it (local-aws-sqs answers an empty JSON receive so)
  empty: [ALL, BOTH, (ctx) => sendRaw(ctx.res, 200, { 'Content-Type': ctx.type, 'Content-Length': 0 }, '')],
  // a complete HTTP answer whose document stops half-way
  truncated: [ALL, BOTH, async (ctx) => {
    const doc = await goodDocument(ctx);
    sendDocument(ctx, 200, doc.slice(0, Math.max(1, Math.floor(doc.length / 2))));
  }],
  // Content-Length promises more than comes before the connection closes
  'short-body': [ALL, BOTH, async (ctx) => {
    const doc = Buffer.from(await goodDocument(ctx));
    writeSocket(ctx, Buffer.concat([Buffer.from(headerBlock(200, 'OK',
      { 'Content-Type': ctx.type, 'Content-Length': doc.length + 100 })), doc]), 'end');
  }],
  'wrong-shape': [ALL, BOTH, (ctx) => sendDocument(ctx, 200,
    ctx.protocol === 'query' ? xmlAnswer(ctx, WRONG_SHAPES_XML[ctx.action]) : WRONG_SHAPES[ctx.action])],
  'json-null': [ALL, JSON_ONLY, (ctx) => sendDocument(ctx, 200, 'null')],
  'json-array': [ALL, JSON_ONLY, (ctx) => sendDocument(ctx, 200, '[]')],
  'json-string': [ALL, JSON_ONLY, (ctx) => sendDocument(ctx, 200, '"OK"')],
  'messages-null': [RECEIVE, JSON_ONLY, (ctx) => sendDocument(ctx, 200, '{"Messages":null}')],
  'messages-number': [RECEIVE, JSON_ONLY, (ctx) => sendDocument(ctx, 200, '{"Messages":7}')],
  'message-not-object': [RECEIVE, JSON_ONLY, (ctx) => sendDocument(ctx, 200, '{"Messages":[42,"x",null]}')],
  'message-fields-wrong-type': [RECEIVE, JSON_ONLY, (ctx) => sendDocument(ctx, 200,
    '{"Messages":[{"MessageId":17,"ReceiptHandle":["h"],"Body":"{}","Attributes":"none"}]}')],
  // the answer to another action
  'wrong-root': [ALL, QUERY_ONLY, (ctx) => sendDocument(ctx, 200, xmlAnswer(
    Object.assign({}, ctx, { action: 'ListQueues' }), '<QueueUrl>http://127.0.0.1/000000000000/other</QueueUrl>'))],
  // the action's root, without its result element
  'missing-result': [ALL, QUERY_ONLY, (ctx) => sendDocument(ctx, 200,
    `<?xml version="1.0"?><${ctx.action}Response xmlns="${SQS_XMLNS}"><ResponseMetadata>` +
    `<RequestId>${crypto.randomUUID()}</RequestId></ResponseMetadata></${ctx.action}Response>`)],
  // HTML from something in the way (a captive portal, a load balancer)
  'non-json': [ALL, JSON_ONLY, (ctx) => sendRaw(ctx.res, 200, { 'Content-Type': 'text/html' },
    '<html><body><h1>502 Bad Gateway</h1></body></html>')],
  // the same in XML's clothes: well-formed, with a DOCTYPE as HTML pages have
  html: [ALL, QUERY_ONLY, (ctx) => sendRaw(ctx.res, 200, { 'Content-Type': 'text/html' },
    '<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body><h1>Network login</h1></body></html>')],
  // not markup at all
  'non-xml': [ALL, QUERY_ONLY, (ctx) => sendRaw(ctx.res, 200, { 'Content-Type': 'text/plain' },
    'OK {"Messages": []}')],
  // the upstream document with bytes that are not UTF-8 in a string
  'invalid-utf8': [ALL, BOTH, async (ctx) => sendDocument(ctx, 200,
    await goodDocumentWith(ctx, [0xc3, 0x28, 0xff, 0xfe]))],
  // a raw NUL byte inside a string of the upstream document
  'nul-byte': [ALL, BOTH, async (ctx) => sendDocument(ctx, 200, await goodDocumentWith(ctx, [0x61, 0x00, 0x62]))],
  // a synthetic message whose Body holds invalid UTF-8 (its MD5 matches)
  'body-invalid-utf8': [INVENTS, BOTH, (ctx) => {
    const raw = Buffer.concat([Buffer.from('{"user_id":"x'), Buffer.from([0xff, 0xc3, 0x28]), Buffer.from('"}')]);
    const m = syntheticMessage(ctx, { Body: '@@BODY@@', MD5OfBody: md5(raw) });
    const text = ctx.protocol === 'query' ? xmlAnswer(ctx, xmlMessage(m)) : JSON.stringify({ Messages: [m] });
    const at = text.indexOf('@@BODY@@');
    const body = ctx.protocol === 'query' ? raw
      : Buffer.from(raw.toString('latin1').replace(/["\\]/g, (c) => `\\${c}`), 'latin1');
    sendDocument(ctx, 200, Buffer.concat([Buffer.from(text.slice(0, at)), body, Buffer.from(text.slice(at + 8))]));
  }],
  // more than the client's 16 MiB cap
  huge: [ALL, BOTH, (ctx) => {
    const res = ctx.res;
    const query = ctx.protocol === 'query';
    const head = Buffer.from(query ? `<?xml version="1.0"?><${ctx.action}Response><Padding>` : '{"Padding":"');
    const tail = Buffer.from(query ? `</Padding></${ctx.action}Response>` : '"}');
    res.writeHead(200, { 'Content-Type': ctx.type, 'Content-Length': head.length + HUGE_BYTES + tail.length });
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
  deep: [ALL, BOTH, (ctx) => {
    if (ctx.protocol === 'query') {
      sendDocument(ctx, 200, xmlAnswer(ctx, `${'<a>'.repeat(DEEP_LEVELS)}${'</a>'.repeat(DEEP_LEVELS)}`));
      return;
    }
    const key = { ReceiveMessage: 'Messages', DeleteMessageBatch: 'Failed', GetQueueAttributes: 'Attributes' }[ctx.action];
    sendDocument(ctx, 200, `{"${key}":${'['.repeat(DEEP_LEVELS)}${']'.repeat(DEEP_LEVELS)}}`);
  }],
  // entities that expand to a billion "lol"s, were they expanded
  'doctype-laughs': [ALL, QUERY_ONLY, (ctx) => {
    let dtd = '<!ENTITY lol0 "lol">';
    for (let i = 1; i <= 9; i++) dtd += `<!ENTITY lol${i} "${`&lol${i - 1};`.repeat(10)}">`;
    sendDocument(ctx, 200, xmlAnswer(ctx, xmlCarrying(ctx, '&lol9;'),
      `<!DOCTYPE ${ctx.action}Response [${dtd}]>`));
  }],
  // external entities: a local file and a URL of this endpoint
  'external-entity': [ALL, QUERY_ONLY, (ctx) => sendDocument(ctx, 200, xmlAnswer(ctx, xmlCarrying(ctx, '&file;&url;'),
    `<!DOCTYPE ${ctx.action}Response [<!ENTITY file SYSTEM "file://${entityFile.path}">` +
    `<!ENTITY url SYSTEM "${fetchUrl('entity')}">]>`))],
  // an external DTD
  'external-dtd': [ALL, QUERY_ONLY, (ctx) => sendDocument(ctx, 200, xmlAnswer(ctx, xmlCarrying(ctx, ''),
    `<!DOCTYPE ${ctx.action}Response SYSTEM "${fetchUrl('dtd')}">`))],
  // XInclude of a URL of this endpoint, where text belongs
  xinclude: [ALL, QUERY_ONLY, (ctx) => sendDocument(ctx, 200, xmlAnswer(ctx, xmlCarrying(ctx,
    `<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="${fetchUrl('xinclude')}" parse="text"/>`)))],
  // a chunk size that is not hexadecimal
  'bad-chunked': [ALL, BOTH, (ctx) => writeSocket(ctx,
    `${headerBlock(200, 'OK', { 'Content-Type': ctx.type, 'Transfer-Encoding': 'chunked' })}zz\r\n${ctx.minimal}\r\n0\r\n\r\n`,
    'end')],
  // a chunk announced longer than what follows, then the end
  'chunk-overrun': [ALL, BOTH, (ctx) => writeSocket(ctx,
    `${headerBlock(200, 'OK', { 'Content-Type': ctx.type, 'Transfer-Encoding': 'chunked' })}fffff\r\n${ctx.minimal}\r\n0\r\n\r\n`,
    'end')],
  // never a status line
  'stall-headers': [ALL, BOTH, (ctx) => stall(ctx)],
  // headers, then no body
  'stall-body': [ALL, BOTH, (ctx) => {
    writeSocket(ctx, headerBlock(200, 'OK', { 'Content-Type': ctx.type, 'Content-Length': 100 }));
    stall(ctx);
  }],
  // headers and half the body, then nothing
  'stall-mid-body': [ALL, BOTH, async (ctx) => {
    const doc = Buffer.from(await goodDocument(ctx));
    writeSocket(ctx, Buffer.concat([Buffer.from(headerBlock(200, 'OK',
      { 'Content-Type': ctx.type, 'Content-Length': doc.length })), doc.subarray(0, doc.length >> 1)]));
    stall(ctx);
  }],
  // the connection reset before an answer
  reset: [ALL, BOTH, (ctx) => resetSocket(ctx.req.socket)],
  // reset half-way through the body
  'reset-mid-body': [ALL, BOTH, async (ctx) => {
    const doc = Buffer.from(await goodDocument(ctx));
    writeSocket(ctx, Buffer.concat([Buffer.from(headerBlock(200, 'OK',
      { 'Content-Type': ctx.type, 'Content-Length': doc.length })), doc.subarray(0, doc.length >> 1)]), 'reset');
  }],
  // a redirect, which must not be followed
  redirect: [ALL, BOTH, (ctx) => sendRaw(ctx.res, 307, {
    Location: `${opts.cert ? 'https' : 'http'}://${opts.host}:${server.address().port}/__hostile/redirected`, 'Content-Length': 0,
  }, '')],
  'status-400-empty': [ALL, BOTH, (ctx) => sendRaw(ctx.res, 400, { 'Content-Length': 0 }, '')],
  'status-400-body': [ALL, BOTH, (ctx) => (ctx.protocol === 'query'
    ? sendDocument(ctx, 400, xmlError('Sender', 'AWS.SimpleQueueService.NonExistentQueue',
      'Hostile: the specified queue does not exist for this wsdl version.'))
    : sendDocument(ctx, 400,
      '{"__type":"com.amazon.coral.validate#ValidationException","message":"Hostile validation failure."}'))],
  'status-400-throttled': [ALL, QUERY_ONLY, (ctx) => sendDocument(ctx, 400,
    xmlError('Sender', 'RequestThrottled', 'Hostile: rate exceeded.'))],
  'status-403-html': [ALL, BOTH, (ctx) => sendRaw(ctx.res, 403, { 'Content-Type': 'text/html' },
    '<html><body>Forbidden</body></html>')],
  'status-403-signature': [ALL, QUERY_ONLY, (ctx) => sendDocument(ctx, 403, xmlError('Sender', 'SignatureDoesNotMatch',
    'Hostile: the request signature we calculated does not match the signature you provided.'))],
  'status-404-empty': [ALL, BOTH, (ctx) => sendRaw(ctx.res, 404, { 'Content-Length': 0 }, '')],
  'status-500-empty': [ALL, BOTH, (ctx) => sendRaw(ctx.res, 500, { 'Content-Length': 0 }, '')],
  'status-503-body': [ALL, BOTH, (ctx) => (ctx.protocol === 'query'
    ? sendDocument(ctx, 503, xmlError('Receiver', 'ServiceUnavailable', 'Hostile: service unavailable.'))
    : sendDocument(ctx, 503,
      '{"__type":"com.amazonaws.sqs#ServiceUnavailable","message":"Hostile: service unavailable."}'))],
  'status-500-non-json': [ALL, BOTH, (ctx) => sendRaw(ctx.res, 500, { 'Content-Type': 'text/plain' },
    'upstream connect error or disconnect/reset before headers')],
  // an error document whose fields have the wrong types
  'status-400-wrong-shape': [ALL, BOTH, (ctx) => sendDocument(ctx, 400, ctx.protocol === 'query'
    ? `<?xml version="1.0"?><ErrorResponse xmlns="${SQS_XMLNS}"><Error><Code><Name>x</Name></Code>` +
      '<Message><Text>x</Text></Message></Error></ErrorResponse>'
    : '{"__type":42,"message":["x"]}')],
  // an error document with a 200 status
  'error-200': [ALL, QUERY_ONLY, (ctx) => sendDocument(ctx, 200,
    xmlError('Receiver', 'InternalError', 'Hostile: an error with status 200.'))],

  // ReceiveMessage: values out of their types' ranges. Each sends a message
  // that would be a row and one that is a dead letter (which keeps the
  // message's SentTimestamp and receive count).
  'timestamp-max': [INVENTS, BOTH, (ctx) => receiveWith(ctx, outOfRange(ctx, { SentTimestamp: '9223372036854775807' }))],
  'timestamp-overflow': [INVENTS, BOTH, (ctx) => receiveWith(ctx, outOfRange(ctx, { SentTimestamp: '99999999999999999999' }))],
  'timestamp-negative': [INVENTS, BOTH, (ctx) => receiveWith(ctx, outOfRange(ctx, { SentTimestamp: '-9223372036854775808' }))],
  'timestamp-not-number': [INVENTS, BOTH, (ctx) => receiveWith(ctx, outOfRange(ctx, { SentTimestamp: 'yesterday' }))],
  'receive-count-max': [INVENTS, BOTH, (ctx) => receiveWith(ctx, outOfRange(ctx, { ApproximateReceiveCount: '9223372036854775807' }))],
  'receive-count-negative': [INVENTS, BOTH, (ctx) => receiveWith(ctx, outOfRange(ctx, { ApproximateReceiveCount: '-3' }))],
  // a Body that is JSON but not a string
  'body-number': [INVENTS, JSON_ONLY, (ctx) => receiveWith(ctx, [syntheticMessage(ctx, { Body: 12345, MD5OfBody: md5('12345') })])],
  'body-object': [INVENTS, JSON_ONLY, (ctx) => {
    const m = syntheticMessage(ctx);
    m.Body = JSON.parse(m.Body);
    m.MD5OfBody = md5(JSON.stringify(m.Body));
    receiveWith(ctx, [m]);
  }],
  // a MessageId longer than the ledger's index holds, next to a good message
  'message-id-long': [INVENTS, BOTH, (ctx) => receiveWith(ctx, [
    syntheticMessage(ctx, { MessageId: crypto.randomBytes(6000).toString('base64') }),
    syntheticMessage(ctx),
  ])],
  // a ReceiptHandle longer than SQS's (it cannot be deleted), next to a good message
  'receipt-handle-long': [INVENTS, BOTH, (ctx) => receiveWith(ctx, [
    syntheticMessage(ctx, { ReceiptHandle: `hostile-${'r'.repeat(2000)}` }),
    syntheticMessage(ctx),
  ])],
  // a body that does not match its MD5OfBody, next to a good message
  'body-md5-wrong': [INVENTS, BOTH, (ctx) => receiveWith(ctx, [
    syntheticMessage(ctx, { MD5OfBody: md5('something else') }),
    syntheticMessage(ctx),
  ])],
  // more messages than MaxNumberOfMessages
  'too-many': [INVENTS, BOTH, (ctx) => {
    const asked = Number(requestJson(ctx).MaxNumberOfMessages) || 1;
    receiveWith(ctx, Array.from({ length: asked + 50 }, () => syntheticMessage(ctx)));
  }],

  // DeleteMessageBatch: every entry reported as both deleted and failed,
  // and failures about entries never sent
  'delete-failed-unknown-ids': [DELETE, BOTH, (ctx) => {
    const entries = requestJson(ctx).Entries || [];
    const failed = Array.from({ length: 1000 }, (_, i) => ({ Id: `x${i}`, Code: 'InternalError',
      Message: 'Hostile: an entry nobody sent.' }));
    sendDocument(ctx, 200, deleteAnswer(ctx, entries.map((e) => e.Id), failed));
  }],

  // GetQueueAttributes: counts outside bigint, negative, not numbers
  'count-overflow': [ATTRIBUTES, BOTH, (ctx) => sendDocument(ctx, 200, attributesAnswer(ctx, {
    ApproximateNumberOfMessages: '99999999999999999999', ApproximateNumberOfMessagesNotVisible: '9223372036854775808',
    ApproximateNumberOfMessagesDelayed: '18446744073709551615' }))],
  'count-negative': [ATTRIBUTES, BOTH, (ctx) => sendDocument(ctx, 200, attributesAnswer(ctx, {
    ApproximateNumberOfMessages: '-1', ApproximateNumberOfMessagesNotVisible: '-9223372036854775808',
    ApproximateNumberOfMessagesDelayed: '-0' }))],
  'count-not-number': [ATTRIBUTES, BOTH, (ctx) => sendDocument(ctx, 200, attributesAnswer(ctx, {
    ApproximateNumberOfMessages: 'many', ApproximateNumberOfMessagesNotVisible: '1e3',
    ApproximateNumberOfMessagesDelayed: ' 7' }))],
  'count-json-number': [ATTRIBUTES, JSON_ONLY, (ctx) => sendDocument(ctx, 200,
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
// A case with no form in the call's protocol waits for a call it has one for.
function takeCase(action, protocol) {
  const step = script[action];
  if (!step || !CASES[step.case][1].includes(protocol)) return null;
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
    [k, { actions: v[0], protocols: v[1], invents: v[0] === INVENTS }])),
  'GET /__hostile/entity-file': () => entityFile,
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
  if (ours.size === entries.length) return sendDocument(ctx, 200, deleteAnswer(ctx, entries.map((e) => e.Id), []));
  const r = await fetchUpstream(ctx);
  stats[ctx.action].forwarded += 1;
  let out = r.body;
  if (r.status === 200 && ctx.protocol === 'query') {
    // the emulator's failures of our entries become successes
    out = Buffer.from(r.body.toString('utf8').replace(/<BatchResultErrorEntry>\s*<Id>([^<]*)<\/Id>[\s\S]*?<\/BatchResultErrorEntry>/g,
      (whole, id) => (ours.has(id) ? `<DeleteMessageBatchResultEntry><Id>${id}</Id></DeleteMessageBatchResultEntry>` : whole)));
  } else if (r.status === 200) {
    const doc = JSON.parse(r.body.toString('utf8') || '{}');
    doc.Successful = (doc.Successful || []).concat([...ours].map((Id) => ({ Id })));
    doc.Failed = (doc.Failed || []).filter((f) => !ours.has(f.Id));
    if (doc.Failed.length === 0) delete doc.Failed;
    out = Buffer.from(JSON.stringify(doc));
  }
  return sendDocument(ctx, r.status, out);
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
  if (req.url.startsWith('/__hostile/fetch/')) {
    stats.fetched += 1;
    return sendRaw(res, 200, { 'Content-Type': 'text/plain' }, `fetched-${entityFile.marker}`);
  }
  if (req.url.startsWith('/__hostile')) return control(req, res, body);
  const { action, query } = sqsCall(req, body);
  const form = query ? new URLSearchParams(body.toString('utf8')) : null;
  const ctx = {
    req, res, body, form, action,
    protocol: query ? 'query' : 'json',
    type: query ? XML_TYPE : JSON_TYPE,
    minimal: query ? `<${action}Response/>` : '{}',
  };
  const caseName = takeCase(action, ctx.protocol);
  ctx.caseName = caseName;
  try {
    if (!caseName) {
      if (action === 'DeleteMessageBatch') return await forwardDelete(ctx);
      return forward(ctx);
    }
    stats[action].served[caseName] = (stats[action].served[caseName] || 0) + 1;
    return await CASES[caseName][2](ctx);
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

serve(server, 'hostile-endpoint', Object.assign({
  onShutdown: () => {
    target.close();
    fs.rmSync(entityFile.path, { force: true });
  },
}, opts));

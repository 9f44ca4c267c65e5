#!/usr/bin/env node
'use strict';
// SQS emulator for the tests: local-aws-sqs behind a front that checks every
// request's SigV4 signature, as the real service does. Where the emulator
// departs from SQS, the front changes only what makes it behave as SQS does,
// never what would make it friendlier than SQS: each adjustment below says
// which SQS behaviour it restores. Everything else the emulator answers goes
// out as it is, quirks included (an empty receive is a 200 with an empty
// body, which the extension must read as an empty document, as the AWS SDKs
// do).
//
//   node test/sqs-emulator.js --port PORT [--host 127.0.0.1] [--queue NAME]...
//                             [--session-token TOKEN]... [--front on|off]
//                             [--exit-with-parent]
//
// --front off serves the package exactly as it answers, with no front at all:
// no signature check and none of the adjustments (t/707 runs the extension
// against it).
//
// Credentials: SQS_TEST_ACCESS_KEY_ID / SQS_TEST_SECRET_ACCESS_KEY. With
// --session-token, every request must carry one of the tokens given; the
// first request with each token is logged ("session token in use: T"), so
// tests see when a client switched to refreshed credentials.
// Prints "READY <port>" once listening; exits on SIGTERM or SIGINT.

const crypto = require('crypto');
const http = require('http');
const { Readable } = require('stream');
const { createRequestHandler } = require('local-aws-sqs');
const sigv4 = require('./sigv4');
const {
  parseArgs, portNumber, withBody, sqsJsonAction, serve,
} = require('./lib/server');

const ACCOUNT_ID = '000000000000';
const REGION = 'us-east-1';
const JSON_TYPE = 'application/x-amz-json-1.0';
const FORM_TYPE = 'application/x-www-form-urlencoded';
const MAX_BODY = 8 * 1024 * 1024; // a 1 MiB batch, JSON-escaped, fits with room

const opts = parseArgs('sqs-emulator.js', {
  port: { value: 'PORT', parse: portNumber, required: true },
  queue: { value: 'NAME', many: true, key: 'queues' },
  'session-token': { value: 'TOKEN', many: true, key: 'sessionTokens' },
  front: {
    value: 'on|off',
    default: true,
    parse: (v) => {
      if (v !== 'on' && v !== 'off') throw new Error('is on or off');
      return v === 'on';
    },
  },
});
const creds = {
  accessKeyId: process.env.SQS_TEST_ACCESS_KEY_ID || 'AKIDSQSINGESTTEST',
  secretAccessKey: process.env.SQS_TEST_SECRET_ACCESS_KEY || 'sqs-ingest-test-secret',
  sessionToken: opts.sessionTokens.length ? opts.sessionTokens : null,
  region: REGION,
  service: 'sqs',
};

const { service, requestHandler } = createRequestHandler({
  port: opts.port,
  hostname: opts.host,
  accountId: ACCOUNT_ID,
  region: REGION,
  queues: opts.queues.map((QueueName) => ({ QueueName })),
  emulateQueueCreationLifecycle: false,
});

// Errors in the shape SQS uses for the JSON protocol.
function sendError(res, status, code, type, message) {
  const body = JSON.stringify({ __type: type, message });
  res.writeHead(status, {
    'Content-Type': JSON_TYPE,
    'x-amzn-query-error': `${code};Sender`,
    'x-amzn-requestid': crypto.randomUUID(),
    'Content-Length': Buffer.byteLength(body),
  });
  res.end(body);
}

const AUTH_TYPES = {
  MissingAuthenticationToken: 'com.amazon.coral.service#MissingAuthenticationTokenException',
  InvalidClientTokenId: 'com.amazon.coral.service#InvalidClientTokenId',
  IncompleteSignature: 'com.amazon.coral.service#IncompleteSignatureException',
  SignatureDoesNotMatch: 'com.amazon.coral.service#SignatureDoesNotMatch',
};

// Run one request through the emulator and collect its answer. The emulator
// reads the body from the request stream itself, so it gets a replay of it.
function callEmulator(req, body) {
  return new Promise((resolve, reject) => {
    const fakeReq = Readable.from(body.length ? [body] : []);
    fakeReq.headers = Object.assign({}, req.headers);
    // SQS accepts "application/x-amz-json-1.0; charset=utf-8"; the emulator
    // compares the type exactly and would refuse what SQS takes.
    if ((fakeReq.headers['content-type'] || '').startsWith(JSON_TYPE)) fakeReq.headers['content-type'] = JSON_TYPE;
    fakeReq.method = req.method;
    fakeReq.url = req.url;
    const out = {
      statusCode: 200,
      headers: {},
      setHeader(k, v) { this.headers[k.toLowerCase()] = v; },
      getHeader(k) { return this.headers[k.toLowerCase()]; },
      end(chunk) {
        resolve({ status: this.statusCode, headers: this.headers, body: chunk === undefined ? '' : String(chunk) });
      },
    };
    Promise.resolve(requestHandler(fakeReq, out)).catch(reject);
  });
}

function parseJson(buf) {
  try {
    const v = JSON.parse(buf.toString('utf8'));
    return v && typeof v === 'object' && !Array.isArray(v) ? v : null;
  } catch (e) {
    return null;
  }
}

function queueOf(url) {
  if (typeof url !== 'string') return null;
  const name = url.split('/').filter(Boolean).pop();
  return service.Queues.find((q) => q.QueueName === name) || null;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// The emulator's long poll waits until it has MaxNumberOfMessages or the wait
// expires; SQS answers as soon as messages are there. Poll with zero waits
// instead, until something arrives, time is up or the client went away. The
// answer is the emulator's own, an empty body when nothing came.
async function longPollReceive(req, res, json, wait, queryForm) {
  const deadline = Date.now() + wait * 1000;
  let short;
  if (queryForm) {
    const form = new URLSearchParams(queryForm);
    form.set('WaitTimeSeconds', '0');
    short = Buffer.from(form.toString());
  } else {
    short = Buffer.from(JSON.stringify(Object.assign({}, json, { WaitTimeSeconds: 0 })));
  }
  let gone = false;
  res.on('close', () => { gone = true; });
  for (;;) {
    const r = await callEmulator(req, short);
    const hasMessages = r.status === 200 &&
      (queryForm ? r.body.includes('<Message>') : /"Messages"\s*:\s*\[\s*\{/.test(r.body));
    if (hasMessages || r.status !== 200 || gone || Date.now() + 60 >= deadline) return r;
    await sleep(60);
    if (gone) return r;
  }
}

const STATS = ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'];

async function handle(req, res, body) {
  const action = sqsJsonAction(req);
  let json = action ? parseJson(body) : null;
  let fixCounts = false;
  let dropNotVisible = false;

  // The Query protocol (form-encoded, XML answers): the same long-poll fix.
  const form = !action && String(req.headers['content-type'] || '').startsWith(FORM_TYPE)
    ? new URLSearchParams(body.toString('utf8')) : null;
  if (form && form.get('Action') === 'ReceiveMessage' && queueOf(form.get('QueueUrl'))) {
    const wait = Number(form.get('WaitTimeSeconds') || queueOf(form.get('QueueUrl')).ReceiveMessageWaitTimeSeconds);
    if (Number.isInteger(wait) && wait > 0 && wait <= 20) {
      return finish(res, action, await longPollReceive(req, res, null, wait, body.toString('utf8')), false, false);
    }
  }

  if (json && action === 'ReceiveMessage') {
    // SQS takes system attribute names as MessageSystemAttributeNames (what
    // current SDKs send) as well as AttributeNames; the emulator knows only
    // the older name and would leave the attributes out.
    if (Array.isArray(json.MessageSystemAttributeNames)) {
      json = Object.assign({}, json);
      json.AttributeNames = [...new Set([...(json.AttributeNames || []), ...json.MessageSystemAttributeNames])];
      delete json.MessageSystemAttributeNames;
      body = Buffer.from(JSON.stringify(json));
    }
    const q = queueOf(json.QueueUrl);
    const wait = json.WaitTimeSeconds !== undefined ? json.WaitTimeSeconds : q && q.ReceiveMessageWaitTimeSeconds;
    if (q && Number.isInteger(wait) && wait > 0 && wait <= 20) {
      return finish(res, action, await longPollReceive(req, res, json, wait), false, false);
    }
  } else if (json && action === 'PurgeQueue' && queueOf(json.QueueUrl)) {
    // The emulator empties the queue 60 s later (the most SQS allows itself)
    // and would then also drop messages sent meanwhile. SQS may purge at once
    // too, which is what tests want. Only the test tools purge; the extension
    // never does.
    queueOf(json.QueueUrl).clearRecords();
    return finish(res, action, { status: 200, headers: { 'content-type': JSON_TYPE }, body: '{}' }, false, false);
  } else if (json && action === 'GetQueueAttributes' && Array.isArray(json.AttributeNames)) {
    // The emulator counts in-flight messages in ApproximateNumberOfMessages;
    // SQS counts only visible ones. Ask for the in-flight count to correct it.
    const names = json.AttributeNames;
    if (names.includes('All')) {
      fixCounts = true;
    } else if (names.includes(STATS[0])) {
      fixCounts = true;
      if (!names.includes(STATS[1])) {
        dropNotVisible = true;
        json = Object.assign({}, json, { AttributeNames: [...names, STATS[1]] });
        body = Buffer.from(JSON.stringify(json));
      }
    }
  }
  return finish(res, action, await callEmulator(req, body), fixCounts, dropNotVisible);
}

function finish(res, action, r, fixCounts, dropNotVisible) {
  let out = r.body;
  if (r.status === 200 && fixCounts) {
    const doc = parseJson(Buffer.from(out));
    const a = doc && doc.Attributes;
    if (a && a[STATS[0]] !== undefined && a[STATS[1]] !== undefined) {
      a[STATS[0]] = String(Math.max(0, Number(a[STATS[0]]) - Number(a[STATS[1]])));
      if (dropNotVisible) delete a[STATS[1]];
      out = JSON.stringify(doc);
    }
  }
  if (res.destroyed) return;
  const headers = Object.assign({ 'x-amzn-requestid': crypto.randomUUID() }, r.headers,
    { 'content-length': Buffer.byteLength(out) });
  res.writeHead(r.status, headers);
  res.end(out);
}

const tokensSeen = new Set();

async function checked(req, res, body) {
  const v = await sigv4.verify(req, body, creds);
  if (!v.ok) {
    sendError(res, 403, v.code, AUTH_TYPES[v.code], v.message);
    return;
  }
  const token = req.headers['x-amz-security-token'];
  if (token && !tokensSeen.has(token)) {
    tokensSeen.add(token);
    process.stdout.write(`session token in use: ${token}\n`);
  }
  await handle(req, res, body);
}

// node writes the answers on one connection in the order the requests came,
// however long each one's check and handling take
const front = withBody((req, res, body) => {
  if (body === null) {
    sendError(res, 413, 'RequestEntityTooLarge', 'RequestEntityTooLarge', 'Request body too large.');
    return;
  }
  checked(req, res, body).catch((err) => {
    if (!res.headersSent) sendError(res, 500, 'InternalError', 'InternalError', String(err && err.message));
    else res.destroy();
  });
}, MAX_BODY);
const server = http.createServer(opts.front ? front : requestHandler);

// queue URLs carry the real port when 0 was asked for
serve(server, 'sqs-emulator', opts, (port) => { service.PORT = port; });

#!/usr/bin/env node
'use strict';
// Command-line SQS client for the tests (JSON protocol, SigV4-signed).
//
//   node test/sqs-tool.js --endpoint URL [--session-token T] <command> ...
//     create-queue NAME [--visibility-timeout S]    prints the queue URL
//     send URL --json-array FILE | --lines FILE | --generate N [--seed S]
//                                                    prints the number sent
//     generate N [--seed S]                          prints the events as a JSON array
//     depth URL                                      prints "visible notvisible delayed"
//     receive URL [--max N] [--visibility-timeout S] [--wait S]
//                                                    prints the messages (JSON), not deleted
//     purge URL
//     delete-queue URL
//     list-queues
//
// Credentials: SQS_TEST_ACCESS_KEY_ID / SQS_TEST_SECRET_ACCESS_KEY.

const fs = require('fs');
const http = require('http');
const https = require('https');
const sigv4 = require('./sigv4');

const BATCH_ENTRIES = 10;
const BATCH_BYTES = 1024 * 1024; // SQS limit on the sum of a batch's bodies
const IN_FLIGHT = 16;

class ToolError extends Error {}


let endpoint = null;
let sessionToken = process.env.SQS_TEST_SESSION_TOKEN || null;
const creds = {
  accessKeyId: process.env.SQS_TEST_ACCESS_KEY_ID || 'AKIDSQSINGESTTEST',
  secretAccessKey: process.env.SQS_TEST_SECRET_ACCESS_KEY || 'sqs-ingest-test-secret',
};
const agentOpts = { keepAlive: true, maxSockets: IN_FLIGHT };
const agents = { 'http:': new http.Agent(agentOpts), 'https:': new https.Agent(agentOpts) };

// One signed JSON-protocol call; resolves with the parsed answer, rejects
// with the service's error type and message.
function call(action, payload) {
  const body = Buffer.from(JSON.stringify(payload), 'utf8');
  const url = new URL('/', endpoint);
  const headers = sigv4.sign({
    method: 'POST',
    url: url.toString(),
    headers: { 'Content-Type': 'application/x-amz-json-1.0', 'X-Amz-Target': `AmazonSQS.${action}` },
    body,
    accessKeyId: creds.accessKeyId,
    secretAccessKey: creds.secretAccessKey,
    sessionToken,
    region: 'us-east-1',
    service: 'sqs',
  });
  headers['Content-Length'] = body.length;
  const lib = url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = lib.request(url, { method: 'POST', headers, agent: agents[url.protocol] }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let doc = null;
        try {
          doc = text ? JSON.parse(text) : {};
        } catch (e) {
          doc = null;
        }
        if (res.statusCode === 200 && doc) resolve(doc);
        else if (doc && doc.__type) reject(new ToolError(`${action}: HTTP ${res.statusCode} ${doc.__type}: ${doc.message}`));
        else reject(new ToolError(`${action}: HTTP ${res.statusCode} ${text.slice(0, 200)}`));
      });
      res.on('error', reject);
    });
    req.on('error', (e) => reject(new ToolError(`${action}: ${e.message}`)));
    req.end(body);
  });
}

// Small deterministic PRNG (mulberry32), so a seed always gives the same events.
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6D2B79F5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const LOCALES = ['RU', 'PH', 'ID', 'FR', 'PT', 'US', 'DE', 'BR', 'IN', 'JP', 'CN', 'MX', 'NG', 'GB'];

// Login events shaped like the real sample: both two- and three-part
// versions, about 30% null locales.
function generateEvents(n, seed) {
  const r = rng(seed);
  const int = (lo, hi) => lo + Math.floor(r() * (hi - lo + 1));
  const hex = (k) => Array.from({ length: k }, () => int(0, 15).toString(16)).join('');
  const digits = (k) => Array.from({ length: k }, () => String(int(0, 9))).join('');
  const events = [];
  for (let i = 0; i < n; i++) {
    const variant = '89ab'[int(0, 3)];
    const user_id = `${hex(8)}-${hex(4)}-4${hex(3)}-${variant}${hex(3)}-${hex(12)}`;
    const app_version = r() < 0.5
      ? `${int(0, 9)}.${int(0, 9)}.${int(0, 9)}`
      : `${int(0, 9)}.${r() < 0.5 ? int(0, 9) : String(int(0, 99)).padStart(2, '0')}`;
    events.push({
      user_id,
      app_version,
      device_type: r() < 0.5 ? 'android' : 'ios',
      ip: `${int(1, 254)}.${int(0, 255)}.${int(0, 255)}.${int(1, 254)}`,
      locale: r() < 0.3 ? null : LOCALES[int(0, LOCALES.length - 1)],
      device_id: `${digits(3)}-${digits(2)}-${digits(4)}`,
    });
  }
  return events;
}

// Split bodies into SendMessageBatch calls: at most 10 entries and 1 MiB each.
function batches(bodies, attributes) {
  const out = [];
  let cur = [];
  let bytes = 0;
  bodies.forEach((body, i) => {
    const len = Buffer.byteLength(body, 'utf8');
    if (cur.length && (cur.length === BATCH_ENTRIES || bytes + len > BATCH_BYTES)) {
      out.push(cur);
      cur = [];
      bytes = 0;
    }
    const entry = { Id: `m${i}`, MessageBody: body };
    if (attributes) entry.MessageAttributes = attributes;
    cur.push(entry);
    bytes += len;
  });
  if (cur.length) out.push(cur);
  return out;
}

async function sendAll(queueUrl, bodies, attributes) {
  const work = batches(bodies, attributes);
  let next = 0;
  let sent = 0;
  async function lane() {
    while (next < work.length) {
      const entries = work[next++];
      const res = await call('SendMessageBatch', { QueueUrl: queueUrl, Entries: entries });
      const failed = res.Failed || [];
      if (failed.length) {
        const f = failed[0];
        throw new ToolError(`SendMessageBatch: ${failed.length} entries failed, first ${f.Id}: ${f.Code} ${f.Message}`);
      }
      sent += (res.Successful || []).length;
    }
  }
  await Promise.all(Array.from({ length: Math.min(IN_FLIGHT, work.length) }, lane));
  if (sent !== bodies.length) throw new ToolError(`sent ${sent} of ${bodies.length} messages`);
  return sent;
}

function readLines(file) {
  // A body cannot be empty in SQS, so blank lines (and the final newline) are skipped.
  return fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.length > 0);
}

function takeOption(args, name, dflt) {
  const i = args.indexOf(name);
  if (i < 0) return dflt;
  if (i + 1 >= args.length) throw new ToolError(`${name} needs a value`);
  const v = args[i + 1];
  args.splice(i, 2);
  return v;
}

function intArg(v, name) {
  if (v === undefined || v === null) return v;
  if (!/^\d+$/.test(String(v))) throw new ToolError(`${name} must be a non-negative integer`);
  return Number(v);
}

function needArgs(args, n, usage) {
  if (args.length !== n) throw new ToolError(`usage: ${usage}`);
}

async function main(argv) {
  const args = argv.slice();
  endpoint = takeOption(args, '--endpoint', process.env.SQS_TEST_ENDPOINT || null);
  sessionToken = takeOption(args, '--session-token', sessionToken);
  const cmd = args.shift();
  if (cmd === 'generate') {
    const seed = intArg(takeOption(args, '--seed', '1'), '--seed');
    needArgs(args, 1, 'generate N [--seed S]');
    process.stdout.write(JSON.stringify(generateEvents(intArg(args[0], 'N'), seed), null, 1) + '\n');
    return;
  }
  if (!endpoint) throw new ToolError('--endpoint is required');

  switch (cmd) {
    case 'create-queue': {
      const vt = intArg(takeOption(args, '--visibility-timeout', null), '--visibility-timeout');
      needArgs(args, 1, 'create-queue NAME [--visibility-timeout S]');
      const payload = { QueueName: args[0] };
      if (vt !== null) payload.Attributes = { VisibilityTimeout: String(vt) };
      const res = await call('CreateQueue', payload);
      process.stdout.write(`${res.QueueUrl}\n`);
      break;
    }
    case 'send': {
      const jsonFile = takeOption(args, '--json-array', null);
      const linesFile = takeOption(args, '--lines', null);
      const gen = intArg(takeOption(args, '--generate', null), '--generate');
      const seed = intArg(takeOption(args, '--seed', '1'), '--seed');
      // --attribute NAME=VALUE: a String message attribute on every message
      const attribute = takeOption(args, '--attribute', null);
      let attributes = null;
      if (attribute !== null) {
        const eq = attribute.indexOf('=');
        if (eq < 1) throw new ToolError('--attribute needs NAME=VALUE');
        attributes = { [attribute.slice(0, eq)]: { DataType: 'String', StringValue: attribute.slice(eq + 1) } };
      }
      needArgs(args, 1, 'send QUEUE_URL (--json-array FILE | --lines FILE | --generate N [--seed S]) [--attribute NAME=VALUE]');
      if ([jsonFile, linesFile, gen].filter((x) => x !== null).length !== 1) {
        throw new ToolError('send needs exactly one of --json-array, --lines, --generate');
      }
      let bodies;
      if (jsonFile !== null) {
        const doc = JSON.parse(fs.readFileSync(jsonFile, 'utf8'));
        if (!Array.isArray(doc)) throw new ToolError(`${jsonFile} does not hold a JSON array`);
        bodies = doc.map((e) => JSON.stringify(e));
      } else if (linesFile !== null) {
        bodies = readLines(linesFile);
      } else {
        bodies = generateEvents(gen, seed).map((e) => JSON.stringify(e));
      }
      process.stdout.write(`${await sendAll(args[0], bodies, attributes)}\n`);
      break;
    }
    case 'depth': {
      needArgs(args, 1, 'depth QUEUE_URL');
      const res = await call('GetQueueAttributes', {
        QueueUrl: args[0],
        AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible',
          'ApproximateNumberOfMessagesDelayed'],
      });
      const a = res.Attributes || {};
      process.stdout.write(`${a.ApproximateNumberOfMessages} ${a.ApproximateNumberOfMessagesNotVisible} ` +
        `${a.ApproximateNumberOfMessagesDelayed}\n`);
      break;
    }
    case 'receive': {
      const max = intArg(takeOption(args, '--max', '10'), '--max');
      const vt = intArg(takeOption(args, '--visibility-timeout', null), '--visibility-timeout');
      const wait = intArg(takeOption(args, '--wait', '1'), '--wait');
      needArgs(args, 1, 'receive QUEUE_URL [--max N] [--visibility-timeout S] [--wait S]');
      const payload = { QueueUrl: args[0], MaxNumberOfMessages: max, WaitTimeSeconds: wait, AttributeNames: ['All'] };
      if (vt !== null) payload.VisibilityTimeout = vt;
      const res = await call('ReceiveMessage', payload);
      process.stdout.write(JSON.stringify(res.Messages || [], null, 1) + '\n');
      break;
    }
    case 'purge':
      needArgs(args, 1, 'purge QUEUE_URL');
      await call('PurgeQueue', { QueueUrl: args[0] });
      break;
    case 'delete-queue':
      needArgs(args, 1, 'delete-queue QUEUE_URL');
      await call('DeleteQueue', { QueueUrl: args[0] });
      break;
    case 'list-queues': {
      needArgs(args, 0, 'list-queues');
      const res = await call('ListQueues', {});
      for (const u of res.QueueUrls || []) process.stdout.write(`${u}\n`);
      break;
    }
    default:
      throw new ToolError(`unknown command ${cmd === undefined ? '(none)' : cmd}`);
  }
}

// Let the event loop end by itself rather than process.exit(): output to a
// pipe is written asynchronously and exit() would cut it short.
function done(code, msg) {
  if (msg) process.stderr.write(`sqs-tool: ${msg}\n`);
  for (const a of Object.values(agents)) a.destroy();
  process.exitCode = code;
}

main(process.argv.slice(2)).then(
  () => done(0),
  (err) => done(1, err instanceof ToolError ? err.message : (err && err.stack) || String(err)),
);

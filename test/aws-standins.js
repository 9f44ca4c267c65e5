#!/usr/bin/env node
'use strict';
// Local stand-ins for the AWS credential services, for the tests of the
// credential chain. One HTTP server plays:
//
//   - the EC2 instance metadata service, IMDSv2 only: PUT /latest/api/token
//     (with X-aws-ec2-metadata-token-ttl-seconds) gives a token that every
//     GET under /latest/meta-data/ must carry;
//   - the container credentials endpoint (ECS, EKS Pod Identity): GET
//     /container/..., with the Authorization header checked when
//     --container-auth is given;
//   - STS: POST / with Action=AssumeRoleWithWebIdentity (the token must be
//     --web-identity-token) or Action=AssumeRole (SigV4-signed for service
//     sts with the test key pair), answering XML as STS does.
//
// Every source vends the test key pair (SQS_TEST_ACCESS_KEY_ID /
// SQS_TEST_SECRET_ACCESS_KEY, which the SQS emulator checks) with a session
// token of its own, numbered per issue: imds-1, imds-2, container-1,
// webid-1, assumed-1, ... and an Expiration --lifetime seconds ahead.
//
// Control: GET /__stats gives the request counts; POST /__fail with
// {"imds": MODE, "container": MODE, "sts": MODE} makes those misbehave ({}
// heals). MODE: true (HTTP 500), "garbage" (200 with a body that is not
// the expected document), "huge" (200 with a 1 MiB body), "doctype" (STS:
// XML with a DTD declaring entities), "control" (credentials holding a line
// break).
//
//   node test/aws-standins.js --port PORT [--host 127.0.0.1] [--lifetime S]
//        [--container-auth TOKEN] [--web-identity-token JWT] [--exit-with-parent]
//
// Prints "READY <port>" once listening; exits on SIGTERM or SIGINT.

const crypto = require('crypto');
const http = require('http');
const sigv4 = require('./sigv4');
const {
  parseArgs, portNumber, positiveNumber, withBody, sendJson, Refusal, controlApi, serve,
} = require('./lib/server');

const ROLE_NAME = 'sqs-ingest-test-role';
const MAX_BODY = 64 * 1024;

const opts = parseArgs('aws-standins.js', {
  port: { value: 'PORT', parse: portNumber, required: true },
  lifetime: { value: 'S', parse: positiveNumber, default: 3600 },
  'container-auth': { value: 'TOKEN' },
  'web-identity-token': { value: 'JWT' },
});
const keys = {
  accessKeyId: process.env.SQS_TEST_ACCESS_KEY_ID || 'AKIDSQSINGESTTEST',
  secretAccessKey: process.env.SQS_TEST_SECRET_ACCESS_KEY || 'sqs-ingest-test-secret',
};

const stats = {
  imds_token: 0, imds_role: 0, imds_credentials: 0, imds_unauthorized: 0,
  container: 0, container_unauthorized: 0,
  web_identity: 0, assume_role: 0, sts_rejected: 0,
};
const issued = { imds: 0, container: 0, webid: 0, assumed: 0 };
let failing = {};
const imdsTokens = new Set();

// The next credentials of a source, as the services word them.
function vend(kind) {
  issued[kind] += 1;
  const token = `${kind}-${issued[kind]}`;
  return {
    AccessKeyId: keys.accessKeyId,
    // a new secret with every token, as AWS hands out (sigv4.secretFor)
    SecretAccessKey: sigv4.secretFor(keys.secretAccessKey, token),
    Token: token,
    Expiration: new Date(Date.now() + opts.lifetime * 1000).toISOString().replace(/\.\d+Z$/, 'Z'),
  };
}

function send(res, status, type, body) {
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

const sendText = (res, status, text) => send(res, status, 'text/plain', text);

// A misbehaving answer for a source put in a failure mode, or null.
function misbehave(res, mode, kind) {
  if (!mode) return false;
  if (mode === 'garbage') sendText(res, 200, '{"AccessKeyId": [unclosed');
  else if (mode === 'huge') sendText(res, 200, 'x'.repeat(1024 * 1024));
  else if (mode === 'doctype') {
    send(res, 200, 'text/xml', '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">' +
      '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><AssumeRoleWithWebIdentityResponse>' +
      '<AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>&b;</AccessKeyId>' +
      '</Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>');
  } else if (mode === 'control') {
    const c = vend(kind);
    c.Token = 'evil\r\nX-Injected: 1';
    sendJson(res, 200, c);
  } else sendText(res, 500, 'stand-in failure');
  return true;
}

function imds(req, res) {
  if (failing.imds === true && req.method === 'PUT') return sendText(res, 500, 'stand-in failure');
  if (req.method === 'PUT' && req.url === '/latest/api/token') {
    const ttl = Number(req.headers['x-aws-ec2-metadata-token-ttl-seconds']);
    if (!Number.isInteger(ttl) || ttl < 1 || ttl > 21600) return sendText(res, 400, 'missing or bad TTL');
    stats.imds_token += 1;
    const token = crypto.randomBytes(24).toString('base64');
    imdsTokens.add(token);
    return sendText(res, 200, token);
  }
  if (req.method !== 'GET') return sendText(res, 405, 'method not allowed');
  if (!imdsTokens.has(req.headers['x-aws-ec2-metadata-token'])) {
    stats.imds_unauthorized += 1;
    return sendText(res, 401, 'Unauthorized');
  }
  const base = '/latest/meta-data/iam/security-credentials/';
  if (req.url === base) {
    stats.imds_role += 1;
    return sendText(res, 200, ROLE_NAME);
  }
  if (req.url === base + ROLE_NAME) {
    if (failing.imds && misbehave(res, failing.imds, 'imds')) return undefined;
    stats.imds_credentials += 1;
    const c = vend('imds');
    return sendJson(res, 200, Object.assign({ Code: 'Success', LastUpdated: new Date().toISOString(), Type: 'AWS-HMAC' }, c));
  }
  return sendText(res, 404, 'Not Found');
}

function container(req, res) {
  if (failing.container && misbehave(res, failing.container, 'container')) return undefined;
  if (opts.containerAuth !== null && req.headers.authorization !== opts.containerAuth) {
    stats.container_unauthorized += 1;
    return sendJson(res, 401, { code: 'Unauthorized', message: 'bad authorization token' });
  }
  stats.container += 1;
  const c = vend('container');
  return sendJson(res, 200, Object.assign({ RoleArn: `arn:aws:iam::000000000000:role/${ROLE_NAME}` }, c));
}

function xmlEscape(s) {
  return String(s).replace(/[<>&'"]/g, (ch) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' }[ch]));
}

function stsError(res, status, code, message) {
  stats.sts_rejected += 1;
  send(res, status, 'text/xml',
    '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>' +
    `<Code>${xmlEscape(code)}</Code><Message>${xmlEscape(message)}</Message></Error>` +
    `<RequestId>${crypto.randomUUID()}</RequestId></ErrorResponse>`);
}

function stsCredentials(res, action, kind) {
  const c = vend(kind);
  send(res, 200, 'text/xml',
    `<${action}Response xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><${action}Result>` +
    `<Credentials><AccessKeyId>${xmlEscape(c.AccessKeyId)}</AccessKeyId>` +
    `<SecretAccessKey>${xmlEscape(c.SecretAccessKey)}</SecretAccessKey>` +
    `<SessionToken>${xmlEscape(c.Token)}</SessionToken>` +
    `<Expiration>${c.Expiration}</Expiration></Credentials>` +
    `<AssumedRoleUser><Arn>arn:aws:sts::000000000000:assumed-role/${ROLE_NAME}/s</Arn>` +
    `<AssumedRoleId>AROATEST:s</AssumedRoleId></AssumedRoleUser>` +
    `</${action}Result><ResponseMetadata><RequestId>${crypto.randomUUID()}</RequestId>` +
    `</ResponseMetadata></${action}Response>`);
}

async function sts(req, res, body) {
  if (failing.sts === true) return stsError(res, 500, 'InternalFailure', 'stand-in failure');
  if (failing.sts && misbehave(res, failing.sts, 'webid')) return undefined;
  const form = new URLSearchParams(body.toString('utf8'));
  const action = form.get('Action');
  if (!form.get('RoleArn') || !form.get('RoleSessionName')) {
    return stsError(res, 400, 'MissingParameter', 'RoleArn and RoleSessionName are required');
  }
  if (action === 'AssumeRoleWithWebIdentity') {
    if (opts.webIdentityToken === null || form.get('WebIdentityToken') !== opts.webIdentityToken) {
      return stsError(res, 400, 'InvalidIdentityToken', 'Couldn\'t retrieve verification key from your identity provider');
    }
    stats.web_identity += 1;
    return stsCredentials(res, action, 'webid');
  }
  if (action === 'AssumeRole') {
    const v = await sigv4.verify(req, body, Object.assign({ service: 'sts' }, keys));
    if (!v.ok) return stsError(res, 403, v.code, v.message);
    stats.assume_role += 1;
    return stsCredentials(res, action, 'assumed');
  }
  return stsError(res, 400, 'InvalidAction', `Could not find operation ${action}`);
}

const control = controlApi({
  'GET /__stats': () => stats,
  'POST /__fail': (doc) => {
    if (doc !== null && (typeof doc !== 'object' || Array.isArray(doc))) throw new Refusal('a JSON object, please');
    failing = doc || {};
    return failing;
  },
});

const server = http.createServer(withBody((req, res, body) => {
  if (body === null) return sendText(res, 413, 'too large');
  if (req.url.startsWith('/__')) return control(req, res, body);
  if (req.url.startsWith('/latest/')) return imds(req, res);
  if (req.url.startsWith('/container/') && req.method === 'GET') return container(req, res);
  if (req.url === '/' && req.method === 'POST') return sts(req, res, body);
  return sendText(res, 404, 'Not Found');
}, MAX_BODY));

serve(server, 'aws-standins', opts);

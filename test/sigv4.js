'use strict';
// AWS Signature Version 4 for SQS (JSON and Query protocols alike): sign() for the test
// client, verify() for the emulator front and the STS stand-in. Only what SQS needs:
// header-based signatures (no presigned URLs), unsigned-payload not accepted.
//
// verify() checks each request twice: with the code below, which names what is wrong
// the way AWS does, then by re-signing the request with AWS's own signer,
// @smithy/signature-v4 (the one the AWS SDK for JavaScript signs with). The code
// below and the extension's signer were written by one project from one reading of
// the spec; a misreading they share passes the first check but not the second.
// The second check is always on: no option turns it off.

const crypto = require('crypto');
const { SignatureV4 } = require('@smithy/signature-v4');

const ALGORITHM = 'AWS4-HMAC-SHA256';
const MAX_SKEW_MS = 15 * 60 * 1000; // AWS rejects requests dated more than 15 minutes off

function sha256Hex(data) {
  return crypto.createHash('sha256').update(data).digest('hex');
}

function hmac(key, data) {
  return crypto.createHmac('sha256', key).update(data, 'utf8').digest();
}

// RFC 3986 unreserved characters stay, everything else is %XX (upper case).
function uriEncode(str, keepSlash) {
  let out = '';
  for (const byte of Buffer.from(str, 'utf8')) {
    const c = String.fromCharCode(byte);
    if (/[A-Za-z0-9\-._~]/.test(c) || (keepSlash && c === '/')) out += c;
    else out += '%' + byte.toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}

function safeDecode(s) {
  try {
    return decodeURIComponent(s);
  } catch (e) {
    return s;
  }
}

// The path with its escapes made canonical: each segment decoded, then
// encoded once.
function normalizedPath(path) {
  if (!path) return '/';
  return path.split('/').map((seg) => uriEncode(safeDecode(seg), false)).join('/');
}

// The canonical path of every service but S3, as AWS's signers make it: empty
// and "." segments dropped, ".." taking the one before with it, a final "/"
// kept, then the path as sent encoded once more ("%" becomes "%25").
function awsPath(path) {
  const segments = [];
  for (const seg of (path || '/').split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') segments.pop();
    else segments.push(seg);
  }
  const trailing = segments.length > 0 && (path || '').endsWith('/') ? '/' : '';
  return uriEncode('/' + segments.join('/') + trailing, true);
}

// The query string's parameters, decoded: [name, value] pairs in the order sent.
function queryParams(query) {
  if (!query) return [];
  return query.split('&').filter((p) => p.length > 0).map((p) => {
    const i = p.indexOf('=');
    const k = i < 0 ? p : p.slice(0, i);
    const v = i < 0 ? '' : p.slice(i + 1);
    return [safeDecode(k.replace(/\+/g, ' ')), safeDecode(v.replace(/\+/g, ' '))];
  });
}

function canonicalQuery(query) {
  const pairs = queryParams(query).map(([k, v]) => [uriEncode(k, false), uriEncode(v, false)]);
  pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  return pairs.map(([k, v]) => `${k}=${v}`).join('&');
}

function splitUrl(url) {
  const q = url.indexOf('?');
  return q < 0 ? [url, ''] : [url.slice(0, q), url.slice(q + 1)];
}

// Call add(lower-case name, value) for each header as received, in order.
function eachHeader(rawHeaders, headers, add) {
  if (Array.isArray(rawHeaders)) {
    for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
      add(String(rawHeaders[i]).toLowerCase(), String(rawHeaders[i + 1]));
    }
  } else if (headers) {
    for (const [k, v] of Object.entries(headers)) {
      if (Array.isArray(v)) v.forEach((x) => add(k.toLowerCase(), String(x)));
      else if (v !== undefined) add(k.toLowerCase(), String(v));
    }
  }
}

// Lower-case name -> canonical value. Repeated headers are joined with ','
// and runs of blanks collapse to one, as the SigV4 spec requires.
function headerMap(rawHeaders, headers) {
  const map = new Map();
  eachHeader(rawHeaders, headers, (k, value) => {
    const v = value.trim().replace(/\s+/g, ' ');
    map.set(k, map.has(k) ? `${map.get(k)},${v}` : v);
  });
  return map;
}

function signingKey(secret, date, region, service) {
  const kDate = hmac('AWS4' + secret, date);
  const kRegion = hmac(kDate, region);
  const kService = hmac(kRegion, service);
  return hmac(kService, 'aws4_request');
}

function canonicalRequest(method, path, query, hmap, signedHeaders, payloadHash) {
  const canonHeaders = signedHeaders.map((h) => `${h}:${hmap.has(h) ? hmap.get(h) : ''}\n`).join('');
  return [method.toUpperCase(), path, canonicalQuery(query), canonHeaders,
    signedHeaders.join(';'), payloadHash].join('\n');
}

function stringToSign(amzDate, scope, canonical) {
  return [ALGORITHM, amzDate, scope, sha256Hex(canonical)].join('\n');
}

function amzDateOf(d) {
  return d.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
}

function parseAmzDate(s) {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(s || '');
  if (!m) return null;
  return new Date(Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]));
}

/*
 * Sign a request. opts: {method, url (absolute), headers, body, accessKeyId,
 * secretAccessKey, sessionToken, region, service, date}. Returns a new headers
 * object carrying Host, X-Amz-Date, X-Amz-Security-Token and Authorization;
 * every header passed in is signed.
 */
function sign(opts) {
  const u = new URL(opts.url);
  const region = opts.region || 'us-east-1';
  const service = opts.service || 'sqs';
  const body = opts.body === undefined ? '' : opts.body;
  const amzDate = amzDateOf(opts.date || new Date());
  const date = amzDate.slice(0, 8);

  const headers = Object.assign({}, opts.headers || {});
  headers.Host = u.host;
  headers['X-Amz-Date'] = amzDate;
  if (opts.sessionToken) headers['X-Amz-Security-Token'] = opts.sessionToken;

  const hmap = headerMap(null, headers);
  const signed = [...hmap.keys()].filter((h) => h !== 'authorization' && h !== 'content-length').sort();
  const scope = `${date}/${region}/${service}/aws4_request`;
  const canonical = canonicalRequest(opts.method || 'POST', awsPath(u.pathname),
    u.search ? u.search.slice(1) : '', hmap, signed, sha256Hex(body));
  const signature = crypto.createHmac('sha256', signingKey(opts.secretAccessKey, date, region, service))
    .update(stringToSign(amzDate, scope, canonical)).digest('hex');
  headers.Authorization = `${ALGORITHM} Credential=${opts.accessKeyId}/${scope}, ` +
    `SignedHeaders=${signed.join(';')}, Signature=${signature}`;
  return headers;
}

function fail(code, message) {
  return { ok: false, code, message };
}

// The first check of verify(): on success, also what the second one needs.
function verifyOwn(req, body, opts) {
  const region = opts.region || 'us-east-1';
  const service = opts.service || 'sqs';
  const hmap = headerMap(req.rawHeaders, req.headers);
  const auth = hmap.get('authorization');
  if (!auth) return fail('MissingAuthenticationToken', 'Request is missing Authentication Token');

  if (!auth.startsWith(ALGORITHM + ' ')) {
    return fail('IncompleteSignature',
      `Unsupported AWS 'algorithm': '${auth.split(' ')[0]}'. Supported value: ${ALGORITHM}`);
  }
  const params = {};
  for (const part of auth.slice(ALGORITHM.length + 1).split(',')) {
    const i = part.indexOf('=');
    if (i > 0) params[part.slice(0, i).trim()] = part.slice(i + 1).trim();
  }
  const missing = ['Credential', 'SignedHeaders', 'Signature'].filter((k) => !params[k]);
  if (missing.length) {
    return fail('IncompleteSignature',
      missing.map((k) => `Authorization header requires '${k}' parameter.`).join(' ') +
      ` Authorization=${auth}`);
  }

  const cred = params.Credential.split('/');
  if (cred.length !== 5 || cred[4] !== 'aws4_request') {
    return fail('IncompleteSignature',
      `Credential should be scoped to a valid region. Credential=${params.Credential}`);
  }
  const [akid, credDate, credRegion, credService] = cred;
  if (akid !== opts.accessKeyId) {
    return fail('InvalidClientTokenId', 'The security token included in the request is invalid.');
  }
  const tokens = Array.isArray(opts.sessionToken) ? opts.sessionToken : [opts.sessionToken];
  if (opts.sessionToken && !tokens.includes(hmap.get('x-amz-security-token'))) {
    return fail('InvalidClientTokenId', 'The security token included in the request is invalid.');
  }

  const amzDate = hmap.get('x-amz-date');
  if (!amzDate) {
    return fail('IncompleteSignature',
      "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. " +
      `Authorization=${auth}`);
  }
  const when = parseAmzDate(amzDate);
  if (!when) {
    return fail('IncompleteSignature', `Date must be in ISO-8601 'basic format'. Got '${amzDate}'.`);
  }
  const now = opts.now || new Date();
  if (Math.abs(now.getTime() - when.getTime()) > MAX_SKEW_MS) {
    return fail('SignatureDoesNotMatch',
      `Signature expired: ${amzDate} is now earlier or later than ${amzDateOf(now)} (15 min skew allowed).`);
  }
  if (credDate !== amzDate.slice(0, 8)) {
    return fail('SignatureDoesNotMatch',
      `Credential should be scoped to a valid date, not '${credDate}'.`);
  }
  if (credRegion !== region) {
    return fail('SignatureDoesNotMatch',
      `Credential should be scoped to a valid region, not '${credRegion}'.`);
  }
  if (credService !== service) {
    return fail('SignatureDoesNotMatch',
      `Credential should be scoped to correct service: '${service}'.`);
  }

  const signed = params.SignedHeaders.split(';');
  if (!signed.includes('host')) {
    return fail('SignatureDoesNotMatch', "'Host' must be a 'SignedHeader' in the AWS Authorization.");
  }
  for (const h of signed) {
    if (!hmap.has(h)) {
      return fail('SignatureDoesNotMatch', `Header '${h}' is listed in SignedHeaders but absent.`);
    }
  }

  const payloadHash = hmap.get('x-amz-content-sha256') || sha256Hex(body || Buffer.alloc(0));
  const [rawPath, query] = splitUrl(req.url || '/');
  const key = signingKey(opts.secretAccessKey, credDate, region, service);
  const scope = cred.slice(1).join('/');
  const given = Buffer.from(params.Signature, 'utf8');
  // The path as sent (what curl signs), each segment decoded and encoded
  // again, or the path as sent encoded once more (AWS's rule for every
  // service but S3): the second check decides between them.
  const paths = new Set([rawPath || '/', normalizedPath(rawPath), awsPath(rawPath)]);
  for (const path of paths) {
    const canonical = canonicalRequest(req.method || 'POST', path, query, hmap, signed, payloadHash);
    const expect = Buffer.from(crypto.createHmac('sha256', key)
      .update(stringToSign(amzDate, scope, canonical)).digest('hex'), 'utf8');
    if (expect.length === given.length && crypto.timingSafeEqual(expect, given)) {
      return {
        ok: true, accessKeyId: akid, when, signed, signature: params.Signature, rawPath, query,
      };
    }
  }
  return fail('SignatureDoesNotMatch',
    'The request signature we calculated does not match the signature you provided. ' +
    'Check your AWS Secret Access Key and signing method. Consult the service documentation for details.');
}

// SHA-256 and HMAC-SHA256 in the shape @smithy/signature-v4 takes (new
// Sha256(key?), update(bytes), async digest()), over node's crypto as the AWS
// SDK's own Node hash is.
class Sha256 {
  constructor(key) {
    this.hash = key === undefined ? crypto.createHash('sha256') : crypto.createHmac('sha256', key);
  }

  update(data) {
    this.hash.update(data);
  }

  async digest() {
    return new Uint8Array(this.hash.digest());
  }
}

/*
 * Re-sign the request with @smithy/signature-v4 from what came over the wire:
 * method, path and query as sent, the headers the request lists as signed
 * with their values, the body, its X-Amz-Date. uriEscapePath is the rule of
 * every service but S3: empty, "." and ".." segments go, and the path as
 * sent is encoded once more ("%" becomes "%25"). The payload hash is the
 * body's, or the X-Amz-Content-SHA256 header's when that is signed; the
 * signer adds none of its own (applyChecksum), and the session token is
 * signed only when the request lists it. That signer never signs a Date
 * header (it dates requests with X-Amz-Date only): a request listing one is
 * refused. Returns {signature, signedHeaders} as that signer writes them.
 */
async function awsSignature(req, body, opts, own) {
  const signed = new Set(own.signed);
  // no prototype: a header or parameter named like an Object property is data
  const headers = Object.create(null);
  eachHeader(req.rawHeaders, req.headers, (name, latin1) => {
    if (!signed.has(name)) return;
    // node hands header bytes over as latin1; the signer hashes text as UTF-8
    const value = Buffer.from(latin1, 'latin1').toString('utf8');
    headers[name] = Object.hasOwn(headers, name) ? `${headers[name]},${value}` : value;
  });
  const query = Object.create(null);
  for (const [k, v] of queryParams(own.query)) {
    if (!Object.hasOwn(query, k)) query[k] = v;
    else query[k] = [].concat(query[k], v);
  }
  const signer = new SignatureV4({
    credentials: { accessKeyId: own.accessKeyId, secretAccessKey: opts.secretAccessKey },
    region: opts.region || 'us-east-1',
    service: opts.service || 'sqs',
    sha256: Sha256,
    uriEscapePath: true,
    applyChecksum: false,
  });
  const out = await signer.sign({
    method: req.method || 'POST',
    path: own.rawPath || '/',
    query,
    headers,
    body: body || Buffer.alloc(0),
  }, { signingDate: own.when, signableHeaders: signed });
  const m = /SignedHeaders=([^,]*), Signature=([0-9a-f]+)$/.exec(out.headers.authorization);
  return { signedHeaders: m[1], signature: m[2] };
}

// AWS hands out a new secret key with every set of temporary credentials.
// The stand-ins of test/aws-standins.js do too: the secret of their token T
// (imds-N, container-N, webid-N, assumed-N) is derived from T and the test
// key pair's secret, so that the emulator knows it without asking them. Any
// other token (one set in a test's settings) goes with the test secret.
const STANDIN_TOKEN = /^(imds|container|webid|assumed)-\d+$/;

function secretFor(secretAccessKey, token) {
  if (!token || !STANDIN_TOKEN.test(token)) return secretAccessKey;
  return crypto.createHmac('sha256', secretAccessKey).update(token, 'utf8').digest('base64').slice(0, 40);
}

/*
 * Check the signature of an incoming request. req needs method, url and
 * rawHeaders (or headers); body is the raw body Buffer. opts: {accessKeyId,
 * secretAccessKey, region, service, sessionToken (then required; a list
 * accepts any of its tokens), now (the clock the X-Amz-Date is held against;
 * the current time when not given)}. A stand-in's token is checked with its
 * own secret (secretFor()).
 * Resolves to {ok: true, accessKeyId} or {ok: false, code, message} where
 * code is the AWS error code (MissingAuthenticationToken, IncompleteSignature,
 * InvalidClientTokenId, SignatureDoesNotMatch).
 */
async function verify(req, body, opts) {
  const token = headerMap(req.rawHeaders, req.headers).get('x-amz-security-token');
  opts = Object.assign({}, opts, { secretAccessKey: secretFor(opts.secretAccessKey, token) });
  const own = verifyOwn(req, body, opts);
  if (!own.ok) return own;
  let aws;
  try {
    aws = await awsSignature(req, body, opts, own);
  } catch (err) {
    return fail('SignatureDoesNotMatch',
      `The AWS SDK signer (@smithy/signature-v4) could not re-sign this request: ${err && err.message}`);
  }
  if (aws.signature !== own.signature) {
    const lists = own.signed.join(';');
    return fail('SignatureDoesNotMatch',
      `The AWS SDK signer (@smithy/signature-v4) computes Signature=${aws.signature} for this ` +
      `request, not the Signature=${own.signature} it carries` +
      (aws.signedHeaders !== lists ? ` (it signs ${aws.signedHeaders}, the request lists ${lists})` : '') +
      '.');
  }
  return { ok: true, accessKeyId: own.accessKeyId };
}

module.exports = {
  sign, verify, sha256Hex, uriEncode, Sha256, secretFor,
};

'use strict';
// What every test server shares: its command line, its control endpoints,
// forwarding calls to the server behind it, listening ("READY <port>") and
// stopping.

const http = require('http');

// ---------------------------------------------------------------------
// command line

// Parse the command line after the options of spec, an object
// { name: { value: 'WORD', parse(text), required, many, key, default } }
// for each --name taking a value; every server also takes --host HOST
// (default 127.0.0.1) and --exit-with-parent. parse throws to refuse a
// value; many collects repeated options into an array; key names the
// property (default: the name in camelCase). check(opts), if given, returns
// a complaint about the whole or null. A bad command line prints the usage
// and exits with status 2.
function parseArgs(script, spec, check) {
  const all = Object.assign({}, spec, { host: { value: 'HOST', default: '127.0.0.1' } });
  const keyOf = (name) => all[name].key || name.replace(/-(.)/g, (m, c) => c.toUpperCase());
  const usage = (msg) => {
    if (msg) process.stderr.write(`${script.replace(/\.js$/, '')}: ${msg}\n`);
    const words = Object.entries(all).map(([name, o]) => {
      const word = `--${name} ${o.value}`;
      if (o.many) return `[${word}]...`;
      return o.required ? word : `[${word}]`;
    });
    process.stderr.write(`usage: ${script} ${words.join(' ')} [--exit-with-parent]\n`);
    process.exit(2);
  };

  const opts = { exitWithParent: false };
  for (const [name, o] of Object.entries(all)) opts[keyOf(name)] = o.many ? [] : (o.default !== undefined ? o.default : null);
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--exit-with-parent') {
      opts.exitWithParent = true;
      continue;
    }
    const name = a.startsWith('--') ? a.slice(2) : null;
    const o = name !== null && Object.prototype.hasOwnProperty.call(all, name) ? all[name] : null;
    if (!o) usage(`unknown argument ${a}`);
    if (i + 1 >= argv.length) usage(`${a} needs a value`);
    let v = argv[++i];
    try {
      if (o.parse) v = o.parse(v);
    } catch (e) {
      usage(`${a} ${o.value}: ${e.message}`);
    }
    if (o.many) opts[keyOf(name)].push(v);
    else opts[keyOf(name)] = v;
  }
  for (const [name, o] of Object.entries(all)) {
    if (o.required && opts[keyOf(name)] === null) usage(`--${name} ${o.value} is required`);
  }
  const complaint = check ? check(opts) : null;
  if (complaint) usage(complaint);
  return opts;
}

// Values of options, for parseArgs.
function portNumber(text) {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new Error('not a port number');
  return n;
}

function httpUrl(text) {
  const u = new URL(text);
  if (u.protocol !== 'http:') throw new Error('must be http://HOST:PORT');
  return u;
}

function positiveNumber(text) {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) throw new Error('must be positive');
  return n;
}

// ---------------------------------------------------------------------
// requests and answers

// Call handler(req, res, body) once the whole request body is in; body is
// null when it was larger than maxBytes (the rest is read and dropped).
function withBody(handler, maxBytes) {
  const limit = maxBytes === undefined ? Infinity : maxBytes;
  return (req, res) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size <= limit) chunks.push(c);
    });
    req.on('error', () => res.destroy());
    req.on('end', () => handler(req, res, size > limit ? null : Buffer.concat(chunks)));
  };
}

function sendJson(res, status, doc, extraHeaders) {
  const body = JSON.stringify(doc);
  res.writeHead(status, Object.assign({
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(body),
  }, extraHeaders || {}));
  res.end(body);
}

// The SQS action of a JSON-protocol call (X-Amz-Target: AmazonSQS.Action),
// or ''.
function sqsJsonAction(req) {
  const target = String(req.headers['x-amz-target'] || '');
  return target.startsWith('AmazonSQS.') ? target.slice('AmazonSQS.'.length) : '';
}

// The SQS action of a Query-protocol call (a form-encoded body with
// Action=...), or ''.
function sqsQueryAction(req, body) {
  if (!body || !/^application\/x-www-form-urlencoded/i.test(String(req.headers['content-type'] || ''))) return '';
  return new URLSearchParams(body.toString('utf8')).get('Action') || '';
}

// The SQS action of a call in either protocol, and whether it came in the
// Query protocol: {action, query}.
function sqsCall(req, body) {
  const jsonAction = sqsJsonAction(req);
  const queryAction = jsonAction ? '' : sqsQueryAction(req, body);
  return queryAction ? { action: queryAction, query: true } : { action: jsonAction, query: false };
}

// A control call refused for what it asked (400).
class Refusal extends Error {}

// The control endpoints through which the tests script a server: routes
// maps "METHOD /path" to a function returning the JSON document to answer;
// a POST route gets the request's JSON document (an empty body is {}) and
// may throw a Refusal. Returns control(req, res, body), which answers.
function controlApi(routes) {
  return (req, res, body) => {
    const path = req.url.split('?')[0];
    const route = routes[`${req.method} ${path}`];
    if (!route) return sendJson(res, 404, { error: `no control endpoint ${req.method} ${path}` });
    let doc;
    if (req.method === 'POST') {
      try {
        doc = JSON.parse(body.toString('utf8') || '{}');
      } catch (e) {
        return sendJson(res, 400, { error: `invalid JSON: ${e.message}` });
      }
    }
    let answer;
    try {
      answer = route(doc);
    } catch (e) {
      if (!(e instanceof Refusal)) throw e;
      return sendJson(res, 400, { error: e.message });
    }
    return sendJson(res, 200, answer);
  };
}

// ---------------------------------------------------------------------
// the server behind

// Calls sent on to target (an http: URL) over kept-alive connections, as
// received: method, path, and the headers' names, values and order, Host
// included (the SigV4 signature covers it).
function upstream(target) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });
  return {
    request(req, onResponse) {
      return http.request({
        host: target.hostname,
        port: target.port || 80,
        method: req.method,
        path: req.url,
        headers: req.rawHeaders,
        setHost: false,
        agent,
      }, onResponse);
    },
    close() {
      agent.destroy();
    },
  };
}

// Pass a call through to the server behind and its answer back untouched.
// onResponse(upRes), if given, sees the answer first and returns true when
// it has answered itself; onError(err), if given, hears of a failed call
// (answered 502 here unless an answer was under way). A client that gives
// up (a long poll) takes its upstream call along.
function passThrough(up, req, body, res, onResponse, onError) {
  const call = up.request(req, (upRes) => {
    if (onResponse && onResponse(upRes)) return;
    res.writeHead(upRes.statusCode, upRes.statusMessage, upRes.rawHeaders);
    upRes.pipe(res);
    upRes.on('error', () => res.destroy());
  });
  call.on('error', (err) => {
    if (onError) onError(err);
    if (!res.headersSent) {
      sendJson(res, 502, { __type: 'InternalError', message: `upstream unreachable: ${err.message}` },
        { 'Content-Type': 'application/x-amz-json-1.0' });
    } else {
      res.destroy();
    }
  });
  res.on('close', () => {
    if (!res.writableFinished) call.destroy();
  });
  call.end(body);
}

// ---------------------------------------------------------------------
// running

// Call stop() once the process that started us is gone, so a test script
// that dies without cleaning up leaves no server behind. (process.ppid is
// read once at start-up, so probe the parent instead.)
function exitWithParent(stop) {
  const parent = process.ppid;
  const timer = setInterval(() => {
    try {
      process.kill(parent, 0);
    } catch (e) {
      if (e.code === 'ESRCH') {
        clearInterval(timer);
        stop();
      }
    }
  }, 500);
  timer.unref();
}

// Listen on opts.port and opts.host, print "READY <port>"
// for the test harness (after onListening), and stop cleanly on SIGTERM,
// SIGINT or, with opts.exitWithParent, the parent's exit (calling
// opts.onShutdown first, if given). Connections idle longer than clients
// do, so that a kept-alive one is never closed under them, and no request
// is timed out here (stalls and long polls are the tests' business).
function serve(server, name, opts, onListening) {
  server.keepAliveTimeout = 120 * 1000;
  server.headersTimeout = 121 * 1000;
  server.requestTimeout = 0;
  server.maxRequestsPerSocket = 0;
  server.on('clientError', (err, socket) => socket.destroy());
  server.listen(opts.port, opts.host, () => {
    const port = server.address().port;
    if (onListening) onListening(port);
    process.stdout.write(`READY ${port}\n`);
  });
  server.on('error', (err) => {
    process.stderr.write(`${name}: ${err.message}\n`);
    process.exit(1);
  });
  function shutdown() {
    server.close(() => process.exit(0));
    server.closeAllConnections();
    if (opts.onShutdown) opts.onShutdown();
    setTimeout(() => process.exit(0), 2000).unref();
  }
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
  if (opts.exitWithParent) exitWithParent(shutdown);
}

module.exports = {
  parseArgs, portNumber, httpUrl, positiveNumber,
  withBody, sendJson, sqsJsonAction, sqsCall, Refusal, controlApi,
  upstream, passThrough,
  serve,
};

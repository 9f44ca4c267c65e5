#!/usr/bin/env node
'use strict';
// A tiny forward proxy for the tests, as found in corporate networks:
// CONNECT tunnels (HTTPS through the proxy) and absolute-form HTTP requests,
// to loopback addresses only, counted.
//
//   node test/http-proxy.js --listen PORT [--host 127.0.0.1] [--exit-with-parent]
//
// Control, on the same port (origin-form requests):
//   GET  /__proxy/stats        {"connect": n, "http": n, "targets": {"host:port": n}}
//   POST /__proxy/stats/reset
// Prints "READY <port>".

const http = require('http');
const net = require('net');
const { keepConnections, serve } = require('./lib/process');

function usage(msg) {
  if (msg) process.stderr.write(`http-proxy: ${msg}\n`);
  process.stderr.write('usage: http-proxy.js --listen PORT [--host HOST] [--exit-with-parent]\n');
  process.exit(2);
}

const opts = { listen: null, host: '127.0.0.1', exitWithParent: false };
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
    else usage(`unknown argument ${a}`);
  }
  if (!Number.isInteger(opts.listen) || opts.listen < 0 || opts.listen > 65535) usage('--listen PORT is required');
}

let stats;
const resetStats = () => { stats = { connect: 0, http: 0, targets: {} }; };
resetStats();

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1', '[::1]']);

function count(kind, host, port) {
  stats[kind] += 1;
  const key = `${host}:${port}`;
  stats.targets[key] = (stats.targets[key] || 0) + 1;
}

function reply(res, status, doc) {
  const body = JSON.stringify(doc);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

const server = http.createServer((req, res) => {
  if (req.url.startsWith('/')) {
    // addressed to the proxy itself
    if (req.method === 'GET' && req.url === '/__proxy/stats') return reply(res, 200, stats);
    if (req.method === 'POST' && req.url === '/__proxy/stats/reset') {
      resetStats();
      return reply(res, 200, stats);
    }
    return reply(res, 404, { error: `no control endpoint ${req.method} ${req.url}` });
  }
  let url;
  try {
    url = new URL(req.url);
  } catch (e) {
    return reply(res, 400, { error: 'bad request target' });
  }
  if (url.protocol !== 'http:' || !LOOPBACK.has(url.hostname)) {
    return reply(res, 403, { error: 'loopback http only' });
  }
  const port = Number(url.port || 80);
  count('http', url.hostname, port);
  // forward as received (the Host header the client signed included)
  const headers = [];
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    if (!/^proxy-/i.test(req.rawHeaders[i])) headers.push(req.rawHeaders[i], req.rawHeaders[i + 1]);
  }
  const up = http.request({
    host: url.hostname, port, method: req.method, path: url.pathname + url.search, headers, setHost: false,
  }, (upRes) => {
    res.writeHead(upRes.statusCode, upRes.statusMessage, upRes.rawHeaders);
    upRes.pipe(res);
  });
  up.on('error', () => {
    if (!res.headersSent) reply(res, 502, { error: 'upstream unreachable' });
    else res.destroy();
  });
  res.on('close', () => {
    if (!res.writableFinished) up.destroy();
  });
  req.pipe(up);
});

server.on('connect', (req, clientSocket, head) => {
  const [host, portText] = req.url.split(/:(?=\d+$)/);
  const port = Number(portText);
  if (!LOOPBACK.has(host) || !Number.isInteger(port)) {
    clientSocket.end('HTTP/1.1 403 Forbidden\r\n\r\n');
    return;
  }
  count('connect', host, port);
  const upstream = net.connect(port, host.replace(/^\[|\]$/g, ''), () => {
    clientSocket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    if (head && head.length) upstream.write(head);
    upstream.pipe(clientSocket);
    clientSocket.pipe(upstream);
  });
  upstream.on('error', () => clientSocket.destroy());
  clientSocket.on('error', () => upstream.destroy());
});

keepConnections(server);
serve(server, 'http-proxy', {
  port: opts.listen,
  host: opts.host,
  exitWithParent: opts.exitWithParent,
});

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
const {
  parseArgs, portNumber, withBody, sendJson, controlApi, serve,
} = require('./lib/server');

const opts = parseArgs('http-proxy.js', { listen: { value: 'PORT', parse: portNumber, required: true, key: 'port' } });

let stats;
const resetStats = () => { stats = { connect: 0, http: 0, targets: {} }; };
resetStats();

const control = withBody(controlApi({
  'GET /__proxy/stats': () => stats,
  'POST /__proxy/stats/reset': () => {
    resetStats();
    return stats;
  },
}));

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1', '[::1]']);

function count(kind, host, port) {
  stats[kind] += 1;
  const key = `${host}:${port}`;
  stats.targets[key] = (stats.targets[key] || 0) + 1;
}

const server = http.createServer((req, res) => {
  // origin-form: addressed to the proxy itself
  if (req.url.startsWith('/')) return control(req, res);
  let url;
  try {
    url = new URL(req.url);
  } catch (e) {
    return sendJson(res, 400, { error: 'bad request target' });
  }
  if (url.protocol !== 'http:' || !LOOPBACK.has(url.hostname)) {
    return sendJson(res, 403, { error: 'loopback http only' });
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
    if (!res.headersSent) sendJson(res, 502, { error: 'upstream unreachable' });
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

serve(server, 'http-proxy', opts);

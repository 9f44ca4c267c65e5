'use strict';
// Process utilities shared by the emulator and the test servers.

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

// Idle longer than clients do, so that a kept-alive connection is never
// closed under them, and never time a request out ourselves (stalls and
// long polls are the tests' business).
function keepConnections(server) {
  server.keepAliveTimeout = 120 * 1000;
  server.headersTimeout = 121 * 1000;
  server.requestTimeout = 0;
  server.maxRequestsPerSocket = 0;
  server.on('clientError', (err, socket) => socket.destroy());
}

// Listen, print "READY <port>" for the test harness (after onListening),
// and stop cleanly on SIGTERM, SIGINT or, if asked, the parent's exit
// (calling opts.onShutdown first, if given).
function serve(server, name, opts, onListening) {
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

module.exports = { exitWithParent, keepConnections, serve };

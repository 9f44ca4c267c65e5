'use strict';
// Process utilities shared by the emulator and the fault proxy.

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

module.exports = { exitWithParent };

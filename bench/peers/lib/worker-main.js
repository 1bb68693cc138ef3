'use strict';
// Entry point of a forked load process (load.js --procs K): a Worker on the IPC channel.

const { Worker } = require('./worker');

let worker;
process.on('message', (m) => {
  if (m.op === 'init') {
    worker = new Worker(m.config, (msg) => {
      // The report is the last word: leave once it is written.
      if (msg.op === 'report') process.send(msg, () => process.disconnect());
      else process.send(msg);
    });
  } else {
    worker.handle(m);
  }
});
// The coordinator has gone (finished or failed): so does this process.
process.on('disconnect', () => process.exit(0));

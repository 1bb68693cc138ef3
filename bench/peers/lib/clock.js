'use strict';
// Microseconds on CLOCK_MONOTONIC (node's hrtime), which every process on the machine shares:
// the load's processes agree on one run start, and a recipient times a message against the send
// time its sender wrote into it.

function nowUs() {
  const [s, ns] = process.hrtime();
  return s * 1e6 + ns / 1e3;
}

module.exports = { nowUs };

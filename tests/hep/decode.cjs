// Decodes HEP packets with sipcapture's hep-js: one packet per line of
// stdin, in hex; prints one JSON object per line ({} for a packet hep-js
// refuses). Used by tests/e2e/hep.rs.
'use strict';
const hep = require('hep-js');
const lines = require('fs').readFileSync(0, 'utf8').split('\n').filter((l) => l.trim());
for (const line of lines) {
  const decoded = hep.decapsulate(Buffer.from(line.trim(), 'hex'));
  process.stdout.write(JSON.stringify(decoded || {}) + '\n');
}

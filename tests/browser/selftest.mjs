#!/usr/bin/env node
// Checks the harness without the proxy: makes a self-signed cert (openssl CLI)
// in a temp dir, starts standin.mjs (digest auth on), then runs run.mjs's
// register and call-browser scenarios against it, and a register with a
// certificate Chromium must refuse. Exit 0 when all three behave.
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'switchyard-selftest-'));
const mkcert = (name, cn) => {
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2',
    '-keyout', path.join(dir, `${name}-key.pem`), '-out', path.join(dir, `${name}.pem`),
    '-subj', `/CN=${cn}`, '-addext', 'subjectAltName=IP:127.0.0.1',
  ], { stdio: 'ignore' });
  return path.join(dir, `${name}.pem`);
};
const cert = mkcert('server', '127.0.0.1');
const other = mkcert('other', 'other');

const standin = spawn(process.execPath, [path.join(here, 'standin.mjs'), cert, path.join(dir, 'server-key.pem')], {
  env: { ...process.env, STANDIN_PASSWORD: 'selftest' },
  stdio: ['ignore', 'pipe', 'ignore'],
});
const port = await new Promise((resolve, reject) => {
  let buf = '';
  standin.stdout.on('data', (d) => {
    buf += d;
    const m = /"port":\s*(\d+)/.exec(buf);
    if (m) resolve(Number(m[1]));
  });
  standin.once('exit', (code) => reject(new Error(`standin exited ${code}`)));
});

function run(args) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(here, 'run.mjs'), JSON.stringify(args)], {
      stdio: ['ignore', 'pipe', process.env.SELFTEST_VERBOSE ? 'inherit' : 'ignore'],
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.on('exit', (code) => {
      let json = null;
      try {
        json = JSON.parse(out.trim().split('\n').pop());
      } catch {
        // left null
      }
      resolve({ code, json });
    });
  });
}

const base = { ws: `wss://127.0.0.1:${port}/`, cert, domain: 'selftest.invalid', timeout_ms: 20000 };
const alice = { user: 'alice', password: 'selftest' };
const bob = { user: 'bob', password: 'selftest' };
const checks = [
  ['register', { ...base, scenario: 'register', caller: alice }, (r) => r.code === 0 && r.json.ok],
  [
    'call-browser',
    { ...base, scenario: 'call-browser', caller: alice, callee: bob, hold_ms: 1000, require_media: true },
    (r) => r.code === 0 && r.json.ok,
  ],
  [
    'untrusted cert refused',
    { ...base, cert: other, scenario: 'register', caller: alice, timeout_ms: 10000 },
    (r) => r.code === 1 && r.json && !r.json.ok && /ERR_CERT/.test(r.json.error),
  ],
];
let failed = 0;
for (const [name, args, pass] of checks) {
  const r = await run(args);
  const ok = !!(r.json && pass(r));
  if (!ok) failed += 1;
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name} (exit ${r.code}, ${r.json ? r.json.elapsed_ms : '?'} ms)${ok ? '' : ` ${JSON.stringify(r.json)}`}`);
}
standin.kill();
fs.rmSync(dir, { recursive: true, force: true });
process.exit(failed ? 1 : 0);

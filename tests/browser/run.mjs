#!/usr/bin/env node
// Drives JsSIP WebRTC phones in headless Debian Chromium against a SIP-over-WSS
// server. Usage (cwd = repo root): node tests/browser/run.mjs '<json>'
// ('@file.json' or '-' for stdin also work).
//
// JSON: {"ws": "wss://127.0.0.1:PORT/", "cert": "/path/cert.pem", "domain": "example.test",
//        "scenario": "register" | "call-browser" | "call-uri" | "answer",
//        "caller": {"user": "alice", "password": "...", "auth_user": "...", "display_name": "..."},
//        "callee": {"user": "bob", "password": "..."} | null,
//        "target": "sip:bob@example.test", "hold_ms": 1500, "timeout_ms": 20000,
//        "require_media": false, "debug": false, "log_sdp": false,
//        "sip_trace": true, "loopback_media": true, "page_port": 0}
//  register      caller registers (then unregisters).
//  call-browser  callee (auto-answers) and caller register in two browser
//                contexts; caller calls sip:<callee.user>@<domain>; both
//                confirmed; hold_ms; caller hangs up; both ended.
//  call-uri      caller registers, calls `target`, confirmed, hold_ms, hangs up.
//  answer        callee registers (stderr then shows "callee: registered"),
//                auto-answers one call, waits for the far end's BYE.
//  cert          PEM with the certificate(s) the server presents; their SPKI
//                hashes go to --ignore-certificate-errors-spki-list.
//  require_media also require ICE connected on the browser side(s).
//  debug         JsSIP's own debug log to the page console (stderr).
//  log_sdp       add {ev:'sdp'} events with full SDP bodies.
//  sip_trace     {ev:'sip', dir, line, cseq} events for every SIP message.
//  loopback_media offer/answer only 127.0.0.1 ICE candidates (default true).
//  page_port     fixes the page's port, so its Origin (http://127.0.0.1:PORT)
//                can go in the proxy's [websocket] allowed_origins; 0 = ephemeral.
// Prints one JSON line {"ok", "scenario", "elapsed_ms", "caller", "callee", "error"}
// on stdout, where each phone is {user, state, registered, ice, ice_connected,
// events: [{t (ms since start), ev, ...}]}; exit status 0 when ok, 1
// otherwise (2 for bad arguments). Page consoles go to stderr as "[caller] ...".
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { bundleJsSIP } from './bundle.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const t0 = Date.now();
const CHROMIUM = process.env.SWITCHYARD_CHROMIUM || '/usr/bin/chromium';

function log(msg) {
  process.stderr.write(`[run +${Date.now() - t0}ms] ${msg}\n`);
}

let finished = false;
function finish(result, code) {
  if (finished) return;
  finished = true;
  result.elapsed_ms = Date.now() - t0;
  process.stdout.write(JSON.stringify(result) + '\n', () => process.exit(code));
}

function parseArgs() {
  let raw = process.argv[2];
  if (!raw) throw new Error('usage: node run.mjs \'<json>\' (or @file.json, or - for stdin)');
  if (raw === '-') raw = fs.readFileSync(0, 'utf8');
  else if (raw.startsWith('@')) raw = fs.readFileSync(raw.slice(1), 'utf8');
  const a = JSON.parse(raw);
  const scenarios = ['register', 'call-browser', 'call-uri', 'answer'];
  if (!scenarios.includes(a.scenario)) throw new Error(`scenario must be one of ${scenarios.join(', ')}`);
  if (typeof a.ws !== 'string' || !/^wss?:\/\//.test(a.ws)) throw new Error('"ws" must be a ws:// or wss:// URL');
  if (!a.domain) throw new Error('"domain" is required');
  if ((a.scenario === 'call-browser' || a.scenario === 'answer') && (!a.callee || !a.callee.user)) {
    throw new Error(`"callee.user" is required for ${a.scenario}`);
  }
  if (a.scenario !== 'answer' && (!a.caller || !a.caller.user)) throw new Error('"caller.user" is required');
  if (a.scenario === 'call-uri' && !a.target) throw new Error('"target" is required for call-uri');
  if (a.ws.startsWith('wss:') && !a.cert) throw new Error('"cert" is required for wss://');
  a.hold_ms = a.hold_ms ?? 1500;
  a.timeout_ms = a.timeout_ms ?? 20000;
  return a;
}

// base64(SHA-256(SubjectPublicKeyInfo DER)) of every certificate in the PEM file:
// the format of Chromium's --ignore-certificate-errors-spki-list. Chromium
// matches it against the certificates the server presents (leaf and chain).
function spkiHashes(pemPath) {
  const pem = fs.readFileSync(pemPath, 'utf8');
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) || [];
  if (!blocks.length) throw new Error(`no certificate in ${pemPath}`);
  return blocks.map((b) => {
    const der = new crypto.X509Certificate(b).publicKey.export({ type: 'spki', format: 'der' });
    return crypto.createHash('sha256').update(der).digest('base64');
  });
}

function serve(port) {
  const files = {
    '/phone.html': ['text/html; charset=utf-8', fs.readFileSync(path.join(here, 'phone.html'))],
    '/phone.js': ['text/javascript; charset=utf-8', fs.readFileSync(path.join(here, 'phone.js'))],
    '/jssip.js': ['text/javascript; charset=utf-8', Buffer.from(bundleJsSIP())],
  };
  files['/'] = files['/phone.html'];
  files['/favicon.ico'] = ['image/x-icon', Buffer.alloc(0)];
  const server = http.createServer((req, res) => {
    const f = files[new URL(req.url, 'http://x').pathname];
    if (!f) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found');
      return;
    }
    res.writeHead(200, { 'content-type': f[0], 'cache-control': 'no-store' });
    res.end(f[1]);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

// playwright-core starts Chromium in its own process group, and Chromium
// outlives a SIGKILLed parent. A detached shell watches this process and kills
// that group if we die without closing the browser; on a normal exit it is
// killed first.
function startWatchdog(scratch) {
  const groups = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // f[1] = ppid, f[2] = pgrp
      if (Number(f[1]) === process.pid && Number(f[2]) === Number(d)) groups.push(Number(d));
    } catch {
      // raced with an exiting process
    }
  }
  if (!groups.length) {
    log('watchdog: no chromium process group found');
    return null;
  }
  const kills = groups.map((g) => `kill -9 -- -${g} 2>/dev/null`).join('; ');
  const child = spawn(
    'sh',
    [
      '-c',
      `while kill -0 ${process.pid} 2>/dev/null; do sleep 0.5; done; ${kills}; sleep 1; rm -rf "$1"`,
      'watchdog',
      scratch,
    ],
    { detached: true, stdio: 'ignore' },
  );
  child.unref();
  return child;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  let args;
  try {
    args = parseArgs();
  } catch (e) {
    finish({ ok: false, scenario: null, caller: null, callee: null, error: `bad arguments: ${e.message}` }, 2);
    return;
  }
  const result = { ok: false, scenario: args.scenario, caller: null, callee: null, error: null };
  const deadline = t0 + args.timeout_ms;
  const remaining = () => Math.max(1, deadline - Date.now());

  // Last resort if closing the browser itself hangs.
  setTimeout(() => {
    result.error = result.error || `hard timeout after ${args.timeout_ms} ms (+10 s grace)`;
    finish(result, 1);
  }, args.timeout_ms + 10000).unref();

  let server;
  let browser;
  let watchdog = null;
  let scratch = null;
  const phones = {};
  try {
    // One private temp dir for this run: our --user-data-dir, plus (through
    // TMPDIR) playwright-core's artifacts and Chromium's own temp files; it
    // is removed at exit, or by the watchdog if this process is killed.
    scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'switchyard-browser-'));
    process.env.TMPDIR = scratch;
    const userDataDir = path.join(scratch, 'profile');
    fs.mkdirSync(userDataDir);
    // The whole command line is ours (ignoreDefaultArgs: true below):
    // playwright's defaults carry their own --disable-features, and Chromium
    // keeps only the last --disable-features it is given.
    const chromeArgs = [
      '--headless=new',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--use-fake-device-for-media-stream',
      '--use-fake-ui-for-media-stream',
      `--user-data-dir=${userDataDir}`,
      // What playwright-core needs to drive the browser.
      '--remote-debugging-pipe',
      '--no-startup-window',
      // From playwright-core's defaults: quiet, and no throttling of the
      // phone pages' timers (both pages are background tabs of a sort).
      '--disable-field-trial-config',
      '--disable-background-timer-throttling',
      '--disable-backgrounding-occluded-windows',
      '--disable-renderer-backgrounding',
      '--disable-back-forward-cache',
      '--disable-breakpad',
      '--disable-client-side-phishing-detection',
      '--disable-component-extensions-with-background-pages',
      '--disable-default-apps',
      '--disable-dev-shm-usage',
      '--disable-extensions',
      '--disable-hang-monitor',
      '--disable-ipc-flooding-protection',
      '--disable-popup-blocking',
      '--disable-prompt-on-repost',
      '--disable-domain-reliability',
      '--metrics-recording-only',
      '--no-default-browser-check',
      '--no-service-autorun',
      '--password-store=basic',
      '--use-mock-keychain',
      '--mute-audio',
      // Gather 127.0.0.1 ICE candidates too; phone.js then offers/answers
      // only those, so media stays on loopback (see loopback_media).
      '--allow-loopback-in-peer-connection',
      // No name lookups at all (Chromium still asks DNS for Google update and
      // account hosts despite the flags above); only loopback is left alone.
      '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.*',
      '--disable-features=' + [
        // No mDNS-obfuscated ICE candidates, so no mDNS responder joining
        // 224.0.0.251 on the machine's interfaces.
        'WebRtcHideLocalIpsWithMdns',
        // playwright-core's list (1.65).
        'AvoidUnnecessaryBeforeUnloadCheckSync',
        'DestroyProfileOnBrowserClose',
        'HttpsUpgrades',
        'HttpsFirstBalancedModeAutoEnable',
        'LensOverlay',
        'MediaRouter',
        'PaintHolding',
        'ThirdPartyStoragePartitioning',
        'AvoidCorsURLLoaderRestartOnRedirect',
        'OptimizationHints',
        'NetworkTimeServiceQuerying',
        'AimEnabled',
        'PreconnectToSearch',
        // More phoning home.
        'Translate',
        'DialMediaRouteProvider',
        'CertificateTransparencyComponentUpdater',
        'AutofillServerCommunication',
        'InterestFeedContentSuggestions',
      ].join(','),
      '--enable-features=SkipListAccountsWithoutGaiaCookies',
    ];
    if (args.cert) {
      const hashes = spkiHashes(args.cert);
      log(`cert ${args.cert} spki sha256: ${hashes.join(',')}`);
      chromeArgs.push(`--ignore-certificate-errors-spki-list=${hashes.join(',')}`);
    }
    server = await serve(args.page_port || 0);
    const base = `http://127.0.0.1:${server.address().port}`;
    log(`serving phone page at ${base}/ (the WebSocket Origin is ${base})`);

    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: false, // --headless=new is passed explicitly above
      ignoreDefaultArgs: true,
      args: chromeArgs,
      timeout: remaining(),
    });
    log(`chromium ${browser.version()} up`);
    watchdog = startWatchdog(scratch);

    const openPhone = async (name, who, extra) => {
      const context = await browser.newContext();
      const page = await context.newPage();
      const phone = { name, who, context, page };
      phones[name] = phone;
      page.on('console', (m) => {
        process.stderr.write(`[${name}] ${m.text()}\n`);
        if (m.type() === 'error') phone.consoleError = m.text();
      });
      page.on('pageerror', (e) => process.stderr.write(`[${name}] pageerror: ${e.message}\n`));
      await page.goto(`${base}/phone.html`, { timeout: remaining() });
      const cfg = {
        ws: args.ws,
        domain: args.domain,
        user: who.user,
        password: who.password || null,
        authorizationUser: who.auth_user || null,
        displayName: who.display_name || null,
        debug: !!args.debug,
        logSdp: !!args.log_sdp,
        sipTrace: args.sip_trace !== false,
        loopbackMedia: args.loopback_media !== false,
        t0,
        timeoutMs: remaining(),
        ...extra,
      };
      log(`${name}: registering sip:${who.user}@${args.domain} via ${args.ws}`);
      await page.evaluate((c) => window.phone.start(c), cfg);
      log(`${name}: registered`);
      return phone;
    };
    const waitFor = (p, want, fail) =>
      p.page.evaluate(([w, f, ms]) => window.phone.waitFor(w, f, ms), [want, fail, remaining()]);
    const call = async (p, uri) => {
      log(`${p.name}: calling ${uri}`);
      await p.page.evaluate((u) => window.phone.call(u), uri);
    };
    const hangup = async (p) => {
      log(`${p.name}: hanging up`);
      await p.page.evaluate(() => window.phone.hangup());
    };
    const stillUp = async (p) => {
      const bad = await p.page.evaluate(() => window.phone.log.find((e) => e.ev === 'ended' || e.ev === 'failed'));
      if (bad) throw new Error(`${p.name}: call dropped during hold: ${JSON.stringify(bad)}`);
    };

    const scenario = (async () => {
      if (args.scenario === 'register') {
        await openPhone('caller', args.caller, {});
      } else if (args.scenario === 'call-browser') {
        const callee = await openPhone('callee', args.callee, { autoAnswer: true });
        const caller = await openPhone('caller', args.caller, {});
        await call(caller, `sip:${args.callee.user}@${args.domain}`);
        await Promise.all([
          waitFor(caller, 'confirmed', ['failed', 'ended']),
          waitFor(callee, 'confirmed', ['failed', 'ended']),
        ]);
        log(`both confirmed; holding ${args.hold_ms} ms`);
        await sleep(args.hold_ms);
        await stillUp(caller);
        await stillUp(callee);
        await hangup(caller);
        await Promise.all([waitFor(caller, 'ended', ['failed']), waitFor(callee, 'ended', ['failed'])]);
        log('both ended');
      } else if (args.scenario === 'call-uri') {
        const caller = await openPhone('caller', args.caller, {});
        await call(caller, args.target);
        await waitFor(caller, 'confirmed', ['failed', 'ended']);
        log(`confirmed; holding ${args.hold_ms} ms`);
        await sleep(args.hold_ms);
        await stillUp(caller);
        await hangup(caller);
        await waitFor(caller, 'ended', ['failed']);
        log('ended');
      } else if (args.scenario === 'answer') {
        // Register the callee, auto-answer one incoming call, wait for the far
        // end to hang up. Callers may wait for the stderr line "callee: registered".
        const callee = await openPhone('callee', args.callee, { autoAnswer: true });
        await waitFor(callee, 'confirmed', ['failed', 'ended']);
        log('confirmed; waiting for the far end to hang up');
        await waitFor(callee, 'ended', ['failed']);
        log('ended');
      }
    })();
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timeout after ${args.timeout_ms} ms`)), remaining());
    });
    try {
      await Promise.race([scenario, timeout]);
      result.ok = true;
    } finally {
      clearTimeout(timer);
      scenario.catch(() => {});
    }
  } catch (e) {
    result.error = String((e && e.message) || e)
      .replace(/^page\.evaluate: /, '')
      .replace(/^Error: /, '')
      .split('\n')[0];
    // e.g. "WebSocket connection to 'wss://...' failed: ... net::ERR_CERT_AUTHORITY_INVALID"
    const consoleErrors = Object.values(phones)
      .filter((p) => p.consoleError)
      .map((p) => `${p.name}: ${p.consoleError}`);
    if (consoleErrors.length) result.error += ` (last console error: ${consoleErrors.join('; ')})`;
    log(`error: ${result.error}`);
  }

  // Collect what each page saw, unregister (bounded), then close everything.
  for (const [name, p] of Object.entries(phones)) {
    try {
      await Promise.race([p.page.evaluate(() => window.phone.stop()), sleep(3000)]);
    } catch (e) {
      log(`${name}: stop failed: ${e.message.split('\n')[0]}`);
    }
    try {
      const snap = await Promise.race([
        p.page.evaluate(() => ({ state: window.phone.state, events: window.phone.log })),
        sleep(2000).then(() => null),
      ]);
      const events = (snap && snap.events) || [];
      const ice = events.filter((e) => e.ev === 'ice').map((e) => e.state);
      result[name] = {
        user: p.who.user,
        state: snap ? snap.state : 'unknown',
        registered: events.some((e) => e.ev === 'registered'),
        ice: ice.length ? ice[ice.length - 1] : null,
        ice_connected: ice.includes('connected') || ice.includes('completed'),
        events,
      };
    } catch (e) {
      log(`${name}: could not read log: ${e.message.split('\n')[0]}`);
    }
  }
  if (result.ok && args.require_media && args.scenario !== 'register') {
    const sides = args.scenario === 'call-browser' ? ['caller', 'callee'] : ['caller'];
    const dead = sides.filter((s) => !(result[s] && result[s].ice_connected));
    if (dead.length) {
      result.ok = false;
      result.error = `require_media: ICE never connected on ${dead.join(', ')}`;
    }
  }
  if (browser) {
    await Promise.race([browser.close().catch((e) => log(`browser.close: ${e.message}`)), sleep(5000)]);
  }
  if (server) server.close();
  if (scratch) fs.rmSync(scratch, { recursive: true, force: true, maxRetries: 3 });
  if (watchdog) {
    try {
      process.kill(watchdog.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  finish(result, result.ok ? 0 : 1);
}

main().catch((e) => {
  finish({ ok: false, scenario: null, caller: null, callee: null, error: `internal: ${e && e.stack}` }, 1);
});

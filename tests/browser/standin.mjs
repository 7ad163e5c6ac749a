#!/usr/bin/env node
// Test-only stand-in for the proxy's SIP-over-WSS listener, used to check the
// harness itself (not a SIP proxy): answers REGISTER with 200 OK and relays
// other requests/responses between registered WebSocket clients by
// Request-URI user (AOR or Contact user) and Call-ID, unmodified.
// With STANDIN_PASSWORD set, REGISTER and INVITE are digest-challenged
// (401/407, MD5, qop=auth) and every user's password is that value.
// Usage: node standin.mjs CERT.pem KEY.pem [PORT]   -> prints {"port": N}
import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import { WebSocketServer } from 'ws';

const [certPath, keyPath, portArg] = process.argv.slice(2);
if (!certPath || !keyPath) {
  console.error('usage: node standin.mjs CERT.pem KEY.pem [PORT]');
  process.exit(2);
}

const server = https.createServer({ cert: fs.readFileSync(certPath), key: fs.readFileSync(keyPath) });
const wss = new WebSocketServer({
  server,
  handleProtocols: (protocols) => (protocols.has('sip') ? 'sip' : false),
});

const byUser = new Map(); // AOR user or Contact user -> ws
const calls = new Map(); // Call-ID -> Set(ws)

function parse(text) {
  const [head, ...rest] = text.split('\r\n\r\n');
  const lines = head.split('\r\n');
  const headers = [];
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':');
    if (i > 0) headers.push([l.slice(0, i).trim(), l.slice(i + 1).trim()]);
  }
  const get = (...names) => headers.filter(([n]) => names.includes(n.toLowerCase())).map(([, v]) => v);
  return { start: lines[0], headers, get, body: rest.join('\r\n\r\n') };
}

const PASSWORD = process.env.STANDIN_PASSWORD || null;
const md5 = (x) => crypto.createHash('md5').update(x).digest('hex');

// true when the request carries a valid digest answer for PASSWORD.
function authorized(msg, method, header) {
  const h = msg.get(header)[0];
  if (!h) return false;
  const p = {};
  for (const m of h.replace(/^Digest\s+/i, '').matchAll(/(\w+)=(?:"([^"]*)"|([^,\s]*))/g)) p[m[1]] = m[2] ?? m[3];
  const ha1 = md5(`${p.username}:${p.realm}:${PASSWORD}`);
  const ha2 = md5(`${method}:${p.uri}`);
  const want = p.qop
    ? md5(`${ha1}:${p.nonce}:${p.nc}:${p.cnonce}:${p.qop}:${ha2}`)
    : md5(`${ha1}:${p.nonce}:${ha2}`);
  return want === p.response;
}

function reply(ws, msg, status, extra = []) {
  const to = msg.get('to', 't')[0] || '';
  const out = [`SIP/2.0 ${status}`];
  for (const v of msg.get('via', 'v')) out.push(`Via: ${v}`);
  out.push(`From: ${msg.get('from', 'f')[0]}`);
  out.push(`To: ${/;tag=/.test(to) ? to : `${to};tag=standin${Date.now()}`}`);
  out.push(`Call-ID: ${msg.get('call-id', 'i')[0]}`, `CSeq: ${msg.get('cseq')[0]}`);
  out.push(...extra, 'Content-Length: 0', '', '');
  ws.send(out.join('\r\n'));
  console.error(`standin: -> ${status}`);
}

function challenge(ws, msg, method) {
  if (!PASSWORD || method === 'ACK' || method === 'CANCEL' || method === 'BYE') return false;
  const header = method === 'REGISTER' ? 'authorization' : 'proxy-authorization';
  if (authorized(msg, method, header)) return false;
  const realm = /@([^;>]+)/.exec(msg.get('from', 'f')[0] || '')?.[1] || 'standin';
  const nonce = crypto.randomBytes(8).toString('hex');
  const value = `Digest realm="${realm}", nonce="${nonce}", algorithm=MD5, qop="auth"`;
  if (method === 'REGISTER') reply(ws, msg, '401 Unauthorized', [`WWW-Authenticate: ${value}`]);
  else reply(ws, msg, '407 Proxy Authentication Required', [`Proxy-Authenticate: ${value}`]);
  return true;
}

function userOf(uri) {
  const m = /sips?:([^@;>]+)@/.exec(uri || '');
  return m ? m[1] : null;
}

wss.on('connection', (ws, req) => {
  console.error(`standin: connection from ${req.socket.remoteAddress} protocol=${ws.protocol}`);
  ws.on('message', (data) => {
    const text = data.toString();
    const msg = parse(text);
    const callId = msg.get('call-id', 'i')[0];
    console.error(`standin: <- ${msg.start}`);
    if (/^SIP\/2\.0 /.test(msg.start)) {
      // Response: hand it to the other party of this Call-ID.
      for (const peer of calls.get(callId) || []) if (peer !== ws) peer.send(text);
      return;
    }
    const [method, ruri] = msg.start.split(' ');
    // An ACK for a challenge (same Call-ID, never forwarded) ends here too.
    if (method === 'ACK' && !calls.has(callId)) return;
    if (challenge(ws, msg, method)) return;
    if (method === 'REGISTER') {
      const to = msg.get('to', 't')[0] || '';
      const contact = msg.get('contact', 'm')[0] || '';
      byUser.set(userOf(to), ws);
      byUser.set(userOf(contact), ws);
      const out = ['SIP/2.0 200 OK'];
      for (const v of msg.get('via', 'v')) out.push(`Via: ${v}`);
      out.push(`From: ${msg.get('from', 'f')[0]}`);
      out.push(`To: ${/;tag=/.test(to) ? to : `${to};tag=standin${Date.now()}`}`);
      out.push(`Call-ID: ${callId}`);
      out.push(`CSeq: ${msg.get('cseq')[0]}`);
      if (contact) out.push(`Contact: ${contact}${/expires=/.test(contact) ? '' : ';expires=600'}`);
      out.push('Content-Length: 0', '', '');
      ws.send(out.join('\r\n'));
      console.error(`standin: -> 200 OK (REGISTER ${userOf(to)})`);
      return;
    }
    const peer = byUser.get(userOf(ruri));
    if (!peer || peer.readyState !== peer.OPEN) {
      if (method === 'ACK') return;
      const out = [`SIP/2.0 404 Not Found`];
      for (const v of msg.get('via', 'v')) out.push(`Via: ${v}`);
      out.push(`From: ${msg.get('from', 'f')[0]}`, `To: ${msg.get('to', 't')[0]};tag=standin404`);
      out.push(`Call-ID: ${callId}`, `CSeq: ${msg.get('cseq')[0]}`, 'Content-Length: 0', '', '');
      ws.send(out.join('\r\n'));
      return;
    }
    if (!calls.has(callId)) calls.set(callId, new Set());
    calls.get(callId).add(ws).add(peer);
    peer.send(text);
  });
  ws.on('close', () => {
    for (const [k, v] of byUser) if (v === ws) byUser.delete(k);
  });
});

server.listen(Number(portArg || 0), '127.0.0.1', () => {
  console.log(JSON.stringify({ port: server.address().port }));
});

// A JsSIP WebRTC phone driven by run.mjs through `window.phone`.
// Every SIP/media event lands in `phone.log` as {t, ev, ...}; `phone.state`
// is one of idle, connecting, registered, unregistered, registrationFailed,
// calling, ringing, incoming, answering, accepted, confirmed, ended, failed.
/* global JsSIP */
(function () {
  'use strict';

  // Event times are ms since phone.cfg.t0 (run.mjs passes its own start
  // time, so every page shares one clock), else since page load.
  let t0 = Date.now();
  const statusEl = document.getElementById('status');
  const remoteAudio = document.getElementById('remote');

  const phone = {
    state: 'idle',
    log: [],
    ua: null,
    session: null,
    cfg: null,
    _waiters: [],

    // cfg: {ws, user, domain, password?, autoAnswer?, debug?, displayName?}
    // Resolves on `registered`, rejects on `registrationFailed`.
    start(cfg) {
      if (this.ua) throw new Error('phone already started');
      this.cfg = cfg;
      if (cfg.t0) t0 = cfg.t0;
      if (cfg.debug) JsSIP.debug.enable('JsSIP:*');
      else JsSIP.debug.disable();
      const socket = new JsSIP.WebSocketInterface(cfg.ws);
      if (cfg.sipTrace !== false) traceSocket(socket);
      const config = {
        sockets: [socket],
        uri: `sip:${cfg.user}@${cfg.domain}`,
        register: true,
        session_timers: false,
        connection_recovery_min_interval: 2,
        connection_recovery_max_interval: 4,
      };
      if (cfg.password) config.password = cfg.password;
      if (cfg.authorizationUser) config.authorization_user = cfg.authorizationUser;
      if (cfg.displayName) config.display_name = cfg.displayName;
      if (cfg.registerExpires) config.register_expires = cfg.registerExpires;
      const ua = new JsSIP.UA(config);
      this.ua = ua;
      setState('connecting');

      ua.on('connecting', (e) => record('ws', { state: 'connecting', attempts: e.attempts }));
      ua.on('connected', () => record('ws', { state: 'connected' }));
      ua.on('disconnected', (e) => {
        record('ws', { state: 'disconnected', error: !!e.error, code: e.code, reason: e.reason });
        // The WebSocket never opened (TLS not trusted, nothing listening...):
        // JsSIP would retry forever, so start() gives up on the first failure.
        if (this.state === 'connecting') record('wsFailed', { code: e.code, reason: e.reason });
      });
      ua.on('registered', (e) => {
        setState('registered');
        record('registered', { status: e.response && e.response.status_code });
      });
      ua.on('unregistered', (e) => {
        if (!this.session) setState('unregistered');
        record('unregistered', { status: e.response && e.response.status_code, cause: e.cause });
      });
      ua.on('registrationFailed', (e) => {
        setState('registrationFailed');
        record('registrationFailed', {
          cause: e.cause,
          status: e.response && e.response.status_code,
          reason: e.response && e.response.reason_phrase,
        });
      });
      ua.on('newRTCSession', (e) => this._onNewSession(e));
      ua.start();
      return this.waitFor(['registered'], ['registrationFailed', 'wsFailed'], cfg.timeoutMs || 15000);
    },

    _onNewSession(e) {
      const session = e.session;
      const direction = e.originator === 'local' ? 'outgoing' : 'incoming';
      const req = e.request;
      record('newRTCSession', {
        direction,
        from: req && req.from && req.from.uri && req.from.uri.toString(),
        to: req && req.to && req.to.uri && req.to.uri.toString(),
        call_id: req && req.call_id,
      });
      if (this.session && !this.session.isEnded()) {
        // One call at a time; a second one is refused.
        if (direction === 'incoming') session.terminate({ status_code: 486 });
        return;
      }
      this.session = session;
      setState(direction === 'incoming' ? 'incoming' : 'calling');

      const wirePc = (pc) => {
        pc.addEventListener('iceconnectionstatechange', () => {
          record('ice', { state: pc.iceConnectionState });
          if (pc.iceConnectionState === 'connected') recordSelectedPair(pc);
        });
        pc.addEventListener('connectionstatechange', () =>
          record('pc', { state: pc.connectionState }));
        pc.addEventListener('track', (ev) => {
          record('track', { kind: ev.track.kind });
          remoteAudio.srcObject = ev.streams[0] || new MediaStream([ev.track]);
        });
      };
      if (session.connection) wirePc(session.connection);
      else session.on('peerconnection', (ev) => wirePc(ev.peerconnection));

      session.on('sdp', (ev) => {
        if (ev.originator === 'local' && this.cfg && this.cfg.loopbackMedia) {
          const r = loopbackOnly(ev.sdp);
          ev.sdp = r.sdp;
          record('loopbackSdp', { kept: r.kept, dropped: r.dropped });
        }
        if (this.cfg && this.cfg.logSdp) record('sdp', { originator: ev.originator, type: ev.type, sdp: ev.sdp });
      });
      session.on('progress', (ev) => {
        if (this.session === session && direction === 'outgoing') setState('ringing');
        record('progress', { originator: ev.originator, status: ev.response && ev.response.status_code });
      });
      session.on('accepted', (ev) => {
        setState('accepted');
        record('accepted', { originator: ev.originator, status: ev.response && ev.response.status_code });
      });
      session.on('confirmed', (ev) => {
        setState('confirmed');
        record('confirmed', { originator: ev.originator });
      });
      session.on('ended', (ev) => {
        setState('ended');
        record('ended', { originator: ev.originator, cause: ev.cause });
      });
      session.on('failed', (ev) => {
        setState('failed');
        record('failed', {
          originator: ev.originator,
          cause: ev.cause,
          status: ev.message && ev.message.status_code,
          reason: ev.message && ev.message.reason_phrase,
        });
      });

      if (direction === 'incoming' && this.cfg && this.cfg.autoAnswer) {
        setTimeout(() => {
          try {
            this.answer();
          } catch (err) {
            record('error', { where: 'answer', message: String(err && err.message || err) });
          }
        }, this.cfg.answerDelayMs || 0);
      }
    },

    call(uri) {
      if (!this.ua) throw new Error('phone not started');
      record('call', { uri });
      this.ua.call(uri, {
        mediaConstraints: { audio: true, video: false },
        pcConfig: { iceServers: [] },
        rtcOfferConstraints: { offerToReceiveAudio: true, offerToReceiveVideo: false },
      });
      return true;
    },

    answer() {
      const s = this.session;
      if (!s || s.direction !== 'incoming') throw new Error('no incoming call to answer');
      setState('answering');
      record('answer', {});
      s.answer({
        mediaConstraints: { audio: true, video: false },
        pcConfig: { iceServers: [] },
      });
      return true;
    },

    hangup() {
      const s = this.session;
      if (!s || s.isEnded()) return false;
      record('hangup', {});
      s.terminate();
      return true;
    },

    // Hangs up, unregisters (when registered) and stops the UA; resolves once
    // the un-REGISTER is answered (or after 3 s). The WebSocket closes after.
    stop() {
      if (!this.ua) return Promise.resolve(true);
      const ua = this.ua;
      const wasRegistered = ua.isRegistered();
      const done = wasRegistered
        ? this.waitFor(['unregistered'], [], 3000).then(() => true, () => false)
        : Promise.resolve(true);
      ua.stop();
      return done;
    },

    has(ev) {
      return this.log.some((e) => e.ev === ev);
    },

    // Resolves with the first logged event whose name is in `want` (looking
    // at past events too); rejects when one in `fail` is seen first, or on timeout.
    waitFor(want, fail, timeoutMs) {
      want = [].concat(want);
      fail = [].concat(fail || []);
      const hit = this.log.find((e) => want.includes(e.ev) || fail.includes(e.ev));
      if (hit) return want.includes(hit.ev) ? Promise.resolve(hit) : Promise.reject(errorFor(hit));
      return new Promise((resolve, reject) => {
        const w = { want, fail, resolve, reject, timer: null };
        if (timeoutMs) {
          w.timer = setTimeout(() => {
            this._waiters = this._waiters.filter((x) => x !== w);
            reject(new Error(`timed out after ${timeoutMs} ms waiting for ${want.join('|')} (state ${this.state})`));
          }, timeoutMs);
        }
        this._waiters.push(w);
      });
    },
  };

  // Keeps only the 127.x.x.x UDP host candidates of each media section of a
  // local SDP (Chromium gathers them with --allow-loopback-in-peer-connection)
  // and points c=/m= at the first one, so the peer sends media to loopback
  // only. A section without such a candidate is left as it is.
  function loopbackOnly(sdp) {
    const sections = sdp.split(/\r\n(?=m=)/);
    let kept = 0;
    let dropped = 0;
    const out = sections.map((sec, i) => {
      if (i === 0) return sec;
      const lines = sec.split('\r\n');
      const isCand = (l) => l.startsWith('a=candidate:');
      const loop = lines.filter((l) => {
        if (!isCand(l)) return false;
        const f = l.split(' ');
        return f[2].toLowerCase() === 'udp' && /^127\./.test(f[4]);
      });
      if (!loop.length) return sec;
      const f = loop[0].split(' ');
      const addr = f[4];
      const port = f[5];
      return lines
        .filter((l) => {
          if (!isCand(l)) return true;
          if (loop.includes(l)) { kept += 1; return true; }
          dropped += 1;
          return false;
        })
        .map((l) => {
          if (l.startsWith('m=')) return l.replace(/^(m=\S+ )\d+/, `$1${port}`);
          if (l.startsWith('c=')) return `c=IN IP4 ${addr}`;
          return l;
        })
        .join('\r\n');
    });
    return { sdp: out.join('\r\n'), kept, dropped };
  }

  // Logs the addresses of the ICE pair media flows over.
  async function recordSelectedPair(pc) {
    try {
      const stats = await pc.getStats();
      let pair = null;
      stats.forEach((r) => {
        if (r.type === 'transport' && r.selectedCandidatePairId) pair = stats.get(r.selectedCandidatePairId);
      });
      if (!pair) stats.forEach((r) => { if (r.type === 'candidate-pair' && r.nominated && r.state === 'succeeded') pair = r; });
      if (!pair) return;
      const l = stats.get(pair.localCandidateId) || {};
      const r = stats.get(pair.remoteCandidateId) || {};
      record('icePair', {
        local: `${l.address || l.ip}:${l.port}`,
        remote: `${r.address || r.ip}:${r.port}`,
        protocol: l.protocol,
      });
    } catch (err) {
      record('error', { where: 'getStats', message: String(err && err.message || err) });
    }
  }

  // Logs {ev: 'sip', dir: 'in'|'out', line, cseq} for every SIP message on the
  // WebSocket (keep-alive CRLFs aside), by wrapping the socket's send and the
  // ondata handler JsSIP's transport installs.
  function traceSocket(socket) {
    const summary = (dir, data) => {
      const text = typeof data === 'string' ? data : '';
      if (!text.trim()) return;
      const line = text.slice(0, text.indexOf('\r\n') >>> 0).slice(0, 200);
      const m = /^(?:CSeq|cseq)\s*:\s*(.+)$/m.exec(text);
      record('sip', { dir, line, cseq: m ? m[1].trim() : undefined });
    };
    const send = socket.send.bind(socket);
    socket.send = (message) => {
      summary('out', message);
      return send(message);
    };
    let ondata = null;
    Object.defineProperty(socket, 'ondata', {
      configurable: true,
      get: () => (data) => {
        summary('in', data);
        if (ondata) ondata(data);
      },
      set: (fn) => {
        ondata = fn;
      },
    });
  }

  function errorFor(e) {
    return new Error(`${e.ev}: ${JSON.stringify(e)}`);
  }

  function setState(s) {
    phone.state = s;
    statusEl.textContent = s;
  }

  function record(ev, data) {
    const entry = Object.assign({ t: Date.now() - t0, ev }, data);
    for (const k of Object.keys(entry)) if (entry[k] === undefined) delete entry[k];
    phone.log.push(entry);
    console.log(`[phone] ${JSON.stringify(entry)}`);
    for (const w of phone._waiters.slice()) {
      const ok = w.want.includes(ev);
      if (!ok && !w.fail.includes(ev)) continue;
      phone._waiters = phone._waiters.filter((x) => x !== w);
      clearTimeout(w.timer);
      if (ok) w.resolve(entry);
      else w.reject(errorFor(entry));
    }
  }

  window.phone = phone;
  setState('idle');
})();

#!/usr/bin/env python3
"""Memory per idle connection of a running proxy, per transport.

    bench/conn_memory.py PID TRANSPORT HOST:PORT [N] [CA]

Opens N connections of TRANSPORT (tcp, tls, ws, wss) to HOST:PORT, each
set up the way a phone's is (TLS handshake, WebSocket upgrade offering the
`sip` subprotocol) and each carrying one OPTIONS that is answered, then
leaves them idle and reads the proxy's VmRSS (PID) before and after. Prints
one line: transport, connections, bytes per connection. Everything stays
on 127.0.0.0/8. TLS verifies nothing (CA given: the chain only): the point
is the server's memory, not the client's trust.
"""

import base64
import os
import socket
import ssl
import sys
import time


def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise SystemExit("no VmRSS")


def options(i, transport, local):
    via = "SIP/2.0/%s %s:%d;branch=z9hG4bK-mem-%d" % (transport.upper(), local[0], local[1], i)
    return (
        "OPTIONS sip:%s SIP/2.0\r\nVia: %s\r\nMax-Forwards: 70\r\n"
        "From: <sip:mem@bench.test>;tag=m%d\r\nTo: <sip:bench.test>\r\n"
        "Call-ID: mem-%d@bench\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        % ("bench.test", via, i, i)
    ).encode()


def ws_frame(payload):
    """One masked text frame (clients must mask, RFC 6455 §5.3)."""
    mask = os.urandom(4)
    head = bytes([0x81])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    else:
        head += bytes([0x80 | 126]) + n.to_bytes(2, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def open_one(i, transport, host, port, ctx):
    raw = socket.create_connection((host, port), timeout=10)
    s = ctx.wrap_socket(raw, server_hostname=host) if transport in ("tls", "wss") else raw
    if transport in ("ws", "wss"):
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall(
            (
                "GET / HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
                "Sec-WebSocket-Protocol: sip\r\n\r\n" % (host, port, key)
            ).encode()
        )
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = s.recv(4096)
            if not chunk:
                raise SystemExit("upgrade refused")
            answer += chunk
        if b" 101 " not in answer.split(b"\r\n")[0]:
            raise SystemExit("upgrade refused: %r" % answer[:80])
        s.sendall(ws_frame(options(i, transport, s.getsockname())))
    else:
        s.sendall(options(i, transport, s.getsockname()))
    if not s.recv(4096):
        raise SystemExit("closed before the answer")
    return s


def main():
    pid, transport, target = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    n = int(sys.argv[4]) if len(sys.argv) > 4 else 1000
    host, port = target.rsplit(":", 1)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if len(sys.argv) > 5:
        ctx.load_verify_locations(sys.argv[5])
        ctx.verify_mode = ssl.CERT_REQUIRED
    # Warm up allocator arenas and the first-connection costs.
    warm = [open_one(i, transport, host, int(port), ctx) for i in range(50)]
    time.sleep(1)
    before = rss(pid)
    conns = [open_one(i, transport, host, int(port), ctx) for i in range(50, 50 + n)]
    time.sleep(2)
    after = rss(pid)
    print("%s %d %.0f" % (transport, n, (after - before) / n))
    for s in conns + warm:
        s.close()


if __name__ == "__main__":
    main()

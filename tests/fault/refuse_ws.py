#!/usr/bin/env python3
"""tests/fault/refuse_ws.py -- a raw WebSocket peer for the refusal fault tests.

Python 3 standard library only. Two roles:

  client HOST PORT MODE [SITE TOKEN [ARG]]
      Opens ws://HOST:PORT/sync with subprotocol ktwin-sync.v1 (a real
      RFC 6455 handshake, masked client frames), then misbehaves as MODE says:
        raw-garbage    unframed bytes straight after the handshake
        garbage-frame  one binary frame of bytes that are no protobuf Envelope
        truncated      a valid Hello for SITE/TOKEN, then (after the Welcome)
                       an EventBatch Envelope cut in the middle
        oversized      one binary frame of ARG bytes (over sync.max_message_bytes)
        text           a text frame that holds a valid Hello for SITE/TOKEN
        bad-token      a valid Hello for SITE with the wrong token TOKEN
      and reports, on one line of stdout, what the hub did:
        welcome=0|1 reject=<code or -> close=<code or -> eof=0|1
      Exit 0 when the hub ended the connection (a close frame or EOF) within
      the deadline, 1 when it kept it open, 2 on a handshake failure.

  fakehub PORT_FILE LOG_FILE
      A fake hub: accepts WebSocket upgrades on 127.0.0.1 (port chosen by the
      OS, written to PORT_FILE), reads the agent's first frame (its Hello),
      answers in turn (connection 1, 2, 3, 4, ...) with a binary frame of
      garbage, a binary frame of 200 KiB (over the agent's
      hub.max_message_bytes when that is 64KiB), a text frame of garbage,
      garbage again, ... and waits for the agent to end the connection. One
      line per connection in LOG_FILE:
        conn <n> sent=<garbage|oversized|text> hello_bytes=<len> ended=<close code or eof>

Invariants: nothing here is timing-asserted; every socket read has a
deadline. Thread: the client is single threaded; fakehub serves one
connection at a time (the agent holds at most one).
"""
import base64
import hashlib
import os
import socket
import struct
import sys
import time

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
SUBPROTOCOL = "ktwin-sync.v1"
GARBAGE = b"\xde\xad\xbe\xef this is no protobuf envelope \xff\xfe\xfd\x00\x01"


# ---- protobuf (just enough of sync.proto to write a Hello / EventBatch and read a Reject)

def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field_varint(num, v):
    return varint(num << 3) + varint(v)


def field_bytes(num, b):
    if isinstance(b, str):
        b = b.encode()
    return varint((num << 3) | 2) + varint(len(b)) + b


def hello(site, token):
    h = (field_varint(1, 1) + field_varint(2, 1) + field_bytes(3, site) + field_bytes(4, token)
         + field_bytes(5, "refuse-test") + field_varint(6, 0))
    return field_bytes(1, h)  # Envelope.hello = 1


def event_batch():
    ev = (field_bytes(1, "refuse-1") + field_bytes(2, "ktwin.store.city-pole")
          + field_bytes(3, "pole-1") + field_bytes(6, b'{"count": 999}'))
    eb = field_varint(1, 3) + field_bytes(2, "refuse-inc") + field_varint(3, 1) + field_bytes(4, ev)
    return field_bytes(10, eb)  # Envelope.events = 10


def read_varint(b, i):
    n = shift = 0
    while i < len(b):
        c = b[i]
        i += 1
        n |= (c & 0x7F) << shift
        shift += 7
        if not c & 0x80:
            return n, i
    raise ValueError("truncated varint")


def envelope_kind(b):
    """(field number of the Envelope's body, reject code or None)."""
    try:
        key, i = read_varint(b, 0)
        num = key >> 3
        code = None
        if num == 3 and key & 7 == 2:  # Reject
            ln, i = read_varint(b, i)
            inner = b[i:i + ln]
            j = 0
            while j < len(inner):
                k, j = read_varint(inner, j)
                if k == (1 << 3):
                    code, j = read_varint(inner, j)
                    break
                if k & 7 == 0:
                    _, j = read_varint(inner, j)
                elif k & 7 == 2:
                    n2, j = read_varint(inner, j)
                    j += n2
                else:
                    break
        return num, code
    except ValueError:
        return None, None


# ---- WebSocket framing

class Conn:
    def __init__(self, sock, mask):
        self.s = sock
        self.mask = mask
        self.buf = b""

    def send_frame(self, opcode, payload, fin=True):
        hdr = bytearray([(0x80 if fin else 0) | opcode])
        mbit = 0x80 if self.mask else 0
        n = len(payload)
        if n < 126:
            hdr.append(mbit | n)
        elif n < 65536:
            hdr.append(mbit | 126)
            hdr += struct.pack("!H", n)
        else:
            hdr.append(mbit | 127)
            hdr += struct.pack("!Q", n)
        if self.mask:
            key = os.urandom(4)
            hdr += key
            payload = bytes(c ^ key[i % 4] for i, c in enumerate(payload))
        self.s.sendall(bytes(hdr) + payload)

    def _need(self, n, deadline):
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError()
            self.s.settimeout(left)
            chunk = self.s.recv(65536)
            if not chunk:
                raise EOFError()
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv_frame(self, deadline):
        """(opcode, payload); answers pings itself."""
        while True:
            b0, b1 = self._need(2, deadline)
            opcode = b0 & 0x0F
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._need(2, deadline))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._need(8, deadline))[0]
            key = self._need(4, deadline) if b1 & 0x80 else None
            payload = self._need(n, deadline)
            if key:
                payload = bytes(c ^ key[i % 4] for i, c in enumerate(payload))
            if opcode == 9:
                self.send_frame(10, payload)
                continue
            return opcode, payload


def read_http_head(sock, deadline):
    data = b""
    while b"\r\n\r\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError()
        sock.settimeout(left)
        chunk = sock.recv(4096)
        if not chunk:
            raise EOFError()
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    return head.decode("latin-1"), rest


def accept_key(key):
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


# ---- client

def client(host, port, mode, site, token, arg):
    deadline = time.monotonic() + 30
    sock = socket.create_connection((host, port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(("GET /sync HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
                  "Sec-WebSocket-Protocol: %s\r\n\r\n" % (host, port, key, SUBPROTOCOL)).encode())
    try:
        head, rest = read_http_head(sock, deadline)
    except (TimeoutError, EOFError, OSError) as e:
        print("handshake failed: %r" % (e,))
        return 2
    lines = head.split("\r\n")
    hdrs = {ln.split(":", 1)[0].strip().lower(): ln.split(":", 1)[1].strip()
            for ln in lines[1:] if ":" in ln}
    if " 101 " not in lines[0] + " " or hdrs.get("sec-websocket-accept") != accept_key(key):
        print("handshake failed: %s" % lines[0])
        return 2
    c = Conn(sock, mask=True)
    c.buf = rest
    welcome = 0
    reject = "-"
    close = "-"
    eof = 0

    if mode == "raw-garbage":
        sock.sendall(GARBAGE * 4)
    elif mode == "garbage-frame":
        c.send_frame(2, GARBAGE)
    elif mode == "oversized":
        c.send_frame(2, b"\x52" * int(arg))
    elif mode == "text":
        c.send_frame(1, hello(site, token))
    elif mode in ("bad-token", "truncated"):
        c.send_frame(2, hello(site, token))
    else:
        print("unknown mode %s" % mode)
        return 2

    sent_truncated = False
    try:
        while True:
            if mode == "truncated" and welcome and not sent_truncated:
                eb = event_batch()
                c.send_frame(2, eb[:len(eb) // 2])
                sent_truncated = True
            opcode, payload = c.recv_frame(deadline)
            if opcode == 8:
                close = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                if mode != "raw-garbage":  # after garbage the hub has given up on the socket
                    try:
                        c.send_frame(8, payload[:2])
                    except OSError:
                        pass
                break
            if opcode == 2:
                num, code = envelope_kind(payload)
                if num == 2:
                    welcome = 1
                elif num == 3:
                    reject = str(code)
    except EOFError:
        eof = 1
    except ConnectionError:
        eof = 1
    except TimeoutError:
        print("welcome=%d reject=%s close=%s eof=0 timeout=1" % (welcome, reject, close))
        return 1
    print("welcome=%d reject=%s close=%s eof=%d" % (welcome, reject, close, eof))
    sock.close()
    return 0


# ---- fake hub

def fakehub(port_file, log_file):
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    with open(port_file + ".tmp", "w") as f:
        f.write("%d\n" % srv.getsockname()[1])
    os.rename(port_file + ".tmp", port_file)
    log = open(log_file, "a", buffering=1)
    n = 0
    while True:
        sock, _ = srv.accept()
        n += 1
        deadline = time.monotonic() + 30
        ended = "timeout"
        hello_len = -1
        sent = ("garbage", "oversized", "text")[(n - 1) % 3]
        try:
            head, rest = read_http_head(sock, deadline)
            hdrs = {ln.split(":", 1)[0].strip().lower(): ln.split(":", 1)[1].strip()
                    for ln in head.split("\r\n")[1:] if ":" in ln}
            sock.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                          "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n"
                          "Sec-WebSocket-Protocol: %s\r\n\r\n"
                          % (accept_key(hdrs.get("sec-websocket-key", "")), SUBPROTOCOL)).encode())
            c = Conn(sock, mask=False)
            c.buf = rest
            op, payload = c.recv_frame(deadline)
            hello_len = len(payload) if op == 2 else -1
            if sent == "oversized":
                c.send_frame(2, b"\x52" * (200 * 1024))
            else:
                c.send_frame(1 if sent == "text" else 2, GARBAGE)
            while True:
                op, payload = c.recv_frame(deadline)
                if op == 8:
                    ended = str(struct.unpack("!H", payload[:2])[0]) if len(payload) >= 2 else "1005"
                    try:
                        c.send_frame(8, payload[:2])
                    except OSError:
                        pass
                    break
        except (EOFError, ConnectionError):
            ended = "eof"
        except (TimeoutError, OSError):
            pass
        sock.close()
        log.write("conn %d sent=%s hello_bytes=%d ended=%s\n" % (n, sent, hello_len, ended))


def main(argv):
    if len(argv) >= 5 and argv[1] == "client":
        site = argv[5] if len(argv) > 5 else ""
        token = argv[6] if len(argv) > 6 else ""
        arg = argv[7] if len(argv) > 7 else "0"
        return client(argv[2], int(argv[3]), argv[4], site, token, arg)
    if len(argv) == 4 and argv[1] == "fakehub":
        fakehub(argv[2], argv[3])
        return 0
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))

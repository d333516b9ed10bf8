#!/usr/bin/env bash
# faultproxy's own test: the proxy between a Python client and a Python
# upstream server on 127.0.0.1 (ephemeral ports), checking
#   - a 20 MB transfer with a half-close (client SHUT_WR, server answers
#     after EOF): every byte arrives, the answer comes back;
#   - backpressure: an upstream that does not read stalls the proxy with at
#     most ~512 KiB queued (status pending=), and everything arrives intact
#     once it reads;
#   - blackhole: nothing moves on an open connection, a new connection is
#     held; restore: the stalled bytes arrive intact, the held connection
#     works;
#   - cut: an open connection is reset, a new one is reset at once (counted
#     refused=); restore: new connections work again;
#   - rate N: a throttled transfer arrives intact and is slowed;
#   - control errors: unknown command answered, over-long line closes;
#   - SIGTERM with connections open: exit 0 (ASan's leak check included).
#
# usage: test_faultproxy.sh FAULTPROXY
PROXY=$1
. "$(dirname "$0")/../lib/testlib.sh"
command -v python3 >/dev/null || { echo "SKIP: python3 missing"; exit 77; }

cat >"$T/drive.py" <<'PY'
import hashlib, os, socket, subprocess, sys, threading, time

proxy_bin, tmp = sys.argv[1], sys.argv[2]
results = []
def check(name, cond, detail=""):
    results.append(cond)
    print(("ok   " if cond else "FAIL ") + name + ("" if cond else ": " + detail), flush=True)

def wait(cond, secs=60):
    end = time.monotonic() + secs
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return cond()

def recv_all(s):
    out = bytearray()
    while True:
        d = s.recv(1 << 16)
        if not d:
            return bytes(out)
        out.extend(d)

def read_line(s):
    out = bytearray()
    while not out.endswith(b"\n"):
        d = s.recv(1)
        if not d:
            break
        out.extend(d)
    return out.decode().strip()

# ---- upstream: the first line picks the behaviour
slow_go = threading.Event()
def serve(c):
    try:
        mode = read_line(c)
        if mode == "ECHO":
            while True:
                d = c.recv(1 << 16)
                if not d:
                    break
                c.sendall(d)
        else:
            if mode == "SLOW":
                slow_go.wait(120)
            h = hashlib.sha256()
            n = 0
            while True:
                d = c.recv(1 << 16)
                if not d:
                    break
                h.update(d)
                n += len(d)
            c.sendall(("%d %s\n" % (n, h.hexdigest())).encode())
        c.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    finally:
        c.close()
up = socket.socket()
up.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
up.bind(("127.0.0.1", 0))
up.listen(64)
def accept_loop():
    while True:
        c, _ = up.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()
threading.Thread(target=accept_loop, daemon=True).start()

pf, cf = os.path.join(tmp, "p.port"), os.path.join(tmp, "c.port")
log = open(os.path.join(tmp, "proxy.log"), "w")
proc = subprocess.Popen([proxy_bin, "--upstream", "127.0.0.1:%d" % up.getsockname()[1],
                         "--port-file", pf, "--ctl-port-file", cf], stderr=log)
def reap():  # a failed check must not leave the proxy running
    if proc.poll() is None:
        proc.kill()
        proc.wait()
import atexit
atexit.register(reap)
check("proxy writes its port files", wait(lambda: os.path.exists(pf) and os.path.exists(cf)))
pport, cport = int(open(pf).read()), int(open(cf).read())

def ctl(cmd):
    with socket.create_connection(("127.0.0.1", cport), timeout=30) as s:
        s.sendall((cmd + "\n").encode())
        return read_line(s)
def status():
    return dict(kv.split("=") for kv in ctl("status").split()[2:])

def hash_roundtrip(data, mode="HASH", sock=None):
    s = sock or socket.create_connection(("127.0.0.1", pport), timeout=60)
    if sock is None:
        s.sendall((mode + "\n").encode())
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    reply = recv_all(s).decode().strip()
    s.close()
    return reply == "%d %s" % (len(data), hashlib.sha256(data).hexdigest()), reply

# 1. large transfer + half-close
data = os.urandom(20 << 20)
good, reply = hash_roundtrip(data)
check("20 MB through the proxy, half-close, answer after EOF", good, reply)

# 2. backpressure
s = socket.create_connection(("127.0.0.1", pport), timeout=120)
s.sendall(b"SLOW\n")
big = os.urandom(64 << 20)
t = threading.Thread(target=lambda: s.sendall(big))
t.start()
last = [None]
def stalled():
    cur = status()["up_bytes"]
    same = cur == last[0]
    last[0] = cur
    time.sleep(0.5)
    return same
check("a non-reading upstream stalls the transfer", wait(stalled))
pending = int(status()["pending"])
check("backpressure bounds the proxy's queue", pending <= 512 * 1024, "pending=%d" % pending)
slow_go.set()
t.join(120)
s.shutdown(socket.SHUT_WR)
reply = recv_all(s).decode().strip()
s.close()
check("after the stall every byte arrives", reply == "%d %s" % (len(big), hashlib.sha256(big).hexdigest()), reply)

# 3. blackhole
e = socket.create_connection(("127.0.0.1", pport), timeout=60)
e.sendall(b"ECHO\nhello")
got = b""
while len(got) < 5:
    got += e.recv(16)
check("echo through the proxy", got == b"hello", repr(got))
check("blackhole", ctl("blackhole") == "ok blackhole")
before = status()["up_bytes"]
payload = os.urandom(100000)
e.sendall(payload)
held = socket.create_connection(("127.0.0.1", pport), timeout=60)
held.sendall(b"HASH\n")
time.sleep(1)
check("nothing moves while black-holed", status()["up_bytes"] == before)
check("restore", ctl("restore") == "ok pass")
back = bytearray()
while len(back) < len(payload):
    d = e.recv(1 << 16)
    if not d:
        break
    back.extend(d)
check("stalled bytes arrive intact after restore", bytes(back) == payload, "%d bytes" % len(back))
good, reply = hash_roundtrip(b"x" * 1000, sock=held)
check("a connection held while black-holed works after restore", good, reply)

# 4. cut
check("cut", ctl("cut") == "ok cut")
def is_reset(sock):
    try:
        sock.settimeout(30)
        return sock.recv(16) == b""
    except OSError:
        return True
check("an open connection is reset by cut", is_reset(e))
e.close()
try:
    n = socket.create_connection(("127.0.0.1", pport), timeout=30)
    check("a new connection is reset while cut", is_reset(n))
    n.close()
except ConnectionResetError:
    check("a new connection is reset while cut", True)
check("refused is counted", int(status()["refused"]) >= 1)
check("restore after cut", ctl("restore") == "ok pass")
good, reply = hash_roundtrip(b"y" * 5000)
check("new connections work after restore", good, reply)

# 4b. throttle: 3 MB at 1 MB/s arrives intact and takes over a second
check("rate", ctl("rate 1000000") == "ok rate 1000000")
t0 = time.monotonic()
good, reply = hash_roundtrip(os.urandom(3 << 20))
took = time.monotonic() - t0
check("throttled transfer intact", good, reply)
check("throttled transfer is slowed", took >= 1.0, "took %.2f s" % took)
check("rate 0 = unlimited", ctl("rate 0") == "ok rate 0")
check("bad rate refused", ctl("rate fast").startswith("error rate"))

# 5. control errors
check("unknown command", ctl("frobnicate") == "error unknown command")
with socket.create_connection(("127.0.0.1", cport), timeout=30) as s2:
    s2.sendall(b"x" * 1000 + b"\n")
    check("an over-long control line closes the connection", is_reset(s2))

# 6. SIGTERM with a connection open
o = socket.create_connection(("127.0.0.1", pport), timeout=30)
o.sendall(b"ECHO\n")
wait(lambda: int(status()["conns"]) >= 1)
proc.terminate()
rc = proc.wait(60)
check("SIGTERM: exit 0 (no leak, loop closed)", rc == 0, "exit %d" % rc)
o.close()
sys.exit(0 if all(results) else 1)
PY
python3 "$T/drive.py" "$PROXY" "$T" >"$T/drive.out" 2>&1
rc=$?
cat "$T/drive.out"
check "faultproxy checks" 0 "$rc"
lacks "no sanitizer report" "$T/proxy.log" 'ERROR: (Address|Leak)Sanitizer|runtime error:'
kt_finish

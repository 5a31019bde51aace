#!/usr/bin/env python3
# tests/support/faultproxy.py — a TCP proxy on 127.0.0.1 that puts network
# faults between a client and an HTTP server (the hub of tools/hub), for
# tests/cli/net_faults.sh.  Not a test itself.
#
#   faultproxy.py TARGET_PORT CONTROL_DIR
#
# Listens on a free port of 127.0.0.1 and writes it to CONTROL_DIR/port.
# Each connection carries one request: the proxy reads the request head,
# sends it on with "Connection: close" (so the client opens a new
# connection, and the proxy sees a new request line, for every request) and
# relays both ways.  Before each request it reads CONTROL_DIR/fault, one
# line "FAULT MATCH [ARG]" (absent or "pass": no fault); when the request
# line holds MATCH, FAULT applies:
#   500       answer 500 Internal Server Error, the server never sees it
#   reset     send the request on, then reset the client's connection (RST)
#             when the answer starts: the server did the work, the client
#             never hears it
#   truncate  relay the first ARG bytes of the answer (default 200), close
#   stall     send the request on, never answer, hold the connection open
#   slow      relay the answer ARG bytes (default 256) every 20 ms
# Every request that met a fault is appended to CONTROL_DIR/hits as
# "FAULT REQUEST-LINE".  Runs until killed.
import os
import socket
import struct
import sys
import threading
import time


def read_fault(ctl):
    try:
        with open(os.path.join(ctl, "fault")) as f:
            parts = f.read().split()
    except FileNotFoundError:
        return None
    if len(parts) < 2 or parts[0] == "pass":
        return None
    return parts[0], parts[1], int(parts[2]) if len(parts) > 2 else 0


def read_head(sock):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None, b""
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    return head, rest


def close_head(head):
    lines = [l for l in head.split(b"\r\n") if not l.lower().startswith(b"connection:")]
    return b"\r\n".join(lines + [b"Connection: close"]) + b"\r\n\r\n"


def pump(src, dst):
    try:
        while True:
            chunk = src.recv(65536)
            if not chunk:
                break
            dst.sendall(chunk)
    except OSError:
        pass
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def hang_up(sock, rst=False):
    # The pump thread may be reading the socket, and a close alone would
    # then neither release it nor tell the client: shut it down first (that
    # wakes the reader), then close.  With rst, no FIN: linger 0 makes the
    # close send RST.
    try:
        if rst:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RD if rst else socket.SHUT_RDWR)
        time.sleep(0.1)
        sock.close()
    except OSError:
        pass


def answer(client, upstream, fault, arg):
    """Relay the answer from upstream to client, with the fault."""
    sent = 0
    limit = arg or 200
    step = arg or 256
    while True:
        chunk = upstream.recv(65536)
        if not chunk:
            break
        if fault == "reset":
            hang_up(client, rst=True)
            return
        if fault == "stall":
            continue
        if fault == "truncate":
            chunk = chunk[: max(0, limit - sent)]
        if fault == "slow":
            for i in range(0, len(chunk), step):
                client.sendall(chunk[i : i + step])
                time.sleep(0.02)
        else:
            client.sendall(chunk)
        sent += len(chunk)
        if fault == "truncate" and sent >= limit:
            break
    if fault == "stall":
        time.sleep(3600)
    hang_up(client)


def serve(client, target, ctl):
    upstream = None
    try:
        head, rest = read_head(client)
        if head is None:
            return
        line = head.split(b"\r\n", 1)[0].decode("latin-1")
        f = read_fault(ctl)
        fault, arg = None, 0
        if f and f[1] in line:
            fault, arg = f[0], f[2]
            with open(os.path.join(ctl, "hits"), "a") as h:
                h.write("%s %s\n" % (fault, line))
        if fault == "500":
            client.sendall(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n"
                           b"Connection: close\r\n\r\n")
            return
        upstream = socket.create_connection(("127.0.0.1", target))
        upstream.sendall(close_head(head) + rest)
        threading.Thread(target=pump, args=(client, upstream), daemon=True).start()
        answer(client, upstream, fault, arg)
    except OSError:
        pass
    finally:
        for s in (client, upstream):
            try:
                if s:
                    s.close()
            except OSError:
                pass


def main():
    target, ctl = int(sys.argv[1]), sys.argv[2]
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(16)
    with open(os.path.join(ctl, "port.tmp"), "w") as f:
        f.write("%d\n" % lsock.getsockname()[1])
    os.rename(os.path.join(ctl, "port.tmp"), os.path.join(ctl, "port"))
    while True:
        client, _ = lsock.accept()
        threading.Thread(target=serve, args=(client, target, ctl), daemon=True).start()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""ctl.py - a toolstack stand-in for tests: one control connection that
sends requests, passing fds it opens itself, writes each reply as a JSON
line, and can keep the connection open until told to let go.

  ctl.py SOCKET REQUESTS OUT [--hold FILE]

REQUESTS holds one JSON object per line:
  {"command": "add-fd", "args": {...},
   "open": {"path": "/x", "flags": ["O_RDONLY", "O_DIRECT"]}}   # fd to pass
  {"command": "add-fd", "args": {...}, "dup": 0}   # a dup() of request 0's fd
With --hold, after the last reply the connection stays open until FILE
exists; OUT gets a line {"held": true} once every reply is in.
"""
import json
import os
import socket
import sys
import time


def main():
    sock_path, requests, out = sys.argv[1:4]
    hold = sys.argv[5] if len(sys.argv) > 5 and sys.argv[4] == "--hold" else None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    sock.connect(sock_path)
    opened = []
    with open(requests) as f, open(out, "w", buffering=1) as o:
        for n, line in enumerate(l for l in f if l.strip()):
            req = json.loads(line)
            fds = []
            if "open" in req:
                flags = 0
                for name in req["open"].get("flags", ["O_RDONLY"]):
                    flags |= getattr(os, name)
                fds.append(os.open(req["open"]["path"], flags | os.O_CLOEXEC))
            elif "dup" in req:
                fds.append(os.dup(opened[req["dup"]]))
            opened.append(fds[0] if fds else -1)
            msg = {"xen-loopd": 1, "id": n + 1, "command": req["command"],
                   "args": req.get("args", {})}
            socket.send_fds(sock, [json.dumps(msg).encode()], fds)
            while True:
                rep = json.loads(sock.recv(65536))
                if rep.get("id") == n + 1:
                    break
            o.write(json.dumps(rep) + "\n")
        if hold:
            o.write(json.dumps({"held": True}) + "\n")
    if hold:
        while not os.path.exists(hold):
            time.sleep(0.02)
    sock.close()


if __name__ == "__main__":
    main()

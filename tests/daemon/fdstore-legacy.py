#!/usr/bin/env python3
"""fdstore-legacy.py - runs xen-loopd under a service manager as the main
process, after logging the names its fd store hands back and, when asked,
putting the store back as an older xen-loopd left it.

  fdstore-legacy.py LOG ARMED XEN-LOOPD [ARGS...]

Each start appends one line to LOG: the names of the fds handed back
(LISTEN_FDNAMES), sorted, space-separated.  When the file ARMED exists it
is removed, and the store is made what an older xen-loopd could leave
(FDSTOREREMOVE of each name, FDSTORE of its fd under the older one): every
fd named "dev-<maj>-<min>-<diskseq>-<r|w>" is stored as
"dev-<maj>-<min>-<diskseq>", and every fd of an fd set
("fdset-<set>-<serial>-u<owner>") as the first fd of its set without its
owner, "fdset-<set>-<n>" (an older daemon's taken-back fd and a new fd
given the same number).
Then this process becomes xen-loopd (exec: the same pid, the same fds).
"""
import array
import os
import re
import socket
import sys


def notify(msg, fd=None):
    addr = os.environ["NOTIFY_SOCKET"]
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))] if fd is not None else []
    s.sendmsg([msg.encode()], anc, 0, addr)
    s.close()


def main():
    log, armed, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
    n = int(os.environ.get("LISTEN_FDS", "0")) if os.environ.get("LISTEN_PID") == str(os.getpid()) else 0
    names = os.environ.get("LISTEN_FDNAMES", "").split(":") if n else []
    if os.path.exists(armed):
        os.unlink(armed)
        first = {}
        for i, name in enumerate(names):
            m = re.fullmatch(r"(dev-\d+-\d+-[0-9a-f]+)-[rw]", name)
            f = re.fullmatch(r"fdset-(\d+)-(\d+)(?:-u\d+)?", name)
            old = m.group(1) if m else first.setdefault(f.group(1), f"fdset-{f.group(1)}-{f.group(2)}") if f else name
            if old != name:
                notify("FDSTOREREMOVE=1\nFDNAME=" + name)
                notify("FDSTORE=1\nFDNAME=" + old, 3 + i)
                names[i] = old
        if n:
            os.environ["LISTEN_FDNAMES"] = ":".join(names)
    with open(log, "a") as f:
        f.write(" ".join(sorted(names)) + "\n")
    os.execv(argv[0], argv)


if __name__ == "__main__":
    main()

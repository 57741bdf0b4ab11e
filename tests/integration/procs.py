"""/proc helpers of the integration harness: a process's state, parent and
group; the children of a process, the members of a group."""

import os


def proc_stat(pid):
    """(state, ppid, pgrp) of a process or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    rest = s[s.rfind(")") + 2:].split()
    return rest[0], int(rest[1]), int(rest[2])


def children_of(pid):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = proc_stat(int(d))
            if st and st[1] == pid and st[0] != "Z":
                out.append(int(d))
    return sorted(out)


def group_members(pgid):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = proc_stat(int(d))
            if st and st[2] == pgid and st[0] != "Z":
                out.append(int(d))
    return out


def pid_alive(pid):
    st = proc_stat(pid)
    return st is not None and st[0] != "Z"

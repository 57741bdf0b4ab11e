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


def _live(match):
    """The pids, sorted, of the live (not zombie) processes whose
    (state, ppid, pgrp) match."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = proc_stat(int(d))
            if st and st[0] != "Z" and match(st):
                out.append(int(d))
    return sorted(out)


def children_of(pid):
    return _live(lambda st: st[1] == pid)


def group_members(pgid):
    return _live(lambda st: st[2] == pgid)


def pid_alive(pid):
    st = proc_stat(pid)
    return st is not None and st[0] != "Z"

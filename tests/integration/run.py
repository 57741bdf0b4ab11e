#!/usr/bin/env python3
"""bulwark integration tests: the runner.

Usage:  run.py [FILTER]

Runs every function test_* of tests/integration/test_*.py (files in name
order, functions in source order) whose name contains FILTER.  Expects a
stack started by `dev/lib/stack.sh DIR BASE up` with DIR/stack.env in the
environment, and BW_BULWARK_BIN (a sanitizer build with test routes).

stdout: one line per test, `PASS name` / `FAIL name: reason` /
`SKIP name: why`, then `N passed, N failed, N skipped`.  Progress and
diagnostics go to stderr.  Exit status 1 if a test failed.
"""

import importlib.util
import inspect
import os
import signal
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import harness  # noqa: E402

TEST_TIMEOUT = float(os.environ.get("BW_IT_TEST_TIMEOUT", "90"))


class TestTimeout(Exception):
    pass


def _alarm(_sig, _frame):
    raise TestTimeout(f"test did not finish within {TEST_TIMEOUT:.0f}s")


def discover(filter_):
    mods = []
    names = set()
    for path in sorted(HERE.glob("test_*.py")):
        spec = importlib.util.spec_from_file_location(path.stem, path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        fns = [f for n, f in vars(mod).items()
               if n.startswith("test_") and inspect.isfunction(f) and f.__module__ == mod.__name__]
        fns.sort(key=lambda f: f.__code__.co_firstlineno)
        for f in fns:
            if f.__name__ in names:
                raise SystemExit(f"duplicate test name {f.__name__} in {path.name}")
            names.add(f.__name__)
        sel = [f for f in fns if not filter_ or filter_ in f.__name__ or filter_ in f"{path.stem}.{f.__name__}"]
        if sel:
            mods.append((path.stem, sel))
    return mods


def one_line(s):
    return " ".join(str(s).split())[:700]


def run_test(h, modname, fn):
    ctx = harness.Context(h, fn.__name__)
    ctx.module = modname
    ctx.settings = fn.__globals__.get("SETTINGS", {})
    status, reason = "PASS", ""
    t0 = time.monotonic()
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, TEST_TIMEOUT)
    try:
        fn(ctx)
    except harness.Skip as e:
        status, reason = "SKIP", str(e)
    except AssertionError as e:
        status, reason = "FAIL", str(e) or "assertion failed: " + traceback.format_exc(limit=-1).strip()
    except TestTimeout as e:
        status, reason = "FAIL", str(e)
    except Exception as e:  # noqa: BLE001
        tb = traceback.extract_tb(e.__traceback__)
        where = next((f"{Path(fr.filename).name}:{fr.lineno}" for fr in reversed(tb)
                      if Path(fr.filename).name.startswith("test_")), "")
        status, reason = "FAIL", f"{type(e).__name__}: {e} ({where})"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    # cleanup gets its own time budget
    signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, 60)
    try:
        problems = ctx.finish(failed=(status == "FAIL"))
    except TestTimeout as e:
        problems = [f"cleanup: {e}"]
    except Exception as e:  # noqa: BLE001 - a harness bug must not stop the run
        problems = [f"cleanup raised {type(e).__name__}: {e}"]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    if problems and status != "FAIL":
        status, reason = "FAIL", "; ".join(problems)
    elif problems:
        reason += " [also: " + "; ".join(problems) + "]"
    h.note(f"{status} {fn.__name__} ({time.monotonic() - t0:.1f}s)")
    notes = h.take_notes()
    if status == "FAIL" and not h.verbose:
        for n in notes:
            print(n, file=sys.stderr)
        sys.stderr.flush()
    return status, reason


def main(argv):
    filter_ = argv[1] if len(argv) > 1 else ""
    h = harness.Harness(sys.stderr)
    harness.ALL_HARNESSES.append(h)
    h.say(f"bulwark integration tests; logs under {h.run_dir}")
    h.say(f"seed {h.seed} (BW_IT_SEED={h.seed} replays it); time bounds x{h.time_mult:g} (BW_IT_TIME_MULT)")
    mods = discover(filter_)
    counts = {"PASS": 0, "FAIL": 0, "SKIP": 0}
    t_all = time.monotonic()
    for modname, fns in mods:
        h.say(f"{modname}: {len(fns)} tests")
        results = {}
        order = []
        for fn in fns:
            h.note(f"-- {fn.__name__}")
            results[fn.__name__] = list(run_test(h, modname, fn))
            order.append(fn.__name__)
        # shared instances of this file: stop, then blame their users
        h.stop_stack_instance("(end of file)")
        h.take_notes()
        for b in h.shared_all:
            if not b.stopped:
                b.stop()
            for p in b.problems:
                for user in b.users:
                    r = results.get(user)
                    if r is None:
                        continue
                    if r[0] != "FAIL":
                        r[0], r[1] = "FAIL", f"shared instance: {p}"
                    elif p not in r[1]:
                        r[1] += f" [also: {p}]"
        h.shared_all = []
        for name in order:
            st, why = results[name]
            counts[st] += 1
            print(f"{st} {name}" + (f": {one_line(why)}" if st != "PASS" else ""), flush=True)
    h.say(f"total {time.monotonic() - t_all:.1f}s; logs under {h.run_dir}")
    print(f"{counts['PASS']} passed, {counts['FAIL']} failed, {counts['SKIP']} skipped", flush=True)
    return 1 if counts["FAIL"] else 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    finally:
        for _b in list(harness.ALL_HARNESSES):
            _b.kill_leftovers()

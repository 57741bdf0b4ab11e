"""The migrated schema against its map, schema/README.md: the functions the
README calls live are exactly the functions the database has, and the
workers' role may run each of them."""

import re

from harness import REPO
from ledgerlib import psql


def _live_functions():
    """The names in the README's "### Functions" table (first column)."""
    text = (REPO / "schema" / "README.md").read_text()
    section = text.split("### Functions", 1)[1].split("\n#", 1)[0]
    return sorted(re.findall(r"^\| `(\w+)\(", section, re.M))


def test_schema_live_functions(t):
    live = _live_functions()
    t.check(len(live) >= 3, f"schema/README.md lists its live functions ({live})")
    have = psql(t, "SELECT proname FROM pg_proc WHERE pronamespace = 'public'::regnamespace "
                   "ORDER BY proname")
    t.eq(have, live, "functions in the public schema = the live ones of schema/README.md")
    for name in live:
        ok = psql(t, "SELECT bool_and(has_function_privilege('bulwark_app', oid, 'EXECUTE')) "
                     "FROM pg_proc WHERE proname = :'p1' AND pronamespace = 'public'::regnamespace",
                  name)
        t.eq(ok, ["t"], f"bulwark_app may execute {name}")

"""Summarises Autobahn|Testsuite reports; exit status 1 unless every case passed.

Usage: autobahn_report.py "<sections that may be UNIMPLEMENTED>" role:reportdir [role:reportdir ...]
Runs on Python 2.7 (the suite's own interpreter) and 3.
"""
from __future__ import print_function

import json
import os
import re
import sys

PASS = ("OK", "INFORMATIONAL")
COLUMNS = ("OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED")


def case_key(case_id):
    return [int(p) for p in case_id.split(".")]


def main(argv):
    allowed = set(argv[1].split())
    failed = False
    for spec in argv[2:]:
        role, outdir = spec.split(":", 1)
        with open(os.path.join(outdir, "index.json")) as f:
            results = json.load(f)["syncws"]
        table = {}
        problems = []
        for case_id in sorted(results, key=case_key):
            r = results[case_id]
            section = case_id.split(".")[0]
            behavior, close = r["behavior"], r["behaviorClose"]
            # A case counts under its worse verdict (the close handshake can fail on its own).
            verdict = behavior if behavior not in PASS or close in PASS else "FAILED"
            row = table.setdefault(int(section), dict((c, 0) for c in COLUMNS))
            row[verdict if verdict in row else "FAILED"] += 1
            if verdict in PASS:
                continue
            ok = verdict == "UNIMPLEMENTED" and section in allowed
            with open(os.path.join(outdir, r["reportfile"])) as f:
                description = re.sub(r"<[^>]+>", "", json.load(f).get("description", ""))
            problems.append((case_id, behavior, close, description.strip(), ok))
            failed = failed or not ok
        print()
        print("%s role" % role)
        print("%-8s" % "section" + "".join("%15s" % c for c in COLUMNS))
        totals = dict((c, 0) for c in COLUMNS)
        for section in sorted(table):
            print("%-8s" % section + "".join("%15d" % table[section][c] for c in COLUMNS))
            for c in COLUMNS:
                totals[c] += table[section][c]
        print("%-8s" % "total" + "".join("%15d" % totals[c] for c in COLUMNS))
        durations = [(c, results[c]["duration"]) for c in sorted(results, key=case_key)
                     if c.startswith("9.")]
        if durations:
            print("9.x durations (ms): " + ", ".join("%s %d" % d for d in durations))
        unimplemented = [p for p in problems if p[4]]
        if unimplemented:
            print("%d cases UNIMPLEMENTED in sections %s (allowed for now)"
                  % (len(unimplemented), ", ".join(sorted(allowed))))
        for case_id, behavior, close, description, ok in problems:
            if not ok:
                print("  NOT OK %-9s %s / close %s: %s" % (case_id, behavior, close, description))
    print()
    print("autobahn: %s" % ("FAILED: some cases are not OK" if failed else "every case OK"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

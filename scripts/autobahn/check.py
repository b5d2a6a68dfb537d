#!/usr/bin/env python3
"""Check an Autobahn|Testsuite report against the project's expectations.

Rule (strict): every case that was run must have behavior == behaviorClose == "OK",
unless it is listed in the expectations file (scripts/autobahn/expected-<mode>.json)
with the exact result it produces:

    {"7.13.1": {"behavior": "INFORMATIONAL", "behaviorClose": "INFORMATIONAL"}}

Only "OK", "NON-STRICT" and "INFORMATIONAL" may appear in an expectation, and at
least one of the two must be non-OK: FAILED, UNIMPLEMENTED, WRONG CODE, UNCLEAN,
... are never acceptable. A listed case that now gives a different result (even
a clean OK) is a mismatch too, so that the file stays exact. Expectations for
cases that were not part of this run (e.g. 12.*/13.* under --quick) are ignored.

If --cases names a JSON list of the case ids the run was meant to cover, a case
missing from the report counts as failed.

Prints the mismatches and then one line
    autobahn-<mode>-<runtime>: <N> passed, <M> failed
and exits 1 on any mismatch, 2 on unusable input.
"""

import argparse
import json
import os
import re
import sys

ALLOWED = {"OK", "NON-STRICT", "INFORMATIONAL"}
CASE_ID = re.compile(r"^\d+(\.\d+)+$")


def die(msg):
    print("check.py: " + msg, file=sys.stderr)
    sys.exit(2)


def case_key(case_id):
    return tuple(int(x) for x in case_id.split("."))


def load_json(path, what):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        die("cannot read %s %s: %s" % (what, path, e))


def load_expected(path):
    data = load_json(path, "expectations file")
    if data is None:
        die("expectations file %s does not exist (write {} for 'all OK')" % path)
    if not isinstance(data, dict):
        die("%s: top level must be an object of case id -> result" % path)
    errors = []
    for case_id, exp in sorted(data.items(), key=lambda kv: str(kv[0])):
        if not CASE_ID.match(case_id):
            errors.append("%s: not a case id" % case_id)
            continue
        if not isinstance(exp, dict) or set(exp) != {"behavior", "behaviorClose"}:
            errors.append('%s: must be {"behavior": ..., "behaviorClose": ...}' % case_id)
            continue
        bad = [v for v in (exp["behavior"], exp["behaviorClose"]) if v not in ALLOWED]
        if bad:
            errors.append("%s: %s may not be listed (only %s)"
                          % (case_id, "/".join(map(str, bad)), ", ".join(sorted(ALLOWED))))
        elif exp["behavior"] == "OK" and exp["behaviorClose"] == "OK":
            errors.append("%s: OK/OK is the default, do not list it" % case_id)
    if errors:
        die("invalid expectations in %s:\n  %s" % (path, "\n  ".join(errors)))
    return data


def fmt(result):
    return "%s/%s" % (result.get("behavior"), result.get("behaviorClose"))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mode", required=True, choices=["server", "client"],
                    help="server: wstest fuzzingclient tested our server; client: the reverse")
    ap.add_argument("--runtime", required=True, help="runtime name, for the summary line")
    ap.add_argument("--index", required=True, help="the run's report index.json")
    ap.add_argument("--agent", help="agent name in index.json (default: the only one)")
    ap.add_argument("--cases", help="JSON list of the case ids the run should have covered")
    ap.add_argument("--expected", help="expectations file (default: expected-<mode>.json here)")
    args = ap.parse_args()

    label = "autobahn-%s-%s" % (args.mode, args.runtime)
    expected_path = args.expected or os.path.join(here, "expected-%s.json" % args.mode)
    expected = load_expected(expected_path)
    expected_name = os.path.basename(expected_path)

    planned = None
    if args.cases:
        planned = load_json(args.cases, "case list")
        if not isinstance(planned, list) or not planned:
            die("%s: expected a non-empty JSON list of case ids" % args.cases)

    index = load_json(args.index, "report index")
    results = {}
    if index is None:
        print("check.py: no report at %s (wstest or the tested program did not finish)" % args.index)
    elif not isinstance(index, dict):
        die("%s: unexpected format" % args.index)
    else:
        agent = args.agent
        if agent is None:
            if len(index) != 1:
                die("%s has agents %s; pass --agent" % (args.index, sorted(index)))
            agent = next(iter(index))
        if agent not in index:
            print("check.py: agent %r not in %s (agents there: %s)"
                  % (agent, args.index, ", ".join(sorted(index)) or "none"))
        else:
            results = index[agent]

    cases = planned if planned is not None else list(results)
    if not cases:
        print("check.py: no test cases in the report")
        print("%s: 0 passed, 1 failed" % label)
        return 1

    passed = 0
    accepted = []
    failures = []
    for case_id in sorted(set(cases), key=case_key):
        got = results.get(case_id)
        exp = expected.get(case_id)
        if got is None:
            failures.append("%-8s not run (missing from the report)" % case_id)
            continue
        actual = (got.get("behavior"), got.get("behaviorClose"))
        if exp is None:
            if actual == ("OK", "OK"):
                passed += 1
                continue
            want = "OK/OK"
        else:
            if actual == (exp["behavior"], exp["behaviorClose"]):
                passed += 1
                accepted.append(case_id)
                continue
            want = fmt(exp) + " (" + expected_name + ")"
        failures.append("%-8s got %s, want %s; close code %s, %s ms, report %s"
                        % (case_id, fmt(got), want, got.get("remoteCloseCode"),
                           got.get("duration"), got.get("reportfile")))

    extra = sorted(set(results) - set(cases), key=case_key)
    if extra:
        print("check.py: note: %d case(s) in the report were not planned: %s"
              % (len(extra), ", ".join(extra[:20]) + (" ..." if len(extra) > 20 else "")))
    if accepted:
        print("check.py: %d case(s) accepted as listed in %s: %s"
              % (len(accepted), expected_name, ", ".join(accepted)))
    if failures:
        print("check.py: %d mismatching case(s):" % len(failures))
        for line in failures:
            print("  " + line)
    print("%s: %d passed, %d failed" % (label, passed, len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

# Python 2.7 (runs in the wstest venv): expand a wstest spec's "cases" /
# "exclude-cases" patterns into the sorted list of case ids, exactly as wstest
# does, and write it as JSON. run.sh passes it to check.py so that a case that
# never ran counts as failed.
#
# usage: .cache/autobahn/venv/bin/python expand_cases.py SPEC.json OUT.json
from __future__ import print_function

import json
import sys

from autobahntestsuite.case import (Cases, CaseBasename, CaseCategories,
                                    CaseSetname, CaseSubCategories)
from autobahntestsuite.caseset import CaseSet


def main(spec_path, out_path):
    with open(spec_path) as f:
        spec = json.load(f)
    case_set = CaseSet(CaseSetname, CaseBasename, Cases, CaseCategories, CaseSubCategories)
    cases = case_set.parseSpecCases(spec)
    unknown = [c for c in cases if c not in case_set.CasesIndices]
    if unknown:
        sys.exit("expand_cases.py: unknown case ids in %s: %s" % (spec_path, ", ".join(unknown)))
    if not cases:
        sys.exit("expand_cases.py: %s selects no test case" % spec_path)
    with open(out_path, "w") as f:
        json.dump(cases, f)
        f.write("\n")
    print(len(cases))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: expand_cases.py SPEC.json OUT.json")
    main(sys.argv[1], sys.argv[2])

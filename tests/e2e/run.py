#!/usr/bin/python3
"""
Run the bms end-to-end tests: every tests/e2e/test_*.py module, or only the
modules named on the command line (`run.py test_errors test_health.py`).

The last line printed is `e2e: N passed, N failed`; a test whose class
fixture failed counts as failed, and so does a failing class teardown.
Skipped tests are listed; the exit status is 1 on any failure.
"""

import os
import shutil
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))


class CountingResult(unittest.TextTestResult):
    """A text result that also keeps the tests that passed."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.passed = []

    def addSuccess(self, test):
        super().addSuccess(test)
        self.passed.append(test)


def module_names(argv):
    if argv:
        names = []
        for arg in argv:
            base = os.path.basename(arg)
            names.append(base[:-3] if base.endswith(".py") else base)
        return names
    return sorted(f[:-3] for f in os.listdir(HERE)
                  if f.startswith("test_") and f.endswith(".py"))


def pin_binary():
    """Run on a private copy of the bms binary, so that a rebuild of the
    tree while the tests run does not pull it from under them."""
    src = os.environ.get("BMS_BIN", os.path.join(os.path.dirname(
        os.path.dirname(HERE)), "build", "bms"))
    if not os.access(src, os.X_OK):
        return None
    tmp = tempfile.mkdtemp(prefix="bms-e2e-bin-")
    dst = os.path.join(tmp, "bms")
    shutil.copy2(src, dst)
    os.environ["BMS_BIN"] = dst
    return tmp


def main(argv):
    sys.path.insert(0, HERE)
    pinned = pin_binary()
    try:
        return run(argv)
    finally:
        if pinned:
            shutil.rmtree(pinned, ignore_errors=True)


def run(argv):
    loader = unittest.defaultTestLoader
    suite = unittest.TestSuite()
    load_failures = 0
    for name in module_names(argv):
        try:
            suite.addTests(loader.loadTestsFromName(name))
        except Exception as exc:  # an import error is a failure, not a stop
            print("e2e: cannot load %s: %s" % (name, exc), file=sys.stderr)
            load_failures += 1
    total = suite.countTestCases()
    runner = unittest.TextTestRunner(verbosity=2, resultclass=CountingResult,
                                     stream=sys.stdout)
    start = time.monotonic()
    result = runner.run(suite)
    elapsed = time.monotonic() - start

    passed = len(result.passed)
    skipped = len(result.skipped)
    # Tests that never ran (their setUpClass failed) count as failed, and
    # so does an error in a teardown that ran after its tests passed.
    teardown_errors = sum(1 for test, _ in result.errors
                          if isinstance(test, unittest.suite._ErrorHolder)
                          and "tearDown" in str(test))
    failed = total - passed - skipped + teardown_errors + load_failures
    for test, reason in result.skipped:
        print("skipped: %s: %s" % (test, reason))
    print("e2e: %.1f s" % elapsed)
    if skipped:
        print("e2e: %d passed, %d failed, %d skipped"
              % (passed, failed, skipped))
    else:
        print("e2e: %d passed, %d failed" % (passed, failed))
    return 1 if failed or not result.wasSuccessful() else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

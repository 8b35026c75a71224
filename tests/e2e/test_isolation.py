"""
Crash isolation over HTTP: models served with "isolation": "process" run
in worker processes, and tests/data/fault.onnx (the test-only operator
BmsTestFault) makes a worker segfault, abort, hang or run out of memory
on request.  Each fault answers its documented 5xx within a few seconds,
the server stays up, the worker is restarted and the next request is
answered (BmsTestFault looks at the first value of its whole input, so
in a merged batch only a bad row that comes first faults); concurrent good requests mixed with crashing ones each get
their own answer.  A worker that its warm-up canary crashes is restarted
before it takes requests.  Bad isolation fields refuse the model naming
them.

Needs a build with the faulty operator:
    make TEST_FAULTS=1 BUILD=build/faults
    BMS_BIN=build/faults/bms /usr/bin/python3 tests/e2e/run.py \\
        test_isolation
Without one (the model does not load) every test is skipped.
"""

import json
import os
import shutil
import tempfile
import threading
import time
import unittest

import bmstest

FAULT_ONNX = os.path.join(bmstest.ROOT, "tests", "data", "fault.onnx")
# y = BmsTestFault(x + 1): the warm-up's zeros crash it
FAULT_PLUS1_ONNX = os.path.join(bmstest.ROOT, "tests", "data",
                                "fault_plus1.onnx")
RECOVER_S = 10.0                 # a restart takes 100 ms plus a load
FAULT_ANSWER_S = 8.0             # the longest a fault may take to answer
BAD_TRIES = 20                   # sends of a crashing row, concurrent test

VARIANTS = {
    "fault_one": {"isolation": "process", "instances": 1,
                  "isolation_timeout_ms": 1000},
    "fault_memory": {"isolation": "process", "instances": 1,
                     "isolation_timeout_ms": 20000,
                     "isolation_memory_mb": 512},
    "fault_two": {"isolation": "process", "instances": 2,
                  "max_batch_size": 8, "max_queue_delay_us": 5000,
                  "isolation_timeout_ms": 2000},
    "fault_warm": {"isolation": "process", "instances": 1,
                   "isolation_timeout_ms": 2000},
    "fault_bad_isolation": {"isolation": "fork"},
    "fault_bad_timeout": {"isolation": "process",
                          "isolation_timeout_ms": 0},
    "fault_bad_memory": {"isolation": "process",
                         "isolation_memory_mb": -1},
}


def make_repository():
    root = tempfile.mkdtemp(prefix="bms-e2e-isolation-")
    for name, sched in VARIANTS.items():
        os.makedirs(os.path.join(root, name, "1"))
        shutil.copy(FAULT_PLUS1_ONNX if name == "fault_warm" else
                    FAULT_ONNX, os.path.join(root, name, "1", "model.onnx"))
        config = {"name": name,
                  "inputs": [{"name": "x", "type": "float", "size": [4]}],
                  "outputs": [{"name": "y", "type": "float", "size": [4]}],
                  "scheduling": sched}
        if name == "fault_warm":
            config["health"] = {"period_ms": 0}   # no probe to revive it
        with open(os.path.join(root, name, "config.json"), "w") as f:
            json.dump(config, f)
    return root


def body(row):
    return json.dumps({"inputs": [{"name": "x", "shape": [1, 4],
                                   "datatype": "FP32", "data": row}]})


def good_row(i):
    """A row BmsTestFault copies: x[0] is none of the fault codes."""
    return [10.0 + i, 0.5 * i, -1.0 * i, 7.0]


class IsolationTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.repo_dir = make_repository()
        cls.server = bmstest.Server(repository=cls.repo_dir, threads=4)
        try:
            cls.server.start()
        except BaseException:
            cls.server.cleanup()
            shutil.rmtree(cls.repo_dir, ignore_errors=True)
            raise
        cls.client = cls.server.client()
        cls.skip_reason = None
        resp = cls.client.get("/v2/models/fault_one/ready")
        if resp.status != 200:
            # Each test skips on its own, so that every one is counted.
            cls.skip_reason = (
                "BMS_BIN is not a TEST_FAULTS=1 build (fault.onnx: %s); "
                "run make TEST_FAULTS=1 BUILD=build/faults and "
                "BMS_BIN=build/faults/bms" % resp.json().get("reason", ""))

    def setUp(self):
        if self.skip_reason is not None:
            self.skipTest(self.skip_reason)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.server.cleanup()
        shutil.rmtree(cls.repo_dir, ignore_errors=True)

    def stats(self, model):
        resp = self.client.get("/v2/models/%s" % model)
        self.assertEqual(resp.status, 200, resp)
        return resp.json()["scheduling"]["stats"]

    def assert_copied(self, resp, row):
        self.assertEqual(resp.status, 200, resp)
        out = resp.json()["outputs"][0]
        self.assertEqual(out["shape"], [1, 4])
        self.assertEqual(out["data"], row)

    def recover(self, model, i=0):
        """Send a good request until it is answered (the worker is back);
        meanwhile only 503 "instance restarting" is allowed."""
        deadline = time.monotonic() + RECOVER_S
        while True:
            resp = self.client.infer(model, body(good_row(i)))
            if resp.status == 200 or time.monotonic() > deadline:
                break
            self.assertEqual(resp.status, 503, resp)
            self.assertEqual(resp.json()["error"], "instance restarting")
            self.assertIsNotNone(resp.header("Retry-After"))
            time.sleep(0.05)
        self.assert_copied(resp, good_row(i))

    def assert_fault(self, code, message, model="fault_one"):
        self.recover(model)
        before = self.stats(model)
        start = time.monotonic()
        resp = self.client.infer(model, body([float(code), 1.0, 2.0, 3.0]))
        elapsed = time.monotonic() - start
        self.assertEqual(resp.status, 500, resp)
        self.assertIn(message, resp.json()["error"])
        self.assertLess(elapsed, FAULT_ANSWER_S)
        self.assertTrue(self.server.alive())
        self.recover(model, code)
        after = self.stats(model)
        self.assertEqual(after["crashes"], before["crashes"] + 1)
        self.assertEqual(after["restarts"], before["restarts"] + 1)
        return elapsed

    def test_segfault_answers_500_and_worker_restarts(self):
        self.assert_fault(1, "worker crashed: signal 11")

    def test_abort_answers_500_and_worker_restarts(self):
        self.assert_fault(2, "worker crashed: signal 6")

    def test_hang_is_killed_after_isolation_timeout(self):
        elapsed = self.assert_fault(3, "worker hung: no answer in")
        self.assertGreaterEqual(elapsed, 0.9)   # isolation_timeout_ms 1000

    def test_hang_past_request_deadline_answers_504(self):
        self.recover("fault_one")
        before = self.stats("fault_one")
        start = time.monotonic()
        resp = self.client.request("POST", "/v2/models/fault_one/infer",
                                   body([3.0, 0.0, 0.0, 0.0]),
                                   {"Timeout-Ms": "300"})
        elapsed = time.monotonic() - start
        self.assertEqual(resp.status, 504, resp)
        self.assertLess(elapsed, 0.9)            # before the 1000 ms limit
        self.recover("fault_one", 5)
        after = self.stats("fault_one")
        self.assertEqual(after["crashes"], before["crashes"] + 1)
        self.assertEqual(after["expired"], before["expired"] + 1)

    def test_memory_exhaustion_answers_500_and_worker_restarts(self):
        self.assert_fault(4, "worker crashed", model="fault_memory")

    def test_good_request_runs_in_a_worker(self):
        self.recover("fault_one")
        for i in range(5):
            resp = self.client.infer("fault_one", body(good_row(i)))
            self.assert_copied(resp, good_row(i))

    def test_metadata_shows_isolation(self):
        resp = self.client.get("/v2/models/fault_memory")
        self.assertEqual(resp.status, 200, resp)
        sched = resp.json()["scheduling"]
        self.assertEqual(sched["isolation"], "process")
        self.assertEqual(sched["isolation_timeout_ms"], 20000)
        self.assertEqual(sched["isolation_memory_mb"], 512)
        self.assertIn("crashes", sched["stats"])
        self.assertIn("restarts", sched["stats"])

    def test_concurrent_good_requests_get_their_own_answers(self):
        n_good, n_bad = 24, 6
        jobs = [("good", i) for i in range(n_good)] + \
               [("bad", i) for i in range(n_bad)]
        jobs.sort(key=lambda j: (j[1] * 7 + (j[0] == "bad")) % 11)
        results = [None] * len(jobs)
        barrier = threading.Barrier(len(jobs))
        self.recover("fault_two")

        def run(k, kind, i):
            client = self.server.client()
            row = good_row(100 + i) if kind == "good" else \
                [1.0, float(i), 0.0, 0.0]
            try:
                barrier.wait(30)
                deadline = time.monotonic() + RECOVER_S
                tries = 0
                while True:
                    resp = client.infer("fault_two", body(row))
                    tries += 1
                    if time.monotonic() > deadline:
                        break
                    if kind == "good" and resp.status != 503:
                        break
                    # A bad row crashes its worker only when it is first
                    # in its batch; copied (200), it is sent again, so
                    # that some worker does crash while others serve.
                    if kind == "bad" and (resp.status != 200 or
                                          tries == BAD_TRIES):
                        break
                    time.sleep(0.05)
                results[k] = (kind, row, resp)
            finally:
                client.close()

        threads = [threading.Thread(target=run, args=(k, kind, i))
                   for k, (kind, i) in enumerate(jobs)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertTrue(self.server.alive())
        for kind, row, resp in results:
            if kind == "good" or resp.status == 200:
                # A bad row that is not first in its batch is copied.
                self.assert_copied(resp, row)
            else:
                self.assertIn(resp.status, (500, 503), resp)
                if resp.status == 500:
                    self.assertIn("worker crashed: signal 11",
                                  resp.json()["error"])
        self.recover("fault_two")
        self.assertGreaterEqual(self.stats("fault_two")["crashes"], 1)

    def assert_refused(self, model, field):
        resp = self.client.get("/v2/models/%s/ready" % model)
        self.assertEqual(resp.status, 503, resp)
        self.assertIn(field, resp.json()["reason"])

    def test_warm_up_crash_restarts_the_worker(self):
        # The warm-up canary (zeros: x + 1 = 1, SIGSEGV) takes the worker
        # down as the model starts; the crash is counted and the worker
        # restarted at once, and the first request is answered, not given
        # the warm-up's crash.
        deadline = time.monotonic() + RECOVER_S
        while (self.stats("fault_warm")["restarts"] < 1 and
               time.monotonic() < deadline):
            time.sleep(0.05)
        stats = self.stats("fault_warm")
        self.assertEqual(stats["crashes"], 1)
        self.assertEqual(stats["restarts"], 1)
        self.assertIn('msg="warm-up failed" model=fault_warm',
                      "\n".join(list(self.server.log_lines)))
        resp = self.client.infer("fault_warm", body(good_row(0)))
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.json()["outputs"][0]["data"],
                         [v + 1 for v in good_row(0)])

    def test_unknown_isolation_refuses_model(self):
        self.assert_refused("fault_bad_isolation", "scheduling.isolation")

    def test_zero_timeout_refuses_model(self):
        self.assert_refused("fault_bad_timeout",
                            "scheduling.isolation_timeout_ms")

    def test_negative_memory_refuses_model(self):
        self.assert_refused("fault_bad_memory",
                            "scheduling.isolation_memory_mb")


if __name__ == "__main__":
    unittest.main()

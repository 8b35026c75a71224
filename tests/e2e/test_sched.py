"""
The scheduler over HTTP: a temporary repository holds copies of the
bundled CNN with "scheduling" variants in config.json.  Concurrent single
requests are merged into fewer executions; answers split from a batch
equal separate single runs on an unbatched copy; a full queue and the
concurrency limit answer 503 with Retry-After; a passed deadline answers
504; metadata shows the scheduling and its instances; each instance warms
up before it serves unless told not to; a bad scheduling field refuses
the model with a message naming it.
"""

import json
import os
import shutil
import tempfile
import time
import threading
import unittest

import numpy as np

import bmstest

CNN = "fashion_cnn"
ITEM = bmstest.ITEM_SHAPE[CNN]

VARIANTS = {
    "cnn_plain": None,
    "cnn_batch": {"max_batch_size": 16, "max_queue_delay_us": 20000,
                  "preferred_batch_sizes": [16], "instances": 2},
    "cnn_queue1": {"max_queue_size": 1, "instances": 1},
    "cnn_limit1": {"max_concurrency": 1, "instances": 1},
    "cnn_bad_batch": {"max_batch_size": -1},
    "cnn_bad_instances": {"instances": "two"},
    "cnn_bad_preferred": {"max_batch_size": 4,
                          "preferred_batch_sizes": [8]},
    # A long delay: a lone request waits it out, unless adaptive_delay
    # closes the batch once nothing else is on its way.
    "cnn_wait": {"max_batch_size": 8, "max_queue_delay_us": 400000,
                 "instances": 1},
    "cnn_adaptive": {"max_batch_size": 8, "max_queue_delay_us": 400000,
                     "instances": 1, "adaptive_delay": True},
    "cnn_bad_adaptive": {"max_batch_size": 8, "adaptive_delay": "yes"},
    "cnn_cold": {"instances": 2, "warmup": False},
    "cnn_bad_warmup": {"warmup": 1},
}


def make_repository():
    root = tempfile.mkdtemp(prefix="bms-e2e-sched-")
    src = os.path.join(bmstest.MODELS, CNN)
    for name, sched in VARIANTS.items():
        dst = os.path.join(root, name)
        os.makedirs(os.path.join(dst, "1"))
        shutil.copy(os.path.join(src, "1", "model.onnx"),
                    os.path.join(dst, "1", "model.onnx"))
        config = bmstest.model_config(CNN)
        config["name"] = name
        config.pop("scheduling", None)   # the defaults, not the bundled
        if sched is not None:
            config["scheduling"] = sched
        with open(os.path.join(dst, "config.json"), "w") as f:
            json.dump(config, f)
    return root


def raw_body(images, timeout_ms=None):
    body = json.loads(bmstest.infer_body(images, ITEM,
                                         outputs=[{"name": "label",
                                                   "parameters":
                                                   {"raw": True}}]))
    if timeout_ms is not None:
        body["parameters"] = {"timeout_ms": timeout_ms}
    return json.dumps(body).encode("ascii")


def logits(resp):
    out = resp.json()["outputs"][0]
    return np.array(out["data"], dtype=np.float32).reshape(out["shape"])


def concurrently(server, jobs):
    """Run jobs (model, body, headers) at once, one client each; return
    the responses in order."""
    results = [None] * len(jobs)
    barrier = threading.Barrier(len(jobs))

    def run(i, model, body, headers):
        client = server.client()
        try:
            barrier.wait(30)
            results[i] = client.request(
                "POST", "/v2/models/%s/infer" % model, body, headers)
        except Exception as e:              # noqa: BLE001 (reported below)
            results[i] = e
        finally:
            client.close()

    threads = [threading.Thread(target=run, args=(i,) + tuple(job))
               for i, job in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for r in results:
        if isinstance(r, Exception) or r is None:
            raise AssertionError("a concurrent request failed: %r" % (r,))
    return results


class SchedTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.images = bmstest.load_test_images()
        cls.repo_dir = make_repository()
        cls.server = bmstest.Server(repository=cls.repo_dir)
        try:
            cls.server.start()
        except BaseException:
            cls.server.cleanup()
            shutil.rmtree(cls.repo_dir, ignore_errors=True)
            raise
        cls.client = cls.server.client()

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.server.cleanup()
        shutil.rmtree(cls.repo_dir, ignore_errors=True)

    def metadata(self, model):
        resp = self.client.get("/v2/models/%s" % model)
        self.assertEqual(resp.status, 200, resp)
        return resp.json()

    def single(self, model, images):
        resp = self.client.infer(model, raw_body(images))
        self.assertEqual(resp.status, 200, resp)
        return logits(resp)

    # --- batching -----------------------------------------------------

    def test_concurrent_singles_share_executions(self):
        before = self.metadata("cnn_batch")["scheduling"]["stats"]
        jobs = [("cnn_batch", raw_body(self.images[i:i + 1]), None)
                for i in range(32)]
        for resp in concurrently(self.server, jobs):
            self.assertEqual(resp.status, 200, resp)
        after = self.metadata("cnn_batch")["scheduling"]["stats"]
        requests = after["requests"] - before["requests"]
        executions = after["executions"] - before["executions"]
        self.assertEqual(requests, 32)
        self.assertLess(executions, requests)

    def timed_single(self, model, i):
        start = time.monotonic()
        got = self.single(model, self.images[i:i + 1])
        return time.monotonic() - start, got

    def test_adaptive_delay_closes_a_lone_batch_at_once(self):
        # The same lone request: 0.4 s of delay waited out without
        # adaptive_delay, not with it (nothing else is arriving); the
        # answers are the same.
        waited, want = self.timed_single("cnn_wait", 3)
        self.assertGreaterEqual(waited, 0.39)
        for _ in range(3):
            took, got = self.timed_single("cnn_adaptive", 3)
            self.assertLess(took, 0.2)
            np.testing.assert_array_equal(got, want)
        sched = self.metadata("cnn_adaptive")["scheduling"]
        self.assertIs(sched["adaptive_delay"], True)
        self.assertIs(self.metadata("cnn_wait")["scheduling"]
                      ["adaptive_delay"], False)

    def test_adaptive_delay_answers_concurrent_requests(self):
        jobs = [("cnn_adaptive", raw_body(self.images[i:i + 1]), None)
                for i in range(16)]
        for i, resp in enumerate(concurrently(self.server, jobs)):
            self.assertEqual(resp.status, 200, resp)
            want = self.single("cnn_plain", self.images[i:i + 1])
            np.testing.assert_allclose(logits(resp), want, rtol=1e-4,
                                       atol=1e-5)

    def test_split_answers_equal_single_runs(self):
        sizes = [1, 2, 3, 1, 5, 4, 1, 2, 7, 3, 1, 6]
        starts = np.cumsum([0] + sizes[:-1])
        jobs = [("cnn_batch", raw_body(self.images[s:s + n]), None)
                for s, n in zip(starts, sizes)]
        before = self.metadata("cnn_batch")["scheduling"]["stats"]
        answers = concurrently(self.server, jobs)
        after = self.metadata("cnn_batch")["scheduling"]["stats"]
        # Some answers were cut out of a shared execution.
        self.assertLess(after["executions"] - before["executions"],
                        len(sizes))
        self.assertEqual(after["items"] - before["items"], sum(sizes))
        for (s, n), resp in zip(zip(starts, sizes), answers):
            self.assertEqual(resp.status, 200, resp)
            got = logits(resp)
            self.assertEqual(got.shape, (n, 10))
            want = np.concatenate([self.single("cnn_plain",
                                               self.images[s + i:s + i + 1])
                                   for i in range(n)])
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
            np.testing.assert_array_equal(got.argmax(1), want.argmax(1))

    def test_classifier_answer_after_batching(self):
        jobs = [("cnn_batch", bmstest.infer_body(self.images[i:i + 1], ITEM),
                 None) for i in range(8)]
        reference = bmstest.model_reference(CNN)
        for i, resp in enumerate(concurrently(self.server, jobs)):
            self.assertEqual(resp.status, 200, resp)
            self.assertEqual(resp.json()["outputs"][0]["data"],
                             [reference[i]])

    # --- shedding -----------------------------------------------------

    def assert_some_shed(self, model, message):
        # Twelve clients at once against a queue or limit of one: whether
        # their requests overlap depends on how the two cores interleave
        # the parsing, so a burst that happened to arrive one by one is
        # tried again, up to five bursts.
        big = raw_body(self.images[:256])
        shed = []
        for _ in range(5):
            answers = concurrently(self.server,
                                   [(model, big, None) for _ in range(12)])
            statuses = [r.status for r in answers]
            self.assertIn(200, statuses)
            self.assertLessEqual(set(statuses), {200, 503})
            shed = [r for r in answers if r.status == 503]
            if shed:
                break
        self.assertTrue(shed, "no request was shed in five bursts")
        for r in shed:
            self.assertEqual(r.header("Retry-After"), "1")
            self.assertIn(message, r.json()["error"])

    def test_full_queue_answers_503_retry_after(self):
        self.assert_some_shed("cnn_queue1", "queue is full")
        stats = self.metadata("cnn_queue1")["scheduling"]["stats"]
        self.assertGreater(stats["shed"], 0)

    def test_concurrency_limit_answers_503_retry_after(self):
        self.assert_some_shed("cnn_limit1", "concurrency limit")

    # --- deadlines ----------------------------------------------------

    def test_passed_deadline_in_body_answers_504(self):
        resp = self.client.infer("cnn_plain", raw_body(self.images[:512],
                                                       timeout_ms=1))
        self.assertEqual(resp.status, 504, resp)
        self.assertIn("deadline", resp.json()["error"])

    def test_passed_deadline_in_header_answers_504(self):
        resp = self.client.request("POST", "/v2/models/cnn_plain/infer",
                                   raw_body(self.images[:512]),
                                   {"Timeout-Ms": "1"})
        self.assertEqual(resp.status, 504, resp)

    def test_generous_deadline_answers(self):
        resp = self.client.request("POST", "/v2/models/cnn_plain/infer",
                                   raw_body(self.images[:4],
                                            timeout_ms=60000),
                                   {"Timeout-Ms": "60000"})
        self.assertEqual(resp.status, 200, resp)

    def test_malformed_timeout_header_is_400(self):
        resp = self.client.request("POST", "/v2/models/cnn_plain/infer",
                                   raw_body(self.images[:1]),
                                   {"Timeout-Ms": "soon"})
        self.assertEqual(resp.status, 400, resp)
        self.assertIn("Timeout-Ms", resp.json()["error"])

    def test_malformed_timeout_parameter_is_400(self):
        resp = self.client.infer("cnn_plain", raw_body(self.images[:1],
                                                       timeout_ms=-5))
        self.assertEqual(resp.status, 400, resp)
        self.assertIn("parameters.timeout_ms", resp.json()["error"])

    # --- metadata and configuration -----------------------------------

    def test_metadata_shows_scheduling_and_instances(self):
        sched = self.metadata("cnn_batch")["scheduling"]
        self.assertEqual(sched["instances"], 2)
        self.assertEqual(sched["max_batch_size"], 16)
        self.assertEqual(sched["max_queue_delay_us"], 20000)
        self.assertEqual(sched["preferred_batch_sizes"], [16])
        self.assertEqual(sched["threads_per_instance"],
                         max(1, os.cpu_count() // 2))

    def test_metadata_shows_defaults(self):
        sched = self.metadata("cnn_plain")["scheduling"]
        self.assertEqual(sched["max_queue_size"], 256)
        self.assertEqual(sched["max_batch_size"], 0)
        self.assertEqual(sched["max_queue_delay_us"], 500)
        self.assertEqual(sched["preferred_batch_sizes"], [])
        self.assertEqual(sched["instances"], 1)
        self.assertEqual(sched["max_concurrency"], 0)

    def assert_refused(self, model, field):
        resp = self.client.get("/v2/models/%s/ready" % model)
        self.assertEqual(resp.status, 503, resp)
        self.assertIn(field, resp.json()["reason"])

    def test_bad_batch_size_refuses_model(self):
        self.assert_refused("cnn_bad_batch", "scheduling.max_batch_size")

    def test_bad_instances_refuses_model(self):
        self.assert_refused("cnn_bad_instances", "scheduling.instances")

    # --- warm-up ------------------------------------------------------

    def warmed_up(self, model):
        """Instances of model the log says warmed up before serving."""
        tag = 'msg="instance warmed up" model=%s ' % model
        return sum(1 for line in list(self.server.log_lines) if tag in line)

    def test_each_instance_warms_up_before_serving(self):
        # The health canary runs once on every instance as it starts (the
        # default), on its own thread, and on none with "warmup": false;
        # either way the answers are the model's.
        deadline = time.monotonic() + 10
        while (self.warmed_up("cnn_batch") < 2 or
               self.warmed_up("cnn_plain") < 1) and \
                time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(self.warmed_up("cnn_batch"), 2)
        self.assertEqual(self.warmed_up("cnn_plain"), 1)
        self.assertEqual(self.warmed_up("cnn_cold"), 0)
        self.assertIs(self.metadata("cnn_plain")["scheduling"]["warmup"],
                      True)
        self.assertIs(self.metadata("cnn_cold")["scheduling"]["warmup"],
                      False)
        np.testing.assert_array_equal(self.single("cnn_cold",
                                                  self.images[:2]),
                                      self.single("cnn_plain",
                                                  self.images[:2]))

    def test_bad_warmup_refuses_model(self):
        self.assert_refused("cnn_bad_warmup", "scheduling.warmup")

    def test_bad_adaptive_delay_refuses_model(self):
        self.assert_refused("cnn_bad_adaptive", "scheduling.adaptive_delay")

    def test_preferred_above_max_refuses_model(self):
        self.assert_refused("cnn_bad_preferred",
                            "scheduling.preferred_batch_sizes[0]")


if __name__ == "__main__":
    unittest.main()

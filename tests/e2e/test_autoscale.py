"""
Autoscaling over HTTP: a copy of the bundled CNN with "min_instances" 1
and "max_instances" 2.  Sustained concurrent load, with requests left
waiting, starts the second instance; a quiet period retires it again.
Metadata shows the bounds, the instances running and the scale counts;
every answer during the changes is the reference class of its image.
Bad bounds refuse the model with a message naming the field.
"""

import json
import os
import shutil
import tempfile
import threading
import time
import unittest

import bmstest

CNN = "fashion_cnn"
ITEM = bmstest.ITEM_SHAPE[CNN]

VARIANTS = {
    "cnn_auto": {"min_instances": 1, "max_instances": 2,
                 "scale_down_after_s": 1},
    "cnn_auto_bad": {"min_instances": 3, "max_instances": 2},
    "cnn_auto_outside": {"instances": 4, "min_instances": 1,
                         "max_instances": 2},
}

LOAD_S = 4.0          # seconds of sustained load
CLIENTS = 6


def make_repository():
    root = tempfile.mkdtemp(prefix="bms-e2e-autoscale-")
    src = os.path.join(bmstest.MODELS, CNN)
    for name, sched in VARIANTS.items():
        dst = os.path.join(root, name)
        os.makedirs(os.path.join(dst, "1"))
        shutil.copy(os.path.join(src, "1", "model.onnx"),
                    os.path.join(dst, "1", "model.onnx"))
        config = bmstest.model_config(CNN)
        config["name"] = name
        config["scheduling"] = sched
        with open(os.path.join(dst, "config.json"), "w") as f:
            json.dump(config, f)
    return root


class AutoscaleTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.images = bmstest.load_test_images()
        cls.reference = bmstest.model_reference(CNN)
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

    def scheduling(self, model):
        resp = self.client.get("/v2/models/%s" % model)
        self.assertEqual(resp.status, 200, resp)
        return resp.json()["scheduling"]

    def wait_instances(self, model, n, timeout_s):
        end = time.monotonic() + timeout_s
        sched = self.scheduling(model)
        while sched["stats"]["instances"] != n and time.monotonic() < end:
            time.sleep(0.1)
            sched = self.scheduling(model)
        return sched

    def test_load_starts_an_instance_and_quiet_retires_it(self):
        sched = self.wait_instances("cnn_auto", 1, 10)
        self.assertEqual(sched["min_instances"], 1)
        self.assertEqual(sched["max_instances"], 2)
        self.assertEqual(sched["scale_down_after_s"], 1)
        self.assertEqual(sched["scale_up_wait_ms"], 10)
        self.assertEqual(sched["stats"]["instances"], 1)
        ups_before = sched["stats"]["scale_ups"]
        downs_before = sched["stats"]["scale_downs"]

        wrong = []
        failed = []
        peak = [1]
        # Bodies made before the clock starts: making them is slower in
        # Python than the server is at answering them.
        n = 64
        bodies = [(s, bmstest.infer_body(self.images[s:s + n], ITEM))
                  for s in range(0, 16 * n, n)]
        stop = time.monotonic() + LOAD_S

        def run(k):
            client = self.server.client()
            i = k
            try:
                while time.monotonic() < stop:
                    start, body = bodies[i % len(bodies)]
                    resp = client.infer("cnn_auto", body)
                    if resp.status != 200:
                        failed.append(resp.status)
                        continue
                    got = resp.json()["outputs"][0]["data"]
                    if got != self.reference[start:start + n]:
                        wrong.append(start)
                    i += CLIENTS
            finally:
                client.close()

        def watch():
            client = self.server.client()
            try:
                while time.monotonic() < stop:
                    resp = client.get("/v2/models/cnn_auto")
                    st = resp.json()["scheduling"]["stats"]
                    peak[0] = max(peak[0], st["instances"])
                    time.sleep(0.05)
            finally:
                client.close()

        threads = [threading.Thread(target=run, args=(k,))
                   for k in range(CLIENTS)]
        threads.append(threading.Thread(target=watch))
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(failed, [])
        self.assertEqual(wrong, [])
        self.assertEqual(peak[0], 2, "the second instance never started")
        sched = self.scheduling("cnn_auto")
        self.assertGreater(sched["stats"]["scale_ups"], ups_before)

        # Quiet: back to one within the quiet period plus a margin.
        sched = self.wait_instances("cnn_auto", 1, 10)
        self.assertEqual(sched["stats"]["instances"], 1)
        self.assertGreater(sched["stats"]["scale_downs"], downs_before)

        # And it still answers right after retiring.
        body = bmstest.infer_body(self.images[:8], ITEM)
        resp = self.client.infer("cnn_auto", body)
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.json()["outputs"][0]["data"],
                         self.reference[:8])

    def test_min_above_max_is_refused_naming_the_field(self):
        resp = self.client.get("/v2/models/cnn_auto_bad/ready")
        self.assertNotEqual(resp.status, 200, resp)
        self.assertIn("scheduling.min_instances", self.server.log(400))

    def test_instances_outside_the_bounds_is_refused(self):
        resp = self.client.get("/v2/models/cnn_auto_outside/ready")
        self.assertNotEqual(resp.status, 200, resp)
        self.assertIn("scheduling.instances", self.server.log(400))


if __name__ == "__main__":
    unittest.main()

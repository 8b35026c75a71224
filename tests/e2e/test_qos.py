"""
Serving state over HTTP: health probes, automatic stop (QoS), admin stop
and resume, alerts.  A temporary repository holds copies of the bundled
MLP with "qos" and "health" variants, and a one-node Reshape graph whose
shape comes from an INT64 input: the canary's zeros make the engine
refuse it (4 elements cannot become [1]), so its only instance fails its
probe while a real request would run.
"""

import json
import os
import shutil
import sqlite3
import tempfile
import time
import unittest

import bmstest

MLP = "fashion_mlp"
ITEM = bmstest.ITEM_SHAPE[MLP]

VARIANTS = {
    "qos_p99": {"qos": {"max_p99_ms": 0.001, "min_requests": 5,
                        "cooldown_s": 1}},
    "qos_errors": {"qos": {"max_error_rate": 0.5, "min_requests": 5,
                           "cooldown_s": 1}},
    "qos_admin": {},
    "qos_bad_rate": {"qos": {"max_error_rate": 2}},
    "qos_bad_window": {"qos": {"window_s": "long"}},
    "health_bad_period": {"health": {"period_ms": -1}},
}


def write_reshape_model(root):
    """canary_bad: y = Reshape(x [N, 4], shape [1] INT64), the model that
    tests/data/make_qos_model.py writes."""
    dst = os.path.join(root, "canary_bad")
    os.makedirs(os.path.join(dst, "1"))
    shutil.copy(os.path.join(bmstest.ROOT, "tests", "data",
                             "qos_reshape.onnx"),
                os.path.join(dst, "1", "model.onnx"))
    config = {"name": "canary_bad",
              "inputs": [{"name": "x", "type": "float", "size": [4]},
                         {"name": "shape", "type": "int", "size": []}],
              "outputs": [{"name": "y", "type": "float"}],
              "health": {"period_ms": 100, "timeout_ms": 1000}}
    with open(os.path.join(dst, "config.json"), "w") as f:
        json.dump(config, f)


def make_repository():
    root = tempfile.mkdtemp(prefix="bms-e2e-qos-")
    src = os.path.join(bmstest.MODELS, MLP)
    for name, extra in VARIANTS.items():
        dst = os.path.join(root, name)
        os.makedirs(os.path.join(dst, "1"))
        shutil.copy(os.path.join(src, "1", "model.onnx"),
                    os.path.join(dst, "1", "model.onnx"))
        config = bmstest.model_config(MLP)
        config["name"] = name
        config.pop("scheduling", None)   # one instance, the default
        config.update(extra)
        with open(os.path.join(dst, "config.json"), "w") as f:
            json.dump(config, f)
    write_reshape_model(root)
    return root


RESHAPE_BODY = json.dumps({"inputs": [
    {"name": "x", "datatype": "FP32", "shape": [1, 4],
     "data": [1, 2, 3, 4]},
    {"name": "shape", "datatype": "INT64", "shape": [1], "data": [4]}]})


class QosTest(unittest.TestCase):

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
        cls.one = bmstest.infer_body(cls.images[:1], ITEM)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.server.cleanup()
        shutil.rmtree(cls.repo_dir, ignore_errors=True)

    def ready(self, model):
        return self.client.get("/v2/models/%s/ready" % model)

    def alerts(self, model):
        resp = self.client.get("/api/alerts")
        self.assertEqual(resp.status, 200, resp)
        alerts = resp.json()["alerts"]
        ids = [a["id"] for a in alerts]
        self.assertEqual(ids, sorted(ids, reverse=True), "newest first")
        return [a for a in alerts if a["model"] == model]

    def stored_alerts(self, model):
        con = sqlite3.connect("file:%s?mode=ro" % self.server.db_path(),
                              uri=True)
        try:
            rows = con.execute("SELECT kind, message, version FROM alerts "
                               "WHERE model = ? ORDER BY id", (model,))
            return rows.fetchall()
        finally:
            con.close()

    def post(self, path):
        return self.client.request("POST", path, b"")

    # --- automatic stop -----------------------------------------------

    def test_p99_over_threshold_stops_and_trial_stops_again(self):
        for i in range(4):
            self.assertEqual(self.client.infer("qos_p99", self.one).status,
                             200)
            self.assertEqual(self.ready("qos_p99").status, 200)
        # The fifth completion fills min_requests: every p99 is over
        # 0.001 ms, so the model stops (this request itself was served).
        self.assertEqual(self.client.infer("qos_p99", self.one).status, 200)
        ready = self.ready("qos_p99")
        self.assertEqual(ready.status, 503, ready)
        self.assertFalse(ready.json()["ready"])
        self.assertIn("qos.max_p99_ms", ready.json()["reason"])
        resp = self.client.infer("qos_p99", self.one)
        self.assertEqual(resp.status, 503, resp)
        self.assertRegex(resp.json()["error"],
                         r"^stopped: p99 [0-9.e-]+ ms over qos.max_p99_ms "
                         r"0.001$")
        alerts = self.alerts("qos_p99")
        self.assertEqual(alerts[0]["kind"], "stopped")
        self.assertEqual(alerts[0]["version"], 1)
        self.assertIn("qos.max_p99_ms", alerts[0]["message"])
        stored = self.stored_alerts("qos_p99")
        self.assertEqual(stored[0][0], "stopped")
        self.assertIn("qos.max_p99_ms 0.001", stored[0][1])
        meta = self.client.get("/v2/models/qos_p99").json()
        self.assertFalse(meta["qos"]["serving"])

        # After the cooldown one trial runs; it is slower than 0.001 ms
        # too, so the model stays stopped.
        time.sleep(1.2)
        trial = self.client.infer("qos_p99", self.one)
        self.assertEqual(trial.status, 200, trial)
        after = self.client.infer("qos_p99", self.one)
        self.assertEqual(after.status, 503, after)
        self.assertIn("qos.max_p99_ms", after.json()["error"])
        kinds = [k for k, _, _ in self.stored_alerts("qos_p99")]
        self.assertEqual(kinds, ["stopped", "stopped"])
        self.assertIn("trial", self.alerts("qos_p99")[0]["message"])

    def test_error_rate_stops_and_good_trial_resumes(self):
        # 256 images parse for longer than a 1 ms deadline: every one of
        # these is a 504, an error for QoS.
        late = json.loads(bmstest.infer_body(self.images[:256], ITEM))
        late["parameters"] = {"timeout_ms": 1}
        late = json.dumps(late).encode("ascii")
        for i in range(5):
            resp = self.client.infer("qos_errors", late)
            self.assertEqual(resp.status, 504, resp)
        resp = self.client.infer("qos_errors", self.one)
        self.assertEqual(resp.status, 503, resp)
        self.assertIn("qos.max_error_rate 0.5", resp.json()["error"])
        self.assertIn("(5 of 5)", resp.json()["error"])
        self.assertEqual(self.ready("qos_errors").status, 503)

        # A good trial after the cooldown resumes the model.
        time.sleep(1.2)
        self.assertEqual(self.client.infer("qos_errors", self.one).status,
                         200)
        self.assertEqual(self.ready("qos_errors").status, 200)
        self.assertEqual(self.client.infer("qos_errors", self.one).status,
                         200)
        kinds = [k for k, _, _ in self.stored_alerts("qos_errors")]
        self.assertEqual(kinds, ["stopped", "resumed"])
        self.assertEqual(self.alerts("qos_errors")[0]["kind"], "resumed")

    # --- admin --------------------------------------------------------

    def test_admin_stop_and_resume(self):
        self.assertEqual(self.client.infer("qos_admin", self.one).status,
                         200)
        resp = self.post("/v2/models/qos_admin/versions/1/stop")
        self.assertEqual(resp.status, 200, resp)
        self.assertTrue(resp.json()["stopped"])
        ready = self.ready("qos_admin")
        self.assertEqual(ready.status, 503)
        self.assertEqual(ready.json()["reason"], "stopped by an admin")
        resp = self.client.infer("qos_admin", self.one)
        self.assertEqual(resp.status, 503)
        self.assertEqual(resp.json()["error"], "stopped by an admin")
        self.assertEqual(self.alerts("qos_admin")[0]["kind"],
                         "stopped_by_admin")

        resp = self.post("/v2/models/qos_admin/resume")
        self.assertEqual(resp.status, 200, resp)
        self.assertFalse(resp.json()["stopped"])
        self.assertEqual(self.ready("qos_admin").status, 200)
        self.assertEqual(self.client.infer("qos_admin", self.one).status,
                         200)
        kinds = [k for k, _, _ in self.stored_alerts("qos_admin")]
        self.assertEqual(kinds, ["stopped_by_admin", "resumed_by_admin"])

    def test_admin_routes_take_post_only(self):
        resp = self.client.get("/v2/models/qos_admin/stop")
        self.assertEqual(resp.status, 405)
        self.assertEqual(resp.header("Allow"), "POST")
        self.assertEqual(self.post("/v2/models/nope/stop").status, 404)
        self.assertEqual(self.post("/api/alerts").status, 405)

    # --- health -------------------------------------------------------

    def test_failing_canary_refuses_with_503(self):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            ready = self.ready("canary_bad")
            if ready.status == 503:
                break
            time.sleep(0.05)
        self.assertEqual(ready.status, 503, ready)
        self.assertTrue(ready.json()["reason"].startswith(
            "no healthy instance: canary failed: "), ready)
        resp = self.client.infer("canary_bad", RESHAPE_BODY)
        self.assertEqual(resp.status, 503, resp)
        self.assertIn("no healthy instance: canary failed", resp.json()
                      ["error"])
        self.assertIn("Reshape", resp.json()["error"])
        meta = self.client.get("/v2/models/canary_bad").json()
        self.assertEqual(meta["health"]["period_ms"], 100)
        self.assertEqual(meta["health"]["healthy_instances"], 0)

        # The instance leaving the rotation is an alert, once (it fails
        # every round but leaves once), with the canary's reason.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not self.alerts("canary_bad"):
            time.sleep(0.05)
        time.sleep(0.3)             # three more rounds, all failing
        alerts = self.alerts("canary_bad")
        self.assertEqual([a["kind"] for a in alerts],
                         ["instance_unhealthy"], alerts)
        self.assertTrue(alerts[0]["message"].startswith(
            "instance 0 out of rotation (0 healthy): canary failed: "),
            alerts[0])
        self.assertIn("Reshape", alerts[0]["message"])

    def test_healthy_model_shows_its_settings(self):
        meta = self.client.get("/v2/models/qos_errors").json()
        self.assertEqual(meta["health"], {"period_ms": 5000,
                                          "timeout_ms": 2000,
                                          "healthy_instances": 1})
        qos = meta["qos"]
        self.assertEqual(qos["window_s"], 60)
        self.assertEqual(qos["min_requests"], 5)
        self.assertEqual(qos["max_error_rate"], 0.5)
        self.assertEqual(qos["max_p99_ms"], 0)
        self.assertEqual(qos["cooldown_s"], 1)

    # --- config -------------------------------------------------------

    def test_bad_fields_refuse_the_model(self):
        cases = {"qos_bad_rate": "qos.max_error_rate: expected a number "
                                 "in 0..1",
                 "qos_bad_window": "qos.window_s: expected an integer",
                 "health_bad_period": "health.period_ms: expected an "
                                      "integer in 0.."}
        for model, message in cases.items():
            ready = self.ready(model)
            self.assertEqual(ready.status, 503, ready)
            self.assertIn(message, ready.json()["reason"])


if __name__ == "__main__":
    unittest.main()

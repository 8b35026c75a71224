"""
The control plane's records and settings over HTTP: request records
filtered by model, outcome, key and time range and paged (a known number
of requests made, counts checked exactly); the config centre (a change
of scheduling shows in the model metadata at once and survives a restart
on the same data folder, a bad value is 400 naming the field, a QoS
threshold set at run time trips the version at that threshold); the
audit trail (who changed what).

The repository is a temporary copy of the bundled MLP under three
names: alpha takes the config changes, beta the QoS change, gamma the
requests whose records are counted.  Auth runs with
two keys made by `bms keys` before the server starts: an admin key
("ops") for the control plane and a user key ("app") for inference.
"""

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import unittest

import bmstest

MLP = "fashion_mlp"
ITEM = bmstest.ITEM_SHAPE[MLP]
RECORD_WAIT_S = 10.0     # records are written by a thread, in batches


def make_repository():
    root = tempfile.mkdtemp(prefix="bms-e2e-admin-")
    for name in ("alpha", "beta", "gamma"):
        dst = os.path.join(root, name)
        os.makedirs(os.path.join(dst, "1"))
        shutil.copy(os.path.join(bmstest.MODELS, MLP, "1", "model.onnx"),
                    os.path.join(dst, "1", "model.onnx"))
        config = bmstest.model_config(MLP)
        config["name"] = name
        config.pop("scheduling", None)   # the defaults, not the bundled
        with open(os.path.join(dst, "config.json"), "w") as f:
            json.dump(config, f)
    return root


def make_key(data_dir, name, role):
    """A key made with `bms keys create`: (id, token)."""
    out = subprocess.run([bmstest.BMS_BIN, "keys", "create", "--name", name,
                          "--role", role, "--data-dir", data_dir],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         timeout=30, check=True).stdout.decode()
    key_id = re.search(r"^id\s+(\S+)$", out, re.M).group(1)
    token = re.search(r"^token\s+(\S+)$", out, re.M).group(1)
    return key_id, token


class AdminTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.images = bmstest.load_test_images()
        cls.repo_dir = make_repository()
        cls.data_dir = tempfile.mkdtemp(prefix="bms-e2e-admin-data-")
        cls.server = None
        try:
            cls.admin_id, cls.admin_token = make_key(cls.data_dir, "ops",
                                                     "admin")
            cls.user_id, cls.user_token = make_key(cls.data_dir, "app",
                                                   "user")
            cls.start_server()
        except BaseException:
            cls.cleanup()
            raise
        cls.one = bmstest.infer_body(cls.images[:1], ITEM)

    @classmethod
    def start_server(cls):
        # The last --data-dir wins: the same folder across restarts.
        cls.server = bmstest.Server(repository=cls.repo_dir,
                                    extra_args=["--data-dir", cls.data_dir])
        cls.server.start()
        cls.client = cls.server.client()

    @classmethod
    def stop_server(cls):
        cls.client.close()
        cls.server.stop()
        cls.server.cleanup()

    @classmethod
    def cleanup(cls):
        if cls.server is not None:
            cls.server.cleanup()
        shutil.rmtree(cls.repo_dir, ignore_errors=True)
        shutil.rmtree(cls.data_dir, ignore_errors=True)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        try:
            cls.server.stop()       # exits 0: no leak, no crash at close
        finally:
            cls.cleanup()

    # --- helpers -------------------------------------------------------

    def call(self, method, path, body=None, token=None):
        headers = {"Authorization": "Bearer %s"
                   % (token or self.admin_token)}
        return self.client.request(method, path, body, headers)

    def admin_get(self, path):
        resp = self.call("GET", path)
        self.assertEqual(resp.status, 200, resp)
        return resp.json()

    def infer(self, model, body):
        return self.call("POST", "/v2/models/%s/infer" % model, body,
                         self.user_token)

    def put_config(self, model, doc):
        body = doc if isinstance(doc, str) else json.dumps(doc)
        return self.call("PUT", "/api/models/%s/config" % model, body)

    def query(self, **args):
        path = "/api/requests?" + "&".join("%s=%s" % kv
                                           for kv in args.items())
        return self.admin_get(path)

    def wait_records(self, n, **args):
        """The query's records once there are n of them."""
        deadline = time.monotonic() + RECORD_WAIT_S
        while True:
            got = self.query(limit=1000, **args)["requests"]
            if len(got) >= n or time.monotonic() > deadline:
                return got
            time.sleep(0.05)

    def metadata_scheduling(self, model):
        return self.call("GET", "/v2/models/%s" % model,
                         token=self.user_token).json()["scheduling"]

    # --- request records -----------------------------------------------

    def test_requests_filtered_and_paged(self):
        bad = json.dumps({"inputs": [{"name": "image", "datatype": "FP32",
                                      "shape": [1, 28, 28], "data": [0]}]})
        before = self.query(model="gamma", limit=1000)["requests"]
        self.assertEqual(before, [])

        # 6 good then, after a mark in time, 4 bad: all to gamma.
        for _ in range(6):
            self.assertEqual(self.infer("gamma", self.one).status, 200)
        self.wait_records(6, model="gamma")
        time.sleep(0.02)
        mark_us = int(time.time() * 1e6)
        time.sleep(0.02)
        for _ in range(4):
            self.assertEqual(self.infer("gamma", bad).status, 400)
        got = self.wait_records(10, model="gamma")
        self.assertEqual(len(got), 10)

        ts = [r["ts_us"] for r in got]
        self.assertEqual(ts, sorted(ts, reverse=True), "newest first")
        self.assertTrue(all(r["model"] == "gamma" for r in got))
        self.assertTrue(all(r["key_id"] == self.user_id for r in got))
        self.assertEqual(len({r["id"] for r in got}), 10)

        q = self.query(model="gamma", outcome="client_error")
        self.assertEqual(len(q["requests"]), 4)
        self.assertTrue(all(r["http_status"] == 400 for r in q["requests"]))
        self.assertEqual(len(self.query(model="gamma", outcome="ok")
                             ["requests"]), 6)
        self.assertEqual(len(self.query(model="gamma", since=mark_us)
                             ["requests"]), 4)
        self.assertEqual(len(self.query(model="gamma", until=mark_us)
                             ["requests"]), 6)
        self.assertEqual(len(self.query(model="gamma", key=self.user_id)
                             ["requests"]), 10)
        self.assertEqual(self.query(model="gamma", key=self.admin_id)
                         ["requests"], [])

        # Pages of 4: 4, 4, 2, each starting where the last ended.
        seen = []
        offset = 0
        pages = []
        while offset is not None:
            page = self.query(model="gamma", limit=4, offset=offset)
            self.assertEqual(page["limit"], 4)
            self.assertEqual(page["offset"], offset)
            pages.append(len(page["requests"]))
            seen += [r["id"] for r in page["requests"]]
            offset = page["next_offset"]
        self.assertEqual(pages, [4, 4, 2])
        self.assertEqual(seen, [r["id"] for r in got])

    def test_requests_bad_filter_is_400_naming_it(self):
        for query, field in (("since=yesterday", "since: expected"),
                             ("until=-5", "until: expected"),
                             ("limit=0", "limit: expected"),
                             ("limit=1001", "limit: expected"),
                             ("offset=x", "offset: expected"),
                             ("outcome=fine", "outcome: expected"),
                             ("since=100&until=50", "until: expected")):
            resp = self.call("GET", "/api/requests?" + query)
            self.assertEqual(resp.status, 400, query)
            self.assertTrue(resp.json()["error"].startswith(field),
                            resp.json()["error"])

    def test_requests_need_an_admin_key(self):
        resp = self.call("GET", "/api/requests", token=self.user_token)
        self.assertEqual(resp.status, 403, resp)
        resp = self.client.request("GET", "/api/requests")
        self.assertEqual(resp.status, 401, resp)

    # --- config centre ---------------------------------------------------

    def test_config_shows_every_scheduling_field(self):
        # The config centre's scheduling is the metadata's, less what only
        # the running scheduler knows.
        config = self.admin_get("/api/models/alpha/config")["scheduling"]
        sched = self.metadata_scheduling("alpha")
        for runtime in ("stats", "threads_per_instance"):
            sched.pop(runtime)
        self.assertEqual(config, sched)
        self.assertIn("scale_up_wait_ms", config)
        self.assertIn("warmup", config)

    def test_config_change_shows_at_once_and_survives_restart(self):
        cls = type(self)
        sched = self.metadata_scheduling("alpha")
        self.assertEqual((sched["max_batch_size"], sched["instances"]),
                         (0, 1))
        resp = self.put_config("alpha", {"scheduling": {"max_batch_size": 4,
                                                        "instances": 2}})
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.json()["scheduling"]["max_batch_size"], 4)
        sched = self.metadata_scheduling("alpha")
        self.assertEqual((sched["max_batch_size"], sched["instances"]),
                         (4, 2))
        self.assertEqual(self.infer("alpha", self.one).status, 200)

        # A second change keeps the first one's fields.
        resp = self.put_config("alpha", {"scheduling":
                                         {"max_queue_delay_us": 700}})
        self.assertEqual(resp.status, 200, resp)
        sched = self.metadata_scheduling("alpha")
        self.assertEqual((sched["max_batch_size"], sched["instances"],
                          sched["max_queue_delay_us"]), (4, 2, 700))

        cls.stop_server()
        cls.start_server()
        sched = self.metadata_scheduling("alpha")
        self.assertEqual((sched["max_batch_size"], sched["instances"],
                          sched["max_queue_delay_us"]), (4, 2, 700))
        config = self.admin_get("/api/models/alpha/config")
        self.assertEqual(config["settings"]["scheduling"],
                         {"max_batch_size": 4, "instances": 2,
                          "max_queue_delay_us": 700})
        self.assertIn('msg="stored settings applied" model=alpha',
                      "\n".join(cls.server.log_lines))

        # null takes a field back to config.json's.
        resp = self.put_config("alpha", {"scheduling": None})
        self.assertEqual(resp.status, 200, resp)
        sched = self.metadata_scheduling("alpha")
        self.assertEqual((sched["max_batch_size"], sched["instances"]),
                         (0, 1))

    def test_saved_settings_survive_a_reload_without_a_manifest(self):
        # A load through the repository API (as poll mode does it) brings
        # no manifest: the saved settings are laid over config.json again.
        resp = self.put_config("beta", {"scheduling": {"max_batch_size": 8}})
        self.assertEqual(resp.status, 200, resp)
        resp = self.call("POST", "/v2/repository/models/beta/load", b"")
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(self.metadata_scheduling("beta")["max_batch_size"],
                         8)
        resp = self.put_config("beta", {"scheduling": None})
        self.assertEqual(resp.status, 200, resp)
        resp = self.call("POST", "/v2/repository/models/beta/load", b"")
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(self.metadata_scheduling("beta")["max_batch_size"],
                         0)

    def test_bad_config_value_is_400_naming_the_field(self):
        def fields():
            sched = self.metadata_scheduling("alpha")
            return (sched["max_batch_size"], sched["instances"])

        before = fields()
        for doc, field in (({"scheduling": {"max_batch_size": "big"}},
                            "scheduling.max_batch_size"),
                           ({"scheduling": {"max_batch_size": -1}},
                            "scheduling.max_batch_size"),
                           ({"qos": {"max_error_rate": 2}},
                            "qos.max_error_rate"),
                           ({"rate_limit": {"requests_per_s": "fast"}},
                            "rate_limit.requests_per_s"),
                           ("[1, 2]", "body: expected a JSON object")):
            resp = self.put_config("alpha", doc)
            self.assertEqual(resp.status, 400, doc)
            self.assertTrue(resp.json()["error"].startswith(field),
                            resp.json()["error"])
        self.assertEqual(fields(), before)
        resp = self.put_config("nosuch", {"scheduling": {}})
        self.assertEqual(resp.status, 404, resp)

    def test_config_rate_limit_applies_at_once(self):
        resp = self.put_config("alpha", {"rate_limit":
                                         {"requests_per_s": 0.01,
                                          "burst": 2}})
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.json()["rate_limit"],
                         {"requests_per_s": 0.01, "burst": 2})
        statuses = [self.infer("alpha", self.one).status for _ in range(3)]
        self.assertEqual(statuses, [200, 200, 429])
        resp = self.put_config("alpha", {"rate_limit": None})
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.json()["rate_limit"]["requests_per_s"], 0)
        self.assertEqual(self.infer("alpha", self.one).status, 200)

    def test_qos_change_trips_at_the_new_threshold(self):
        # Off by default: these requests leave the version serving.
        for _ in range(6):
            self.assertEqual(self.infer("beta", self.one).status, 200)
        self.assertEqual(self.call("GET", "/v2/models/beta/ready").status,
                         200)

        # Any latency is over 1 us: stopped once 5 requests completed.
        resp = self.put_config("beta", {"qos": {"max_p99_ms": 0.001,
                                                "min_requests": 5,
                                                "cooldown_s": 600}})
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.json()["qos"]["max_p99_ms"], 0.001)
        statuses = [self.infer("beta", self.one).status for _ in range(8)]
        self.assertEqual(statuses[:5], [200] * 5, statuses)
        self.assertEqual(statuses[-1], 503, statuses)
        ready = self.call("GET", "/v2/models/beta/ready")
        self.assertEqual(ready.status, 503, ready)
        resp = self.put_config("beta", {"qos": None})
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(self.infer("beta", self.one).status, 200)

    # --- audit -----------------------------------------------------------

    def test_audit_lists_who_changed_what(self):
        doc = {"health": {"period_ms": 4000}}
        self.assertEqual(self.put_config("alpha", doc).status, 200)
        self.assertEqual(self.call("POST", "/v2/models/alpha/stop",
                                   b"").status, 200)
        self.assertEqual(self.call("POST", "/v2/models/alpha/resume",
                                   b"").status, 200)
        records = self.admin_get("/api/audit?target=alpha&limit=3")["audit"]
        self.assertEqual([r["action"] for r in records],
                         ["model.resume", "model.stop", "config.put"])
        for r in records:
            self.assertEqual(r["target"], "alpha")
            self.assertEqual(r["actor"], "ops")
            self.assertEqual(r["key_id"], self.admin_id)
        self.assertEqual(json.loads(records[2]["detail"]), doc)
        ids = [r["id"] for r in records]
        self.assertEqual(ids, sorted(ids, reverse=True))

        page = self.admin_get("/api/audit?target=alpha&limit=1&offset=1")
        self.assertEqual([r["id"] for r in page["audit"]], [ids[1]])
        self.assertEqual(page["next_offset"], 2)
        resp = self.call("GET", "/api/audit?limit=many")
        self.assertEqual(resp.status, 400, resp)


if __name__ == "__main__":
    unittest.main()

"""
Weighted routing between versions over HTTP.  A temporary repository holds
model "mlp_routed" with versions 1 and 2 (copies of the bundled MLP) and a
version 3 that does not load, config.json asking for weights 90/10, and
"mlp_bad_route", whose weights name a version it lacks.

Routing is smooth weighted round-robin, so the counts are exact: 90/10
over 1,000 requests gives 900 and 100; after a change to 0/100 every
request goes to version 2; a version in the path always wins; the version
that failed to load, and one an admin stopped, are skipped; a version
QoS stopped is skipped until its cooldown ends, then a routed request is
its trial ("mlp_qos_routed"); bad routing bodies answer 400 naming the
field.  Every answer says in X-Model-Version
and model_version which version answered, and answers with the MLP's
reference label.
"""

import json
import os
import shutil
import tempfile
import threading
import time
import unittest

import bmstest

MLP = "fashion_mlp"
ITEM = bmstest.ITEM_SHAPE[MLP]
ROUTED = "mlp_routed"
BAD = "mlp_bad_route"
QOS_ROUTED = "mlp_qos_routed"
N_CLIENTS = 4


def make_model(root, name, routing, broken=(), qos=None):
    src = os.path.join(bmstest.MODELS, MLP, "1", "model.onnx")
    dst = os.path.join(root, name)
    for v in (1, 2, 3):
        os.makedirs(os.path.join(dst, str(v)))
        path = os.path.join(dst, str(v), "model.onnx")
        if v in broken:
            with open(path, "wb") as f:
                f.write(b"not an onnx model")
        else:
            shutil.copy(src, path)
    config = bmstest.model_config(MLP)
    config["name"] = name
    config["routing"] = routing
    if qos is not None:
        config["qos"] = qos
    with open(os.path.join(dst, "config.json"), "w") as f:
        json.dump(config, f)


def make_repository():
    root = tempfile.mkdtemp(prefix="bms-e2e-routing-")
    make_model(root, ROUTED, {"weights": {"1": 90, "2": 10}}, broken=(3,))
    make_model(root, BAD, {"weights": {"1": 50, "5": 50}})
    make_model(root, QOS_ROUTED, {"weights": {"1": 50, "2": 50}},
               broken=(3,), qos={"max_error_rate": 0.5, "min_requests": 5,
                                 "cooldown_s": 1})
    return root


class RoutingTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.images = bmstest.load_test_images()[:16]
        cls.reference = bmstest.model_reference(MLP)[:16]
        cls.bodies = [bmstest.infer_body(cls.images[i:i + 1], ITEM)
                      for i in range(16)]
        cls.repo_dir = make_repository()
        cls.server = bmstest.Server(repository=cls.repo_dir)
        try:
            cls.server.start()
        except BaseException:
            cls.server.cleanup()
            shutil.rmtree(cls.repo_dir, ignore_errors=True)
            raise
        cls.client = cls.server.client()
        cls.initial = cls.client.get("/v2/models/%s/routing" % ROUTED)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.server.cleanup()
        shutil.rmtree(cls.repo_dir, ignore_errors=True)

    def put_routing(self, weights, status=200):
        resp = self.client.request("PUT", "/v2/models/%s/routing" % ROUTED,
                                   json.dumps({"weights": weights}))
        self.assertEqual(resp.status, status, resp)
        return resp

    def infer(self, client, i, version=None):
        """One request of image i; returns the version that answered."""
        resp = client.infer(ROUTED, self.bodies[i % 16], version)
        self.assertEqual(resp.status, 200, resp)
        doc = resp.json()
        self.assertEqual(doc["model_version"], resp.header("X-Model-Version"))
        self.assertEqual(doc["outputs"][0]["data"],
                         [self.reference[i % 16]])
        return doc["model_version"]

    def count_versions(self, n):
        """n requests without a version over N_CLIENTS connections at
        once; returns {version: count}."""
        counts = [dict() for _ in range(N_CLIENTS)]
        errors = []

        def run(k):
            client = self.server.client()
            try:
                for i in range(k, n, N_CLIENTS):
                    v = self.infer(client, i)
                    counts[k][v] = counts[k].get(v, 0) + 1
            except Exception as e:          # noqa: BLE001 (reported below)
                errors.append(e)
            finally:
                client.close()

        threads = [threading.Thread(target=run, args=(k,))
                   for k in range(N_CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        if errors:
            raise errors[0]
        total = {}
        for c in counts:
            for v, m in c.items():
                total[v] = total.get(v, 0) + m
        return total

    def test_config_weights_apply_from_start(self):
        self.assertEqual(self.initial.status, 200, self.initial)
        self.assertEqual(self.initial.json(),
                         {"weights": {"1": 90, "2": 10},
                          "routed": {"1": 0, "2": 0}})

    def test_weights_90_10_give_900_and_100(self):
        self.put_routing({"1": 90, "2": 10})
        self.assertEqual(self.count_versions(1000), {"1": 900, "2": 100})
        routing = self.client.get("/v2/models/%s/routing" % ROUTED).json()
        self.assertEqual(routing, {"weights": {"1": 90, "2": 10},
                                   "routed": {"1": 900, "2": 100}})

    def test_change_at_run_time_to_0_100(self):
        self.put_routing({"1": 90, "2": 10})
        self.assertEqual(self.count_versions(20), {"1": 18, "2": 2})
        resp = self.put_routing({"1": 0, "2": 100})
        self.assertEqual(resp.json()["weights"], {"1": 0, "2": 100})
        self.assertEqual(self.count_versions(200), {"2": 200})

    def test_explicit_version_wins(self):
        self.put_routing({"1": 0, "2": 100})
        for i in range(5):
            self.assertEqual(self.infer(self.client, i, version=1), "1")
        self.put_routing({"1": 100})
        self.assertEqual(self.infer(self.client, 0, version=2), "2")

    def test_failed_version_is_skipped(self):
        self.put_routing({"1": 50, "3": 50})
        self.assertEqual(self.count_versions(100), {"1": 100})
        self.put_routing({"3": 100})
        resp = self.client.infer(ROUTED, self.bodies[0])
        self.assertEqual(resp.status, 503, resp)
        self.assertIn("no version with a routing weight is ready",
                      resp.json()["error"])

    def test_stopped_version_is_skipped(self):
        self.put_routing({"1": 50, "2": 50})
        path = "/v2/models/%s/versions/2/" % ROUTED
        resp = self.client.post(path + "stop", "")
        self.assertEqual(resp.status, 200, resp)
        try:
            self.assertEqual(self.count_versions(20), {"1": 20})
        finally:
            resp = self.client.post(path + "resume", "")
            self.assertEqual(resp.status, 200, resp)
        self.assertEqual(self.count_versions(20), {"1": 10, "2": 10})

    def test_qos_stopped_version_gets_its_trial_through_routing(self):
        # Five requests named for version 2 miss a 1 ms deadline (256
        # images take longer to parse): 504s, an error rate of 1.
        late = json.loads(bmstest.infer_body(
            bmstest.load_test_images()[:256], ITEM))
        late["parameters"] = {"timeout_ms": 1}
        late = json.dumps(late).encode("ascii")
        for _ in range(5):
            resp = self.client.infer(QOS_ROUTED, late, 2)
            self.assertEqual(resp.status, 504, resp)
        ready = self.client.get("/v2/models/%s/versions/2/ready"
                                % QOS_ROUTED)
        self.assertEqual(ready.status, 503, ready)
        # During the cooldown routing leaves version 2 out.
        versions = []
        for i in range(6):
            resp = self.client.infer(QOS_ROUTED, self.bodies[i])
            self.assertEqual(resp.status, 200, resp)
            versions.append(resp.json()["model_version"])
        self.assertEqual(versions, ["1"] * 6)
        # After it, a routed request is the trial: it runs, is good, and
        # version 2 serves again, reached by routing alone.
        time.sleep(1.2)
        versions = []
        for i in range(6):
            resp = self.client.infer(QOS_ROUTED, self.bodies[i])
            self.assertEqual(resp.status, 200, resp)
            self.assertEqual(resp.json()["outputs"][0]["data"],
                             [self.reference[i]])
            versions.append(resp.json()["model_version"])
        self.assertIn("2", versions)
        ready = self.client.get("/v2/models/%s/versions/2/ready"
                                % QOS_ROUTED)
        self.assertEqual(ready.status, 200, ready)

    def test_bad_bodies_answer_400_naming_the_field(self):
        self.put_routing({"1": 70, "2": 30})
        cases = [
            ({"weights": {"7": 1}}, "weights.7: model 'mlp_routed' has no "
                                    "version 7"),
            ({"weights": {"1": -1, "2": 5}}, "weights.1: expected an integer"),
            ({"weights": {"1": 0, "2": 0}}, "weights: every weight is 0"),
            ({"weights": {"x": 1}}, "weights: 'x' is not a version"),
            ({"weights": [1, 2]}, "weights: expected an object"),
            ({"weights": {"1": "90"}}, "weights.1: expected an integer"),
            ({}, "weights: expected an object"),
        ]
        for body, message in cases:
            resp = self.client.request(
                "PUT", "/v2/models/%s/routing" % ROUTED, json.dumps(body))
            self.assertEqual(resp.status, 400, (body, resp))
            self.assertIn(message, resp.json()["error"], body)
        resp = self.client.request("PUT", "/v2/models/%s/routing" % ROUTED,
                                   "{not json")
        self.assertEqual(resp.status, 400, resp)
        self.assertIn("body:", resp.json()["error"])
        # Nothing refused changed the weights.
        routing = self.client.get("/v2/models/%s/routing" % ROUTED).json()
        self.assertEqual(routing["weights"], {"1": 70, "2": 30})

    def test_routing_route_methods_and_unknown_model(self):
        resp = self.client.post("/v2/models/%s/routing" % ROUTED, "{}")
        self.assertEqual(resp.status, 405, resp)
        self.assertEqual(resp.header("Allow"), "GET, PUT")
        resp = self.client.request("PUT", "/v2/models/nope/routing",
                                   json.dumps({"weights": {"1": 1}}))
        self.assertEqual(resp.status, 404, resp)

    def test_metadata_shows_routing(self):
        self.put_routing({"1": 3, "2": 1})
        meta = self.client.get("/v2/models/%s" % ROUTED).json()
        self.assertEqual(meta["routing"]["weights"], {"1": 3, "2": 1})
        meta = self.client.get("/v2/models/%s/versions/2" % ROUTED).json()
        self.assertEqual(meta["routing"]["weights"], {"1": 3, "2": 1})

    def test_missing_version_in_config_refuses_model(self):
        resp = self.client.get("/v2/models/%s/ready" % BAD)
        self.assertEqual(resp.status, 503, resp)
        self.assertIn("routing.weights.5", resp.json()["reason"])


if __name__ == "__main__":
    unittest.main()

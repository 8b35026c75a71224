"""
Model control over HTTP: the repository index, unload and load, loads
that fail (the old version keeps serving), a new version folder picked up
by a load, the version policy, poll mode (a new, a changed and a removed
model folder) and reloads under load.

Every model is a copy of the bundled MLP, so every answer is checked
against the MLP's reference labels (reference.txt, from PyTorch).
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
POLL_WAIT_S = 15.0       # the longest wait for a poll to act (poll 1 s)
LOAD_CLIENTS = 4
RELOADS = 5


def write_config(dst, name, **extra):
    """config.json of the MLP under a new name, written in one rename."""
    config = bmstest.model_config(MLP)
    config["name"] = name
    config.update(extra)
    tmp = os.path.join(dst, ".config.json.tmp")
    with open(tmp, "w") as f:
        json.dump(config, f)
    os.replace(tmp, os.path.join(dst, "config.json"))


def add_version(dst, version):
    """A version folder holding the MLP, moved in whole."""
    src = os.path.join(bmstest.MODELS, MLP, "1", "model.onnx")
    tmp = os.path.join(dst, ".v%d.tmp" % version)
    os.makedirs(tmp)
    shutil.copy(src, os.path.join(tmp, "model.onnx"))
    os.rename(tmp, os.path.join(dst, str(version)))


def make_model(root, name, versions=(1,), **extra):
    """A model folder built beside root and moved in whole."""
    build = tempfile.mkdtemp(prefix=".build-", dir=root)
    for v in versions:
        add_version(build, v)
    write_config(build, name, **extra)
    os.rename(build, os.path.join(root, name))


def _bodies(images):
    return [bmstest.infer_body(images[i:i + 1], ITEM) for i in range(8)]


class Fixture:
    """Images, their reference labels and one request body each."""

    images = bmstest.load_test_images()[:8]
    reference = bmstest.model_reference(MLP)[:8]
    bodies = _bodies(images)


class ManagerTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="bms-e2e-manager-")
        make_model(cls.root, "mlp_a")
        make_model(cls.root, "mlp_b")
        make_model(cls.root, "mlp_c")
        make_model(cls.root, "mlp_load")
        make_model(cls.root, "mlp_pol", versions=(1, 2, 3),
                   version_policy={"latest": 1})
        cls.server = bmstest.Server(repository=cls.root)
        try:
            cls.server.start()
        except BaseException:
            cls.server.cleanup()
            shutil.rmtree(cls.root, ignore_errors=True)
            raise
        cls.client = cls.server.client()

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.server.cleanup()
        shutil.rmtree(cls.root, ignore_errors=True)

    def check_infer(self, client, model, i, version=None, status=200):
        resp = client.infer(model, Fixture.bodies[i % 8], version)
        self.assertEqual(resp.status, status, resp)
        if status == 200:
            self.assertEqual(resp.json()["outputs"][0]["data"],
                             [Fixture.reference[i % 8]])
        return resp

    def control(self, model, action, version=None, body=None):
        path = "/v2/repository/models/%s" % model
        if version is not None:
            path += "/versions/%d" % version
        return self.client.request("POST", path + "/" + action,
                                   body if body is not None else b"")

    def index(self):
        resp = self.client.get("/v2/repository/index")
        self.assertEqual(resp.status, 200, resp)
        return {(e["name"], e["version"]): e for e in resp.json()}

    def test_index_lists_every_folder_and_version(self):
        rows = self.index()
        self.assertEqual(rows[("mlp_a", "1")]["state"], "READY")
        self.assertEqual(rows[("mlp_a", "1")]["reason"], "")
        for v in ("1", "2"):
            self.assertEqual(rows[("mlp_pol", v)]["state"], "UNAVAILABLE")
            self.assertNotEqual(rows[("mlp_pol", v)]["reason"], "")
        self.assertEqual(rows[("mlp_pol", "3")]["state"], "READY")
        resp = self.client.request("POST", "/v2/repository/index", b"{}")
        self.assertEqual(resp.status, 200, resp)

    def test_unload_then_404_then_load_then_200(self):
        self.check_infer(self.client, "mlp_b", 0)
        resp = self.control("mlp_b", "unload")
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.json(), {})
        self.check_infer(self.client, "mlp_b", 1, status=404)
        self.assertEqual(self.client.get("/v2/models/mlp_b").status, 404)
        row = self.index()[("mlp_b", "1")]
        self.assertEqual(row["state"], "UNAVAILABLE")
        self.assertEqual(row["reason"], "unloaded")
        resp = self.control("mlp_b", "load")
        self.assertEqual(resp.status, 200, resp)
        self.check_infer(self.client, "mlp_b", 2)
        self.assertEqual(self.index()[("mlp_b", "1")]["state"], "READY")

    def test_unknown_folder_is_404(self):
        self.assertEqual(self.control("no_such_model", "load").status, 404)
        self.assertEqual(self.control("no_such_model", "unload").status,
                         404)
        self.assertEqual(self.control("mlp_a", "load", 9).status, 404)

    def test_broken_config_is_400_and_the_old_version_serves(self):
        body = json.dumps({"parameters": {"config": "{\"name\": "}})
        resp = self.control("mlp_a", "load", body=body.encode())
        self.assertEqual(resp.status, 400, resp)
        self.assertIn("config.json", resp.json()["error"])
        self.check_infer(self.client, "mlp_a", 3)
        config = bmstest.model_config(MLP)
        config["name"] = "mlp_a"
        config["scheduling"] = {"max_batch_size": -1}
        body = json.dumps({"parameters": {"config": json.dumps(config)}})
        resp = self.control("mlp_a", "load", body=body.encode())
        self.assertEqual(resp.status, 400, resp)
        self.assertIn("scheduling.max_batch_size", resp.json()["error"])
        self.check_infer(self.client, "mlp_a", 4)
        row = self.index()[("mlp_a", "1")]
        self.assertEqual(row["state"], "READY")
        resp = self.control("mlp_a", "load", body=b"[1, 2]")
        self.assertEqual(resp.status, 400, resp)

    def test_new_version_folder_serves_after_a_load(self):
        self.assertEqual(self.check_infer(self.client, "mlp_c", 0)
                         .header("X-Model-Version"), "1")
        add_version(os.path.join(self.root, "mlp_c"), 2)
        self.check_infer(self.client, "mlp_c", 1, version=2, status=404)
        resp = self.control("mlp_c", "load")
        self.assertEqual(resp.status, 200, resp)
        resp = self.check_infer(self.client, "mlp_c", 2)
        self.assertEqual(resp.header("X-Model-Version"), "2")
        self.check_infer(self.client, "mlp_c", 3, version=1)
        resp = self.control("mlp_c", "unload", 2)
        self.assertEqual(resp.status, 200, resp)
        self.check_infer(self.client, "mlp_c", 4, version=2, status=404)
        resp = self.check_infer(self.client, "mlp_c", 5)
        self.assertEqual(resp.header("X-Model-Version"), "1")

    def test_version_policy_latest_1_serves_only_the_highest(self):
        resp = self.check_infer(self.client, "mlp_pol", 0)
        self.assertEqual(resp.header("X-Model-Version"), "3")
        self.check_infer(self.client, "mlp_pol", 1, version=1, status=404)
        self.check_infer(self.client, "mlp_pol", 2, version=2, status=404)
        self.check_infer(self.client, "mlp_pol", 3, version=3)

    def test_reload_under_load_drops_no_request(self):
        stop = threading.Event()
        results = []
        lock = threading.Lock()

        def run(k):
            client = self.server.client()
            deadline = time.monotonic() + 20.0
            i = k
            try:
                while not stop.is_set() and time.monotonic() < deadline:
                    resp = client.infer("mlp_load", Fixture.bodies[i % 8])
                    data = None
                    if resp.status == 200:
                        data = resp.json()["outputs"][0]["data"]
                    with lock:
                        results.append((resp.status, data,
                                        [Fixture.reference[i % 8]]))
                    i += LOAD_CLIENTS
            finally:
                client.close()

        threads = [threading.Thread(target=run, args=(k,))
                   for k in range(LOAD_CLIENTS)]
        for t in threads:
            t.start()
        try:
            for _ in range(RELOADS):
                time.sleep(0.3)
                resp = self.control("mlp_load", "load")
                self.assertEqual(resp.status, 200, resp)
            time.sleep(0.3)
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        self.assertGreater(len(results), RELOADS * LOAD_CLIENTS)
        for status, data, want in results:
            self.assertEqual(status, 200)
            self.assertEqual(data, want)


class PollTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="bms-e2e-poll-")
        make_model(cls.root, "mlp_kept")
        make_model(cls.root, "mlp_changed", versions=(1, 2),
                   version_policy={"specific": [1]})
        make_model(cls.root, "mlp_removed")
        cls.server = bmstest.Server(repository=cls.root,
                                    extra_args=["--poll-s", "1"])
        try:
            cls.server.start()
        except BaseException:
            cls.server.cleanup()
            shutil.rmtree(cls.root, ignore_errors=True)
            raise
        cls.client = cls.server.client()

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.server.cleanup()
        shutil.rmtree(cls.root, ignore_errors=True)

    def wait_status(self, path, status):
        deadline = time.monotonic() + POLL_WAIT_S
        while True:
            resp = self.client.get(path)
            if resp.status == status or time.monotonic() > deadline:
                return resp
            time.sleep(0.2)

    def test_poll_picks_up_new_changed_and_removed_models(self):
        self.assertEqual(self.client.get("/v2/models/mlp_new").status, 404)
        make_model(self.root, "mlp_new")
        resp = self.wait_status("/v2/models/mlp_new/ready", 200)
        self.assertEqual(resp.status, 200, resp)
        resp = self.client.infer("mlp_new", Fixture.bodies[0])
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.json()["outputs"][0]["data"],
                         [Fixture.reference[0]])

        path = "/v2/models/mlp_changed/versions/2/ready"
        self.assertEqual(self.client.get(path).status, 404)
        write_config(os.path.join(self.root, "mlp_changed"), "mlp_changed",
                     version_policy={"specific": [2]})
        resp = self.wait_status(path, 200)
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(self.client.get(
            "/v2/models/mlp_changed/versions/1/ready").status, 404)

        shutil.rmtree(os.path.join(self.root, "mlp_removed"))
        resp = self.wait_status("/v2/models/mlp_removed", 404)
        self.assertEqual(resp.status, 404, resp)
        self.assertEqual(self.client.get("/v2/models/mlp_kept/ready").status,
                         200)
        log = "\n".join(self.server.log_lines)
        self.assertIn('msg="model found" model=mlp_new', log)
        self.assertIn('msg="model changed" model=mlp_changed', log)
        self.assertIn('msg="model removed" model=mlp_removed', log)


if __name__ == "__main__":
    unittest.main()

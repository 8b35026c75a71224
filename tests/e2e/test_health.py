"""
Health, server and model metadata, version and ready routes over the
bundled models; then repositories with broken models in them: the good
models are still served, the broken ones are reported not ready with a
reason, and a model folder without config.json is served from its graph.
"""

import json
import os
import shutil
import tempfile
import unittest

import bmstest

DTYPES = {"float": "FP32", "double": "FP64", "int": "INT64"}


def expected_metadata(name, versions=("1",), version="1", config=None):
    """What docs/api.md says GET /v2/models/<name> shows for a manifest."""
    cfg = config or bmstest.model_config(name)
    inputs = []
    for i in cfg["inputs"]:
        item = {"name": i["name"], "datatype": DTYPES[i["type"]],
                "shape": [-1] + list(i["size"])}
        if i.get("order"):
            item["order"] = i["order"]
        inputs.append(item)
    outputs = []
    for o in cfg["outputs"]:
        item = {"name": o["name"]}
        if o.get("classes"):
            item.update(datatype="INT64", shape=[-1], classes=o["classes"])
        outputs.append(item)
    return {"name": name, "versions": list(versions), "platform": "onnx",
            "version": version, "description": cfg["description"],
            "license": cfg["license"], "manifest_version": cfg["version"],
            "inputs": inputs, "outputs": outputs,
            "dependencies": cfg["dependencies"]}


class _HealthCase(unittest.TestCase):
    REPOSITORY = None

    @classmethod
    def setUpClass(cls):
        if cls.REPOSITORY is None:
            cls.repo_dir = None
        else:
            cls.repo_dir = tempfile.mkdtemp(prefix="bms-e2e-repo-")
            cls.REPOSITORY(cls.repo_dir)
        cls.server = bmstest.Server(repository=cls.repo_dir)
        try:
            cls.server.start()
        except BaseException:
            cls.server.cleanup()
            raise
        cls.client = cls.server.client()

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.server.cleanup()
        if cls.repo_dir:
            shutil.rmtree(cls.repo_dir, ignore_errors=True)

    def get(self, path, status):
        resp = self.client.get(path)
        self.assertEqual(resp.status, status, "GET %s -> %r" % (path, resp))
        self.assertTrue((resp.header("Content-Type") or "").startswith(
            "application/json"), path)
        self.assertTrue(resp.request_id, "GET %s: no X-Request-Id" % path)
        return resp.json()

    def assert_metadata(self, got, want):
        for key in want:
            self.assertEqual(got.get(key), want[key], "metadata %s" % key)

    def raw_logits(self, model, images, version=None):
        body = bmstest.infer_body(images, bmstest.ITEM_SHAPE["fashion_mlp"],
                                  outputs=[{"name": "label", "parameters":
                                            {"raw": True}}])
        resp = self.client.infer(model, body, version)
        self.assertEqual(resp.status, 200, resp)
        return resp.json()["outputs"][0]["data"]

    def tearDown(self):
        self.assertTrue(self.server.alive(), "the server died:\n%s"
                        % self.server.log())


class BundledModelsTest(_HealthCase):

    def test_live(self):
        self.assertEqual(self.get("/v2/health/live", 200), {"live": True})

    def test_ready(self):
        self.assertEqual(self.get("/v2/health/ready", 200), {"ready": True})

    def test_server_metadata(self):
        doc = self.get("/v2", 200)
        self.assertEqual(doc["name"], "bms")
        self.assertIsInstance(doc["version"], str)
        self.assertTrue(doc["version"])
        self.assertIn("classification", doc["extensions"])

    def test_mlp_metadata(self):
        doc = self.get("/v2/models/fashion_mlp", 200)
        want = expected_metadata("fashion_mlp")
        self.assert_metadata(doc, want)
        self.assertEqual(doc["inputs"], [{"name": "image", "datatype": "FP32",
                                          "shape": [-1, 28, 28],
                                          "order": "hwc"}])
        self.assertEqual(len(doc["outputs"][0]["classes"]), 10)
        self.assertEqual(doc["outputs"][0]["classes"][9], "Ankle boot")

    def test_cnn_metadata(self):
        doc = self.get("/v2/models/fashion_cnn", 200)
        self.assert_metadata(doc, expected_metadata("fashion_cnn"))
        self.assertEqual(doc["inputs"][0]["shape"], [-1, 1, 28, 28])
        self.assertEqual(doc["inputs"][0]["order"], "chw")

    def test_dependencies_shown(self):
        for name in ("fashion_mlp", "fashion_cnn"):
            deps = self.get("/v2/models/%s" % name, 200)["dependencies"]
            self.assertEqual(deps, bmstest.model_config(name)
                             ["dependencies"])
            self.assertTrue(deps and deps[0]["library"])
            self.assertEqual(set(deps[0]), {"library", "package", "script"})

    def test_version_route_metadata(self):
        for name in ("fashion_mlp", "fashion_cnn"):
            plain = self.get("/v2/models/%s" % name, 200)
            versioned = self.get("/v2/models/%s/versions/1" % name, 200)
            self.assertEqual(versioned, plain)
            self.get("/v2/models/%s/versions/2" % name, 404)

    def test_ready_routes(self):
        for name in ("fashion_mlp", "fashion_cnn"):
            want = {"name": name, "version": "1", "ready": True}
            self.assertEqual(self.get("/v2/models/%s/ready" % name, 200),
                             want)
            self.assertEqual(self.get("/v2/models/%s/versions/1/ready"
                                      % name, 200), want)
            self.get("/v2/models/%s/versions/3/ready" % name, 404)
        self.get("/v2/models/fashion_xyz/ready", 404)

    def test_versioned_infer_equals_plain(self):
        images = bmstest.load_test_images()[:3]
        self.assertEqual(self.raw_logits("fashion_mlp", images, 1),
                         self.raw_logits("fashion_mlp", images))


def make_broken_repository(root):
    """A good model, broken ones and a model without config.json."""
    src = os.path.join(bmstest.MODELS, "fashion_mlp")
    onnx = os.path.join(src, "1", "model.onnx")
    config = bmstest.model_config("fashion_mlp")

    def model(name, versions, cfg=None, files=None):
        folder = os.path.join(root, name)
        os.makedirs(folder)
        if cfg is not None:
            cfg = dict(cfg, name=name)
            with open(os.path.join(folder, "config.json"), "w") as f:
                json.dump(cfg, f, indent=2)
        for v, content in versions.items():
            os.makedirs(os.path.join(folder, str(v)))
            dst = os.path.join(folder, str(v), "model.onnx")
            if content is None:
                shutil.copyfile(onnx, dst)
            else:
                with open(dst, "wb") as f:
                    f.write(content)

    garbage = b"this is not an ONNX model\n" * 64
    mismatch = json.loads(json.dumps(config))
    mismatch["inputs"][0]["name"] = "pixels"
    model("fashion_mlp", {1: None}, config)
    model("garbage_model", {1: garbage}, config)
    model("mismatch_model", {1: None}, mismatch)
    model("graph_only", {1: None})
    model("two_versions", {1: None, 3: None}, config)
    model("half_broken", {1: None, 2: garbage}, config)


class BrokenRepositoryTest(_HealthCase):
    REPOSITORY = staticmethod(make_broken_repository)

    def test_ready_while_one_model_is(self):
        self.assertEqual(self.get("/v2/health/ready", 200), {"ready": True})
        self.assertEqual(self.get("/v2/health/live", 200), {"live": True})

    def test_good_model_still_served(self):
        images = bmstest.load_test_images()[:4]
        body = bmstest.infer_body(images, [28, 28])
        resp = self.client.infer("fashion_mlp", body)
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.json()["outputs"][0]["data"],
                         bmstest.model_reference("fashion_mlp")[:4])
        self.assertEqual(self.get("/v2/models/fashion_mlp/ready", 200)
                         ["ready"], True)

    def assert_not_ready(self, path, *any_of):
        resp = self.client.get(path)
        self.assertEqual(resp.status, 503, "GET %s -> %r" % (path, resp))
        doc = resp.json()
        self.assertIs(doc.get("ready"), False, doc)
        reason = doc.get("reason")
        self.assertIsInstance(reason, str, doc)
        self.assertTrue(reason.strip(), doc)
        self.assertTrue(any(w.lower() in reason.lower() for w in any_of),
                        "reason %r names none of %s" % (reason, any_of))
        return reason

    def test_garbage_onnx_not_ready_with_reason(self):
        words = ("onnx", "protobuf", "parse", "decode", "invalid", "graph")
        reason = self.assert_not_ready("/v2/models/garbage_model/ready",
                                       *words)
        print("\ngarbage reason: %s" % reason)
        self.assert_not_ready("/v2/models/garbage_model/versions/1/ready",
                              *words)

    def test_mismatched_manifest_not_ready_with_reason(self):
        reason = self.assert_not_ready("/v2/models/mismatch_model/ready",
                                       "pixels", "inputs[0]")
        print("\nmismatch reason: %s" % reason)

    def test_broken_model_infer_is_503(self):
        body = bmstest.infer_body(bmstest.load_test_images()[:1], [28, 28])
        for name in ("garbage_model", "mismatch_model"):
            resp = self.client.infer(name, body)
            self.assertEqual(resp.status, 503, "%s: %r" % (name, resp))
            self.assertTrue(resp.json().get("error"), resp)
        resp = self.client.infer("half_broken", body, 2)
        self.assertEqual(resp.status, 503, resp)

    def test_model_without_config_served_from_graph(self):
        doc = self.get("/v2/models/graph_only", 200)
        self.assertEqual(doc["name"], "graph_only")
        self.assertEqual(doc["versions"], ["1"])
        self.assertEqual([(i["name"], i["datatype"], i["shape"])
                          for i in doc["inputs"]],
                         [("image", "FP32", [-1, 28, 28])])
        self.assertEqual([(o["name"], o["datatype"], o["shape"])
                          for o in doc["outputs"]],
                         [("label", "FP32", [-1, 10])])
        self.assertNotIn("classes", doc["outputs"][0])
        images = bmstest.load_test_images()[10:13]
        body = bmstest.infer_body(images, [28, 28])
        resp = self.client.infer("graph_only", body)
        self.assertEqual(resp.status, 200, resp)
        out = resp.json()["outputs"][0]
        self.assertEqual((out["name"], out["datatype"], out["shape"]),
                         ("label", "FP32", [3, 10]))
        self.assertEqual(out["data"], self.raw_logits("fashion_mlp", images))

    def test_highest_version_answers_by_default(self):
        doc = self.get("/v2/models/two_versions", 200)
        self.assertEqual(doc["versions"], ["1", "3"])
        self.assertEqual(doc["version"], "3")
        self.assertEqual(self.get("/v2/models/two_versions/versions/1", 200)
                         ["version"], "1")
        body = bmstest.infer_body(bmstest.load_test_images()[:1], [28, 28])
        for version, want in ((None, "3"), (1, "1"), (3, "3")):
            resp = self.client.infer("two_versions", body, version)
            self.assertEqual(resp.status, 200, resp)
            self.assertEqual(resp.json()["model_version"], want)
        self.assertEqual(self.client.infer("two_versions", body, 2).status,
                         404)

    def test_failed_version_beside_a_good_one(self):
        doc = self.get("/v2/models/half_broken", 200)
        self.assertEqual(doc["versions"], ["1"])
        self.assertEqual(self.get("/v2/models/half_broken/ready", 200),
                         {"name": "half_broken", "version": "1",
                          "ready": True})
        self.assert_not_ready("/v2/models/half_broken/versions/2/ready",
                              "onnx", "protobuf", "parse", "decode",
                              "invalid", "graph")
        body = bmstest.infer_body(bmstest.load_test_images()[:1], [28, 28])
        resp = self.client.infer("half_broken", body)
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.json()["model_version"], "1")


def make_all_broken_repository(root):
    folder = os.path.join(root, "garbage_model", "1")
    os.makedirs(folder)
    with open(os.path.join(folder, "model.onnx"), "wb") as f:
        f.write(b"\x08\x07garbage" * 100)


class NothingReadyTest(_HealthCase):
    REPOSITORY = staticmethod(make_all_broken_repository)

    def test_not_ready_but_live(self):
        self.assertEqual(self.get("/v2/health/live", 200), {"live": True})
        self.assertEqual(self.get("/v2/health/ready", 503), {"ready": False})
        self.get("/v2/models/garbage_model/ready", 503)


if __name__ == "__main__":
    unittest.main()

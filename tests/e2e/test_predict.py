"""
`bms predict`: offline answers equal the server's for the same body, on a
model folder and on a bare .onnx file; its errors are one `bms:` line on
stderr and a non-zero exit.  `bms requests` prints what the server stored.
"""

import datetime
import json
import os
import shutil
import subprocess
import tempfile
import unittest

import bmstest

MLP_DIR = os.path.join(bmstest.MODELS, "fashion_mlp")
MLP_ONNX = os.path.join(MLP_DIR, "1", "model.onnx")


def predict(*args, stdin=None):
    return subprocess.run([bmstest.BMS_BIN, "predict"] + list(args),
                          input=stdin, capture_output=True, timeout=60)


class PredictTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="bms-e2e-predict-")
        images = bmstest.load_test_images()
        top3 = [{"name": "label", "parameters": {"classification": 3}}]
        raw = [{"name": "label", "parameters": {"raw": True}}]
        cls.bodies = {
            "single": bmstest.infer_body(images[:1], [28, 28], req_id="p1"),
            "nested3": bmstest.infer_body(images[1:4], [28, 28],
                                          nested=True),
            "top3": bmstest.infer_body(images[4:6], [28, 28], outputs=top3),
            "raw": bmstest.infer_body(images[6:8], [28, 28], outputs=raw),
            "batch64": bmstest.infer_body(images[100:164], [28, 28],
                                          nested=True, req_id="b64"),
        }
        cls.server = bmstest.Server()
        try:
            cls.server.start()
            client = cls.server.client()
            cls.served = {}
            for name, body in cls.bodies.items():
                resp = client.infer("fashion_mlp", body)
                cls.served[name] = resp
            cls.raw_served = {}
            for name in ("single", "nested3"):
                doc = json.loads(cls.bodies[name])
                doc["outputs"] = raw
                resp = client.infer("fashion_mlp", json.dumps(doc))
                cls.raw_served[name] = resp
            client.close()
            cls.server.stop()
        finally:
            cls.server.cleanup()

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def body_file(self, name, content=None):
        path = os.path.join(self.tmp, name + ".json")
        with open(path, "wb") as f:
            f.write(self.bodies[name] if content is None else content)
        return path

    def run_ok(self, *args, stdin=None):
        got = predict(*args, stdin=stdin)
        self.assertEqual(got.returncode, 0, got.stderr.decode(
            "utf-8", "replace")[-2000:])
        return json.loads(got.stdout)

    def test_folder_answers_equal_server(self):
        for name in self.bodies:
            with self.subTest(body=name):
                served = self.served[name]
                self.assertEqual(served.status, 200, served)
                doc = self.run_ok(MLP_DIR, "--input", self.body_file(name))
                self.assertEqual(doc, served.json())

    def test_answers_match_pytorch(self):
        ref = bmstest.model_reference("fashion_mlp")
        doc = self.run_ok(MLP_DIR, "--input", self.body_file("batch64"))
        self.assertEqual(doc["outputs"][0]["data"], ref[100:164])
        self.assertEqual(doc["id"], "b64")

    def test_stdin_and_output_file(self):
        out = os.path.join(self.tmp, "out.json")
        got = predict(MLP_DIR, "--input", "-", "--output", out,
                      stdin=self.bodies["single"])
        self.assertEqual(got.returncode, 0, got.stderr)
        with open(out, "rb") as f:
            self.assertEqual(json.load(f), self.served["single"].json())

    def test_onnx_file_gives_graph_output(self):
        for name in ("single", "nested3"):
            with self.subTest(body=name):
                doc = self.run_ok(MLP_ONNX, "--input", self.body_file(name))
                raw = self.raw_served[name]
                self.assertEqual(raw.status, 200, raw)
                want = raw.json()["outputs"][0]
                out = doc["outputs"][0]
                self.assertEqual(out["name"], "label")
                self.assertEqual(out["datatype"], "FP32")
                self.assertEqual(out["shape"], want["shape"])
                self.assertEqual(out["data"], want["data"])
                self.assertEqual(doc["model_version"], "1")

    def assert_one_error_line(self, got, *names):
        err = got.stderr.decode("utf-8", "replace")
        self.assertNotEqual(got.returncode, 0, err)
        lines = [line for line in err.splitlines() if line.strip()]
        ours = [line for line in lines if line.startswith("bms:")]
        self.assertEqual(len(ours), 1, "stderr: %r" % err)
        self.assertEqual(lines, ours, "stderr: %r" % err)
        self.assertEqual(got.stdout, b"")
        for name in names:
            self.assertIn(name, ours[0])
        return ours[0]

    def test_missing_input_file(self):
        missing = os.path.join(self.tmp, "no-such-body.json")
        got = predict(MLP_DIR, "--input", missing)
        self.assert_one_error_line(got, "no-such-body.json")

    def test_bad_json(self):
        path = self.body_file("single", b"{\"inputs\": [")
        self.assert_one_error_line(predict(MLP_DIR, "--input", path))
        path = self.body_file("single", b"[1, 2, 3]")
        self.assert_one_error_line(predict(MLP_DIR, "--input", path))

    def test_invalid_request(self):
        doc = json.loads(self.bodies["single"])
        doc["inputs"][0]["shape"] = [1, 784]
        path = self.body_file("single", json.dumps(doc).encode())
        got = predict(MLP_DIR, "--input", path)
        self.assertEqual(got.returncode, 1)
        self.assert_one_error_line(got, "inputs[0].shape")

    def test_unknown_model_path(self):
        path = self.body_file("single")
        missing = os.path.join(self.tmp, "no_such_model")
        self.assert_one_error_line(predict(missing, "--input", path),
                                   "no_such_model")
        garbage = os.path.join(self.tmp, "garbage.onnx")
        with open(garbage, "wb") as f:
            f.write(b"not a model" * 10)
        self.assert_one_error_line(predict(garbage, "--input", path))

    def test_usage_error_exits_2(self):
        got = predict(MLP_DIR)
        self.assertEqual(got.returncode, 2, got.stderr)


def iso_ms(ts_us, rounded):
    ms = (ts_us + 500) // 1000 if rounded else ts_us // 1000
    t = datetime.datetime.fromtimestamp(ms // 1000, datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S") + ".%03dZ" % (ms % 1000)


class RequestsCliTest(unittest.TestCase):
    """`bms requests` against the records of a stopped server."""

    @classmethod
    def setUpClass(cls):
        cls.server = bmstest.Server()
        try:
            cls.server.start()
            client = cls.server.client()
            images = bmstest.load_test_images()
            cls.ids = []
            for body, model in ((bmstest.infer_body(images[:1], [28, 28]),
                                 "fashion_mlp"),
                                (b"{", "fashion_mlp"),
                                (b"{}", "no_such_model"),
                                (bmstest.infer_body(images[:2], [1, 28, 28]),
                                 "fashion_cnn"),
                                (bmstest.infer_body(images[:3], [28, 28]),
                                 "fashion_mlp")):
                cls.ids.append(client.infer(model, body).request_id)
            client.close()
            cls.server.stop()
            cls.records = cls.server.records()
        except BaseException:
            cls.server.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.server.cleanup()

    def requests(self, *args):
        got = subprocess.run([bmstest.BMS_BIN, "requests", "--data-dir",
                              self.server.data_dir] + list(args),
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(got.returncode, 0, got.stderr)
        return got.stdout

    def test_json_lines_equal_the_store_newest_first(self):
        lines = self.requests("--json").splitlines()
        docs = [json.loads(line) for line in lines]
        want = list(reversed(self.records))
        self.assertEqual(len(docs), len(want))
        self.assertEqual([d["id"] for d in docs], list(reversed(self.ids)))
        for doc, rec in zip(docs, want):
            for key, value in rec.items():
                if key != "seq":
                    self.assertEqual(doc.get(key), value, key)
            self.assertIn(doc["time"], (iso_ms(rec["ts_us"], False),
                                        iso_ms(rec["ts_us"], True)))

    def test_limit(self):
        docs = [json.loads(line)
                for line in self.requests("--json", "--limit", "2")
                .splitlines()]
        self.assertEqual([d["id"] for d in docs], self.ids[:-3:-1])

    def test_table_has_a_row_per_record(self):
        lines = self.requests().splitlines()
        self.assertEqual(len(lines), 1 + len(self.ids))
        for line, req_id in zip(lines[1:], reversed(self.ids)):
            self.assertIn(req_id, line)
        self.assertIn("no_such_model", lines[3])
        self.assertIn("404", lines[3])


if __name__ == "__main__":
    unittest.main()

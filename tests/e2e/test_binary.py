"""
The binary tensor data extension over HTTP, on Fashion-MNIST test images:
requests built by hand (a JSON head, then the pixels as little-endian FP32
bytes, its length in Inference-Header-Content-Length), answers decoded by
hand and compared with the JSON path's answers, with PyTorch's classes
(models/fashion_mlp/reference.txt) and with logits PyTorch computes from
the model's own weights.  Then every refusal, gzip bodies, and the
response cache keeping binary and JSON requests apart.

The repository is a temporary copy of models/fashion_mlp twice:
fashion_mlp as it is and mlp_cached with the response cache on.
"""

import gzip
import http.client
import json
import os
import shutil
import struct
import tempfile
import unittest

import numpy as np

import bmstest

SOURCE = os.path.join(bmstest.MODELS, "fashion_mlp")
MODEL = "fashion_mlp"
CACHED = "mlp_cached"
HEADER = "Inference-Header-Content-Length"
N_IMAGES = 1000
BATCH = 100


def make_repository():
    root = tempfile.mkdtemp(prefix="bms-e2e-binary-")
    with open(os.path.join(SOURCE, "config.json")) as f:
        base = json.load(f)
    for name, cache in ((MODEL, None), (CACHED, {"enabled": True})):
        folder = os.path.join(root, name)
        os.makedirs(os.path.join(folder, "1"))
        shutil.copy(os.path.join(SOURCE, "1", "model.onnx"),
                    os.path.join(folder, "1", "model.onnx"))
        config = dict(base, name=name)
        if cache is not None:
            config["cache"] = cache
        with open(os.path.join(folder, "config.json"), "w") as f:
            json.dump(config, f)
    return root


def torch_logits(first, last):
    """The MLP's logits for test images first..last-1, computed by PyTorch
    from the ONNX file's weights (tests/data/make_mlp_logits.py wrote
    them for images 20 to 51)."""
    path = os.path.join(bmstest.ROOT, "tests", "data",
                        "fashion_mlp_logits.txt")
    assert (first, last) == (20, 52), (first, last)
    return np.loadtxt(path, dtype=np.float64).astype(np.float32)


def binary_body(images, outputs=None, parameters=None, extra_inputs=None,
                input_params=None, data_bytes=None, req_id=None):
    """A binary request for images: (body, JSON head length)."""
    data = data_bytes if data_bytes is not None else \
        bmstest.pixels(images).astype("<f4").tobytes()
    params = {"binary_data_size": len(data)}
    if input_params is not None:
        params = input_params
    doc = {"inputs": [{"name": "image", "datatype": "FP32",
                       "shape": [len(images), 28, 28],
                       "parameters": params}]}
    if req_id is not None:
        doc = dict({"id": req_id}, **doc)
    if extra_inputs:
        doc["inputs"].extend(extra_inputs)
    if outputs is not None:
        doc["outputs"] = outputs
    if parameters is not None:
        doc["parameters"] = parameters
    head = json.dumps(doc).encode("ascii")
    return head + data, len(head)


def split_answer(resp):
    """(JSON document, binary bytes) of a binary answer."""
    n = int(resp.header(HEADER))
    return json.loads(resp.body[:n]), resp.body[n:]


def binary_outputs(doc, blob):
    """name -> the bytes of each binary output, in the JSON's order."""
    out = {}
    at = 0
    for o in doc["outputs"]:
        size = o.get("parameters", {}).get("binary_data_size")
        if size is None:
            continue
        out[o["name"]] = blob[at:at + size]
        at += size
    assert at == len(blob), "%d binary bytes, outputs take %d" % (len(blob),
                                                                  at)
    return out


def decode_bytes(raw):
    """BYTES on the wire: a 4-byte little-endian length, then the bytes."""
    items = []
    at = 0
    while at < len(raw):
        (n,) = struct.unpack_from("<I", raw, at)
        items.append(raw[at + 4:at + 4 + n].decode("utf-8"))
        at += 4 + n
    return items


class BinaryTensorTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.images = bmstest.load_test_images()[:N_IMAGES]
        cls.reference = np.array(bmstest.model_reference(MODEL)[:N_IMAGES],
                                 dtype=np.int64)
        cls.classes = bmstest.model_config(MODEL)["outputs"][0]["classes"]
        cls.repo = make_repository()
        cls.server = bmstest.Server(repository=cls.repo)
        try:
            cls.server.start()
        except BaseException:
            cls.server.cleanup()
            shutil.rmtree(cls.repo, ignore_errors=True)
            raise
        cls.client = cls.server.client()

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        try:
            cls.server.stop()    # a clean exit (and leak check) or raise
        finally:
            cls.server.cleanup()
            shutil.rmtree(cls.repo, ignore_errors=True)

    def post(self, body, json_size=None, model=MODEL, headers=None):
        hdrs = {"Content-Type": "application/octet-stream"}
        if json_size is not None:
            hdrs[HEADER] = str(json_size)
        if headers:
            hdrs.update(headers)
        return self.client.request("POST", "/v2/models/%s/infer" % model,
                                   body, hdrs)

    def post_ok(self, body, json_size=None, model=MODEL, headers=None):
        resp = self.post(body, json_size, model, headers)
        self.assertEqual(resp.status, 200, resp)
        return resp

    def json_infer(self, images, outputs=None, req_id=None):
        resp = self.client.infer(MODEL, bmstest.infer_body(
            images, [28, 28], outputs=outputs, req_id=req_id))
        self.assertEqual(resp.status, 200, resp)
        return resp

    def assert_refused(self, body, json_size, field, problem=None,
                       headers=None):
        resp = self.post(body, json_size, headers=headers)
        self.assertEqual(resp.status, 400, resp)
        msg = resp.json()["error"]
        self.assertIn(field, msg)
        if problem is not None:
            self.assertIn(problem, msg)
        return msg

    # --- answers -----------------------------------------------------

    def test_binary_classes_equal_json_and_pytorch(self):
        got = np.full(N_IMAGES, -1, dtype=np.int64)
        for start in range(0, N_IMAGES, BATCH):
            imgs = self.images[start:start + BATCH]
            body, n = binary_body(imgs, outputs=[
                {"name": "label", "parameters": {"binary_data": True}}])
            resp = self.post_ok(body, n)
            self.assertEqual(resp.header("Content-Type"),
                             "application/octet-stream")
            doc, blob = split_answer(resp)
            out = doc["outputs"][0]
            self.assertEqual(out["datatype"], "INT64")
            self.assertEqual(out["shape"], [len(imgs)])
            self.assertNotIn("data", out)
            self.assertEqual(out["parameters"]["binary_data_size"],
                             8 * len(imgs))
            classes = np.frombuffer(blob, dtype="<i8")
            got[start:start + len(imgs)] = classes
            self.assertEqual(out["parameters"]["labels"],
                             [self.classes[c] for c in classes])
            plain = self.json_infer(imgs).json()["outputs"][0]
            self.assertEqual(plain["data"], classes.tolist())
        bad = np.nonzero(got != self.reference)[0]
        self.assertEqual(len(bad), 0, "%d of %d differ from PyTorch, first"
                         " %s" % (len(bad), N_IMAGES, bad[:10].tolist()))

    def test_single_images_binary(self):
        for i in range(5):
            imgs = self.images[i:i + 1]
            body, n = binary_body(imgs, parameters={
                "binary_data_output": True})
            doc, blob = split_answer(self.post_ok(body, n))
            self.assertEqual(np.frombuffer(blob, "<i8").tolist(),
                             [self.reference[i]])

    def test_binary_input_json_answer_equals_json_path(self):
        imgs = self.images[10:13]
        body, n = binary_body(imgs, req_id="same")
        resp = self.post_ok(body, n)
        self.assertIsNone(resp.header(HEADER))
        self.assertEqual(resp.header("Content-Type"), "application/json")
        plain = self.json_infer(imgs, req_id="same")
        self.assertEqual(resp.body, plain.body)

    def test_raw_logits_binary_equal_json_and_torch(self):
        imgs = self.images[20:52]
        outputs = [{"name": "label",
                    "parameters": {"raw": True, "binary_data": True}}]
        body, n = binary_body(imgs, outputs=outputs)
        doc, blob = split_answer(self.post_ok(body, n))
        out = doc["outputs"][0]
        self.assertEqual((out["datatype"], out["shape"]),
                         ("FP32", [len(imgs), 10]))
        logits = np.frombuffer(blob, "<f4").reshape(len(imgs), 10)
        plain = self.json_infer(imgs, outputs=[
            {"name": "label", "parameters": {"raw": True}}])
        want = np.array(plain.json()["outputs"][0]["data"],
                        dtype=np.float32).reshape(len(imgs), 10)
        # JSON writes FP32 with 9 digits, which read back exactly.
        np.testing.assert_array_equal(logits, want)
        np.testing.assert_allclose(logits, torch_logits(20, 52),
                                   rtol=1e-4, atol=1e-4)

    def test_output_false_wins_over_binary_data_output(self):
        imgs = self.images[60:64]
        body, n = binary_body(imgs, parameters={"binary_data_output": True},
                              outputs=[{"name": "label", "parameters":
                                        {"binary_data": False}}])
        resp = self.post_ok(body, n)
        self.assertIsNone(resp.header(HEADER))
        self.assertEqual(resp.json()["outputs"][0]["data"],
                         self.reference[60:64].tolist())

    def test_top3_binary_bytes_equal_json(self):
        imgs = self.images[70:74]
        outputs = [{"name": "label", "parameters": {"classification": 3}}]
        body, n = binary_body(imgs, outputs=[
            {"name": "label",
             "parameters": {"classification": 3, "binary_data": True}}])
        doc, blob = split_answer(self.post_ok(body, n))
        out = doc["outputs"][0]
        self.assertEqual((out["datatype"], out["shape"]),
                         ("BYTES", [len(imgs), 3]))
        strings = decode_bytes(binary_outputs(doc, blob)["label"])
        plain = self.json_infer(imgs, outputs=outputs).json()["outputs"][0]
        flat = [s for row in plain["data"] for s in
                (row if isinstance(row, list) else [row])]
        self.assertEqual(strings, flat)
        self.assertEqual([int(s.split(":")[1]) for s in strings[::3]],
                         self.reference[70:74].tolist())

    def test_json_request_may_ask_binary_outputs(self):
        imgs = self.images[80:82]
        body = bmstest.infer_body(imgs, [28, 28])
        doc = json.loads(body)
        doc["parameters"] = {"binary_data_output": True}
        resp = self.client.infer(MODEL, json.dumps(doc))
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.header("Content-Type"),
                         "application/octet-stream")
        doc, blob = split_answer(resp)
        self.assertEqual(np.frombuffer(blob, "<i8").tolist(),
                         self.reference[80:82].tolist())

    def test_content_type_is_not_required(self):
        imgs = self.images[90:91]
        body, n = binary_body(imgs, parameters={"binary_data_output": True})
        for ctype in ("application/json", "text/plain"):
            resp = self.post_ok(body, n, headers={"Content-Type": ctype})
            self.assertEqual(np.frombuffer(split_answer(resp)[1],
                                           "<i8").tolist(),
                             [self.reference[90]])

    # --- refusals ----------------------------------------------------

    def test_header_must_be_a_decimal_within_the_body(self):
        body, n = binary_body(self.images[:1])
        for value in ("abc", "-5", "+5", "1e3", "0x10", "", "12 3"):
            with self.subTest(value=value):
                self.assert_refused(body, value, HEADER, "decimal integer")
        self.assert_refused(body, len(body) + 1, HEADER, "more than the body")
        # A split in the wrong place: JSON that does not parse, or a
        # binary part one byte short.
        self.assert_refused(body, n - 1, "malformed JSON",
                            "the JSON part ends inside the JSON, after the"
                            " %d bytes Inference-Header-Content-Length"
                            " gives" % (n - 1))
        self.assertEqual(self.post(body, n + 1).status, 400)

    def test_header_spaces_ignored_repeats_refused(self):
        body, n = binary_body(self.images[:1])
        resp = self.post_ok(body, " %d\t" % n)
        doc = resp.json()
        self.assertEqual(doc["outputs"][0]["data"], [int(self.reference[0])])
        # The same value twice, or two values: neither is taken.
        for values in ((n, n), (n, n + 1), (n + 1, n)):
            with self.subTest(values=values):
                conn = http.client.HTTPConnection("127.0.0.1",
                                                  self.server.port,
                                                  timeout=30)
                try:
                    conn.putrequest("POST", "/v2/models/%s/infer" % MODEL)
                    conn.putheader("Content-Length", str(len(body)))
                    for v in values:
                        conn.putheader(HEADER, str(v))
                    conn.endheaders(body)
                    r = conn.getresponse()
                    msg = json.loads(r.read())["error"]
                finally:
                    conn.close()
                self.assertEqual(r.status, 400)
                self.assertIn(HEADER, msg)
                self.assertIn("more than once", msg)

    def test_binary_data_size_must_be_a_non_negative_integer(self):
        imgs = self.images[:1]
        for size in (-1, 3136.5, "3136", None, [3136]):
            with self.subTest(size=size):
                body, n = binary_body(imgs, input_params={
                    "binary_data_size": size})
                self.assert_refused(body, n, "inputs[0].parameters."
                                    "binary_data_size", "non-negative")

    def test_data_and_binary_data_size_exclude_each_other(self):
        imgs = self.images[:1]
        data = bmstest.pixels(imgs).astype("<f4")
        doc = {"inputs": [{"name": "image", "datatype": "FP32",
                           "shape": [1, 28, 28],
                           "data": data.ravel().tolist(),
                           "parameters": {"binary_data_size": 3136}}]}
        head = json.dumps(doc).encode()
        self.assert_refused(head + data.tobytes(), len(head), "inputs[0]",
                            "exclude each other")

    def test_size_must_equal_elements_times_datatype_size(self):
        imgs = self.images[:2]
        data = bmstest.pixels(imgs).astype("<f4").tobytes()
        for size in (3136, 6272 - 1, 6272 + 4, 0):
            with self.subTest(size=size):
                body, n = binary_body(imgs, data_bytes=data[:size],
                                      input_params={"binary_data_size":
                                                    size})
                self.assert_refused(body, n, "inputs[0].parameters."
                                    "binary_data_size", "takes 6272")

    def test_bytes_left_over_or_missing(self):
        imgs = self.images[:1]
        data = bmstest.pixels(imgs).astype("<f4").tobytes()
        body, n = binary_body(imgs, data_bytes=data + b"\0\0\0\0",
                              input_params={"binary_data_size": 3136})
        self.assert_refused(body, n, "binary data", "4 bytes left over")
        body, n = binary_body(imgs, data_bytes=data[:3000],
                              input_params={"binary_data_size": 3136})
        self.assert_refused(body, n, "inputs[0].parameters.binary_data_size",
                            "only 3000 bytes")

    def test_binary_data_size_without_header_is_refused(self):
        body, n = binary_body(self.images[:1])
        resp = self.client.infer(MODEL, body[:n])
        self.assertEqual(resp.status, 400, resp)
        self.assertIn("inputs[0].parameters.binary_data_size: no binary part",
                      resp.json()["error"])

    def test_bytes_inputs_are_refused(self):
        doc = {"inputs": [{"name": "image", "datatype": "BYTES",
                           "shape": [1], "parameters":
                           {"binary_data_size": 7}}]}
        head = json.dumps(doc).encode()
        self.assert_refused(head + b"\3\0\0\0abc", len(head),
                            "inputs[0].datatype",
                            "BYTES inputs are not supported")

    def test_bool_bytes_must_be_zero_or_one(self):
        # fashion_mlp takes FP32: a BOOL input is refused by the model's
        # check too, but the byte check comes first and names the element.
        doc = {"inputs": [{"name": "image", "datatype": "BOOL",
                           "shape": [2], "parameters":
                           {"binary_data_size": 2}}]}
        head = json.dumps(doc).encode()
        self.assert_refused(head + b"\1\5", len(head),
                            "inputs[0]: binary data",
                            "element 1 is byte 5")

    # --- gzip --------------------------------------------------------

    def test_gzip_body_is_inflated_then_split(self):
        imgs = self.images[100:108]
        body, n = binary_body(imgs, parameters={"binary_data_output": True})
        packed = gzip.compress(body)
        resp = self.post_ok(packed, n, headers={"Content-Encoding": "gzip"})
        self.assertEqual(np.frombuffer(split_answer(resp)[1], "<i8").tolist(),
                         self.reference[100:108].tolist())
        # The header counts inflated bytes: the compressed length is wrong.
        resp = self.post(packed, len(packed),
                         headers={"Content-Encoding": "gzip"})
        self.assertEqual(resp.status, 400, resp)

    # --- the cache ---------------------------------------------------

    def cache_pair(self, body, json_size=None):
        first = self.post_ok(body, json_size, model=CACHED)
        second = self.post_ok(body, json_size, model=CACHED)
        self.assertEqual(first.header("X-Cache"), "miss")
        self.assertEqual(second.header("X-Cache"), "hit")
        self.assertEqual(second.body, first.body)
        for name in ("Content-Type", HEADER, "X-Model-Version"):
            self.assertEqual(second.header(name), first.header(name), name)
        return first

    def test_cache_hit_reproduces_a_binary_answer(self):
        imgs = self.images[200:203]
        body, n = binary_body(imgs, req_id="cache-bin",
                              parameters={"binary_data_output": True})
        first = self.cache_pair(body, n)
        self.assertEqual(first.header("Content-Type"),
                         "application/octet-stream")
        self.assertEqual(np.frombuffer(split_answer(first)[1],
                                       "<i8").tolist(),
                         self.reference[200:203].tolist())

    def test_cache_keeps_json_and_binary_requests_apart(self):
        imgs = self.images[210:211]
        body = bmstest.infer_body(imgs, [28, 28], req_id="cache-split") + \
            b"  "
        plain = self.cache_pair(body)
        self.assertIsNone(plain.header(HEADER))
        # The same bytes as a binary request (all JSON, no binary part):
        # another request, not the JSON one's entry.
        split = self.cache_pair(body, len(body))
        self.assertIsNone(split.header(HEADER))
        self.assertEqual(split.body, plain.body)
        # Split two bytes early, the same bytes are refused, not a hit.
        resp = self.post(body, len(body) - 2, model=CACHED)
        self.assertEqual(resp.status, 400, resp)
        self.assertIn("2 bytes left over", resp.json()["error"])
        self.assertEqual(resp.header("X-Cache"), "miss")

    def test_cache_keeps_a_json_request_with_binary_answer(self):
        imgs = self.images[220:222]
        doc = json.loads(bmstest.infer_body(imgs, [28, 28],
                                            req_id="cache-json-bin"))
        doc["parameters"] = {"binary_data_output": True}
        first = self.cache_pair(json.dumps(doc).encode())
        self.assertEqual(first.header("Content-Type"),
                         "application/octet-stream")
        self.assertEqual(np.frombuffer(split_answer(first)[1],
                                       "<i8").tolist(),
                         self.reference[220:222].tolist())


if __name__ == "__main__":
    unittest.main()

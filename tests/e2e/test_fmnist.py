"""
Fashion-MNIST over HTTP: all 10,000 test images through each bundled model
(single and batched requests, flat and nested data, 4 keep-alive clients),
compared with PyTorch's answers in models/<name>/reference.txt, then the
request records the server wrote once it was stopped with SIGTERM.
"""

import queue
import threading
import time
import unittest

import numpy as np

import bmstest

N_IMAGES = 10000


def flatten(data):
    """A v2 data array, flat or nested, as a flat list."""
    out = []
    stack = [data]
    while stack:
        x = stack.pop()
        if isinstance(x, list):
            stack.extend(reversed(x))
        else:
            out.append(x)
    return out


class _FmnistCase:
    """The checks, shared by the per-model classes below."""

    MODEL = None
    N_SINGLE = 100
    BATCH = 64
    N_CLIENTS = 4

    @classmethod
    def setUpClass(cls):
        cls.images = bmstest.load_test_images()
        cls.labels = bmstest.load_test_labels()
        cls.reference = bmstest.model_reference(cls.MODEL)
        cls.accuracy_ref = bmstest.model_accuracy(cls.MODEL)
        config = bmstest.model_config(cls.MODEL)
        cls.classes = config["outputs"][0]["classes"]
        cls.item_shape = bmstest.ITEM_SHAPE[cls.MODEL]
        cls.sent = []
        cls.sent_lock = threading.Lock()
        cls.server = bmstest.Server()
        try:
            cls.server.start()
            cls._send_all_images()
        except BaseException:
            cls.server.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.server.cleanup()

    # --- sending ------------------------------------------------------

    @classmethod
    def _jobs(cls):
        jobs = []
        for i in range(cls.N_SINGLE):
            jobs.append(("%s-single-%d" % (cls.MODEL, i), i, 1, i % 2 == 1))
        k = 0
        for start in range(cls.N_SINGLE, N_IMAGES, cls.BATCH):
            count = min(cls.BATCH, N_IMAGES - start)
            jobs.append(("%s-batch-%d" % (cls.MODEL, k), start, count,
                         k % 2 == 1))
            k += 1
        return jobs

    @classmethod
    def _note(cls, **entry):
        with cls.sent_lock:
            cls.sent.append(entry)

    @classmethod
    def _send_all_images(cls):
        cls.predictions = np.full(N_IMAGES, -1, dtype=np.int64)
        cls.answer_labels = [None] * N_IMAGES
        cls.problems = []
        jobs = queue.Queue()
        for job in cls._jobs():
            jobs.put(job)
        threads = [threading.Thread(target=cls._client_loop, args=(jobs,))
                   for _ in range(cls.N_CLIENTS)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        cls.send_seconds = time.monotonic() - t0
        cls.n_main_sent = len(cls.sent)
        print("\n%s: %d requests in %.1f s" % (cls.MODEL, len(cls.sent),
                                               cls.send_seconds))

    @classmethod
    def _client_loop(cls, jobs):
        client = cls.server.client()
        try:
            while True:
                try:
                    req_id, start, count, nested = jobs.get_nowait()
                except queue.Empty:
                    return
                try:
                    cls._send_one(client, req_id, start, count, nested)
                except Exception as exc:
                    client.close()
                    with cls.sent_lock:
                        cls.problems.append("%s: %r" % (req_id, exc))
        finally:
            client.close()

    @classmethod
    def _send_one(cls, client, req_id, start, count, nested):
        imgs = cls.images[start:start + count]
        body = bmstest.infer_body(imgs, cls.item_shape, nested=nested,
                                  req_id=req_id)
        resp = client.infer(cls.MODEL, body)
        cls._note(id=req_id, request_id=resp.request_id, body_len=len(body),
                  resp_len=len(resp.body), status=resp.status)
        if resp.status != 200:
            raise AssertionError("status %d: %s" % (resp.status, resp))
        doc = resp.json()
        if doc.get("id") != req_id:
            raise AssertionError("id %r echoed as %r" % (req_id,
                                                         doc.get("id")))
        if doc.get("model_name") != cls.MODEL or \
                doc.get("model_version") != "1":
            raise AssertionError("model %r version %r"
                                 % (doc.get("model_name"),
                                    doc.get("model_version")))
        outs = doc["outputs"]
        if len(outs) != 1 or outs[0]["name"] != "label":
            raise AssertionError("outputs %r" % [o.get("name") for o in outs])
        out = outs[0]
        if out["datatype"] != "INT64" or out["shape"] != [count]:
            raise AssertionError("label output %s %r" % (out["datatype"],
                                                         out["shape"]))
        data = flatten(out["data"])
        if len(data) != count:
            raise AssertionError("%d answers for %d images" % (len(data),
                                                               count))
        names = out.get("parameters", {}).get("labels")
        cls.predictions[start:start + count] = data
        for i in range(count):
            cls.answer_labels[start + i] = names[i] if names and \
                len(names) == count else None

    # --- checks -------------------------------------------------------

    def test_every_request_answered_200(self):
        self.assertEqual(self.problems, [],
                         "%d requests went wrong" % len(self.problems))
        self.assertEqual(self.n_main_sent, len(self._jobs()))

    def test_answers_equal_pytorch_reference(self):
        ref = np.array(self.reference, dtype=np.int64)
        self.assertEqual(len(ref), N_IMAGES)
        bad = np.nonzero(self.predictions != ref)[0]
        detail = ", ".join("image %d: bms %d, torch %d"
                           % (i, self.predictions[i], ref[i])
                           for i in bad[:10])
        self.assertEqual(len(bad), 0, "%d of %d answers differ from "
                         "PyTorch: %s" % (len(bad), N_IMAGES, detail))

    def test_accuracy_equals_pytorch(self):
        correct = int(np.sum(self.predictions == self.labels.astype(
            np.int64)))
        accuracy = correct / N_IMAGES
        print("\n%s: accuracy %.4f (PyTorch %.4f)" % (self.MODEL, accuracy,
                                                      self.accuracy_ref))
        self.assertEqual(round(accuracy, 4), round(self.accuracy_ref, 4))
        self.assertGreater(accuracy, 0.85)

    def test_labels_name_the_classes(self):
        self.assertEqual(len(self.classes), 10)
        wrong = [i for i in range(N_IMAGES)
                 if self.predictions[i] < 0
                 or self.answer_labels[i] != self.classes[
                     self.predictions[i]]]
        self.assertEqual(wrong[:10], [], "%d answers with a wrong or missing "
                         "parameters.labels entry" % len(wrong))

    def test_classification_top3_matches_raw_logits(self):
        client = self.server.client()
        cases = [(0, self.BATCH, False), (self.BATCH, self.BATCH, True),
                 (500, 1, False), (501, 1, True), (502, 3, True)]
        try:
            for n, (start, count, nested) in enumerate(cases):
                imgs = self.images[start:start + count]
                self._check_top3(client, n, start, count, imgs, nested)
        finally:
            client.close()

    def _post_noted(self, client, req_id, body):
        resp = client.infer(self.MODEL, body)
        self._note(id=req_id, request_id=resp.request_id, body_len=len(body),
                   resp_len=len(resp.body), status=resp.status)
        self.assertEqual(resp.status, 200, "%s: %r" % (req_id, resp))
        return resp.json()

    def _check_top3(self, client, n, start, count, imgs, nested):
        top_id = "%s-top3-%d" % (self.MODEL, n)
        raw_id = "%s-raw-%d" % (self.MODEL, n)
        top = self._post_noted(client, top_id, bmstest.infer_body(
            imgs, self.item_shape, nested=nested, req_id=top_id,
            outputs=[{"name": "label",
                      "parameters": {"classification": 3}}]))
        raw = self._post_noted(client, raw_id, bmstest.infer_body(
            imgs, self.item_shape, nested=nested, req_id=raw_id,
            outputs=[{"name": "label", "parameters": {"raw": True}}]))

        raw_out = raw["outputs"][0]
        self.assertEqual(raw_out["datatype"], "FP32")
        self.assertEqual(raw_out["shape"], [count, 10])
        logits = np.array(flatten(raw_out["data"]),
                          dtype=np.float64).reshape(count, 10)
        top_out = top["outputs"][0]
        self.assertEqual(top_out["name"], "label")
        self.assertEqual(top_out["datatype"], "BYTES")
        self.assertEqual(top_out["shape"], [count, 3])
        strings = flatten(top_out["data"])
        self.assertEqual(len(strings), count * 3)
        for i in range(count):
            item = [s.split(":", 2) for s in strings[3 * i:3 * i + 3]]
            scores = [float(s) for s, _, _ in item]
            indices = [int(k) for _, k, _ in item]
            names = [name for _, _, name in item]
            where = "image %d" % (start + i)
            self.assertEqual(indices[0], self.predictions[start + i], where)
            self.assertEqual(scores, sorted(scores, reverse=True), where)
            # numpy's stable sort on -logits: highest first, ties by index
            expect = [int(k) for k in np.argsort(-logits[i],
                                                 kind="stable")[:3]]
            self.assertEqual(indices, expect, where)
            for score, k in zip(scores, indices):
                self.assertEqual(np.float32(score), np.float32(logits[i][k]),
                                 where)
            self.assertEqual(names, [self.classes[k] for k in indices],
                             where)
            self.assertEqual(int(np.argmax(logits[i])),
                             self.predictions[start + i], where)

    def test_zz_records_after_sigterm(self):
        # Runs last: stops the server, then reads what it stored.
        self.server.stop()
        records = self.server.records()
        sent = list(self.sent)
        self.assertEqual(len(records), len(sent),
                         "%d records for %d requests sent"
                         % (len(records), len(sent)))
        ids = [s["request_id"] for s in sent]
        self.assertNotIn(None, ids, "a response had no X-Request-Id")
        self.assertEqual(len(set(ids)), len(ids), "X-Request-Id repeated")
        by_id = {r["id"]: r for r in records}
        self.assertEqual(len(by_id), len(records), "record ids repeated")
        for s in sent:
            rec = by_id.get(s["request_id"])
            self.assertIsNotNone(rec, "no record for %s (X-Request-Id %s)"
                                 % (s["id"], s["request_id"]))
            got = {k: rec[k] for k in ("model", "version", "http_status",
                                       "outcome", "bytes_in", "bytes_out",
                                       "client")}
            want = {"model": self.MODEL, "version": 1, "http_status": 200,
                    "outcome": "ok", "bytes_in": s["body_len"],
                    "bytes_out": s["resp_len"], "client": "127.0.0.1"}
            self.assertEqual(got, want, s["id"])
            self.assertGreater(rec["latency_us"], 0, s["id"])
            self.assertGreater(rec["ts_us"], 0, s["id"])
        self.assertEqual(sum(r["bytes_in"] for r in records),
                         sum(s["body_len"] for s in sent))
        self.assertEqual(sum(r["bytes_out"] for r in records),
                         sum(s["resp_len"] for s in sent))


class FashionMlpTest(_FmnistCase, unittest.TestCase):
    MODEL = "fashion_mlp"
    N_SINGLE = 100


class FashionCnnTest(_FmnistCase, unittest.TestCase):
    MODEL = "fashion_cnn"
    N_SINGLE = 20


if __name__ == "__main__":
    unittest.main()

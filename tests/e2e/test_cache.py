"""
The response cache and gzip bodies over HTTP, against a temporary
repository of copies of models/fashion_mlp with "cache" objects in their
config.json:

    mlp_cached   cache on, the default bound, a 60 s TTL
    mlp_count    cache on, for exact counters (no other test uses it)
    mlp_ttl      cache on, a 1 s TTL
    mlp_small    cache on, a bound that holds two answers, not three
    mlp_plain    no cache

Expected bodies come from a model without the cache or from Python's own
gzip module, never from the answer under test.
"""

import gzip
import json
import os
import shutil
import tempfile
import time
import unittest
import zlib

import bmstest

SOURCE = os.path.join(bmstest.MODELS, "fashion_mlp")
GIB = 1 << 30
MIB = 1 << 20


def make_repository(body_len):
    """A repository of fashion_mlp copies; mlp_small's bound, 2.5 times
    body_len, fits two cached answers to bodies of body_len bytes (an
    answer is a few hundred bytes), not three."""
    root = tempfile.mkdtemp(prefix="bms-e2e-cache-")
    caches = {
        "mlp_cached": {"enabled": True, "ttl_s": 60},
        "mlp_count": {"enabled": True},
        "mlp_ttl": {"enabled": True, "ttl_s": 1},
        "mlp_small": {"enabled": True, "max_bytes": int(body_len * 2.5)},
        "mlp_plain": None,
    }
    with open(os.path.join(SOURCE, "config.json")) as f:
        base = json.load(f)
    for name, cache in caches.items():
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


def body_for(images, req_id=None):
    return bmstest.infer_body(images, [28, 28], req_id=req_id)


def gzip_bomb(size):
    """size bytes of zeros, gzip-compressed in pieces (about size/1000)."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(MIB)
    parts = [comp.compress(zeros) for _ in range(size // MIB)]
    parts.append(comp.flush())
    return b"".join(parts)


class CacheAndGzipTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.images = bmstest.load_test_images()[:32]
        # Three bodies of one length (only the id differs) for the bound.
        cls.lru_bodies = [body_for(cls.images[6:7], req_id="lru-%d" % i)
                          for i in range(3)]
        cls.repo = make_repository(len(cls.lru_bodies[0]))
        cls.server = bmstest.Server(repository=cls.repo)
        cls.server.start()
        cls.client = cls.server.client()

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        try:
            cls.server.stop()    # a clean exit (and leak check) or raise
        finally:
            cls.server.cleanup()
            shutil.rmtree(cls.repo, ignore_errors=True)

    def infer(self, model, body, headers=None):
        return self.client.request("POST", "/v2/models/%s/infer" % model,
                                   body, headers)

    def metadata_cache(self, model):
        resp = self.client.get("/v2/models/%s" % model)
        self.assertEqual(resp.status, 200, resp)
        return resp.json()["cache"]

    # --- the cache ---------------------------------------------------

    def test_same_request_twice_is_a_miss_then_a_hit(self):
        body = body_for(self.images[2:3], req_id="twice")
        first = self.infer("mlp_cached", body)
        second = self.infer("mlp_cached", body)
        plain = self.infer("mlp_plain", body)
        self.assertEqual(first.status, 200, first)
        self.assertEqual(first.header("X-Cache"), "miss")
        self.assertEqual(second.status, 200, second)
        self.assertEqual(second.header("X-Cache"), "hit")
        self.assertEqual(second.body, first.body)
        self.assertEqual(second.header("X-Model-Version"), "1")
        # The answer itself is the model's: the same as an uncached copy
        # gives, but for the model name it carries.
        self.assertEqual(json.loads(second.body)["outputs"],
                         json.loads(plain.body)["outputs"])
        self.assertIsNone(plain.header("X-Cache"))
        # A hit does not skip the checks of the request's headers.
        bad = self.infer("mlp_cached", body, {"Timeout-Ms": "soon"})
        self.assertEqual(bad.status, 400, bad)

    def test_a_different_body_is_a_miss(self):
        a = self.infer("mlp_cached", body_for(self.images[3:4]))
        b = self.infer("mlp_cached", body_for(self.images[4:5]))
        self.assertEqual(a.header("X-Cache"), "miss")
        self.assertEqual(b.header("X-Cache"), "miss")
        self.assertNotEqual(a.body, b.body)
        # One byte more (a space) is another body.
        c = self.infer("mlp_cached", body_for(self.images[3:4]) + b" ")
        self.assertEqual(c.status, 200, c)
        self.assertEqual(c.header("X-Cache"), "miss")

    def test_failed_answers_are_not_cached(self):
        bad = b'{"inputs": [{"name": "image", "datatype": "FP32", ' \
              b'"shape": [1, 3], "data": [1, 2, 3]}]}'
        for _ in range(2):
            resp = self.infer("mlp_cached", bad)
            self.assertEqual(resp.status, 400, resp)
            self.assertEqual(resp.header("X-Cache"), "miss")

    def test_ttl_passes_and_the_answer_is_computed_again(self):
        body = body_for(self.images[5:6])
        self.assertEqual(self.infer("mlp_ttl", body).header("X-Cache"),
                         "miss")
        self.assertEqual(self.infer("mlp_ttl", body).header("X-Cache"),
                         "hit")
        time.sleep(1.3)
        self.assertEqual(self.infer("mlp_ttl", body).header("X-Cache"),
                         "miss")
        self.assertGreaterEqual(self.metadata_cache("mlp_ttl")["evictions"],
                                1)

    def test_byte_bound_evicts_the_least_recently_used(self):
        bodies = self.lru_bodies
        for b in bodies[:2]:
            self.assertEqual(self.infer("mlp_small", b).header("X-Cache"),
                             "miss")
        self.assertEqual(self.infer("mlp_small", bodies[0])
                         .header("X-Cache"), "hit")
        # bodies[1] is now the oldest: the third evicts it.
        self.assertEqual(self.infer("mlp_small", bodies[2])
                         .header("X-Cache"), "miss")
        self.assertEqual(self.infer("mlp_small", bodies[0])
                         .header("X-Cache"), "hit")
        self.assertEqual(self.infer("mlp_small", bodies[1])
                         .header("X-Cache"), "miss")
        meta = self.metadata_cache("mlp_small")
        self.assertGreaterEqual(meta["evictions"], 2)
        self.assertLessEqual(meta["bytes"], meta["max_bytes"])
        self.assertEqual(meta["entries"], 2)

    def test_metadata_counts_hits_misses_and_bytes(self):
        a = body_for(self.images[7:8])
        b = body_for(self.images[8:9])
        before = self.metadata_cache("mlp_count")
        self.assertEqual(before, {"enabled": True, "max_bytes": 8388608,
                                  "ttl_s": 60, "hits": 0, "misses": 0,
                                  "evictions": 0, "entries": 0,
                                  "bytes": 0})
        answers = [self.infer("mlp_count", x) for x in (a, a, b, a)]
        self.assertEqual([r.header("X-Cache") for r in answers],
                         ["miss", "hit", "miss", "hit"])
        after = self.metadata_cache("mlp_count")
        self.assertEqual(after["hits"], 2)
        self.assertEqual(after["misses"], 2)
        self.assertEqual(after["entries"], 2)
        # Both bodies and both answers are kept, plus some overhead.
        kept = len(a) + len(b) + len(answers[0].body) + len(answers[2].body)
        self.assertGreaterEqual(after["bytes"], kept)
        self.assertLess(after["bytes"], kept + 4096)
        self.assertEqual(self.metadata_cache("mlp_plain"),
                         {"enabled": False})

    # --- gzip answers ------------------------------------------------

    def big_body(self):
        """A request whose answer passes 1 KiB: the top 3 classes of 32
        images."""
        return bmstest.infer_body(
            self.images[:32], [28, 28],
            outputs=[{"name": "label", "parameters": {"classification": 3}}])

    def test_gzip_answer_decodes_to_the_plain_one(self):
        body = self.big_body()
        plain = self.infer("mlp_plain", body)
        packed = self.infer("mlp_plain", body, {"Accept-Encoding": "gzip"})
        self.assertEqual(plain.status, 200, plain)
        self.assertGreaterEqual(len(plain.body), 1024)
        self.assertIsNone(plain.header("Content-Encoding"))
        self.assertEqual(plain.header("Vary"), "Accept-Encoding")
        self.assertEqual(packed.status, 200)
        self.assertEqual(packed.header("Content-Encoding"), "gzip")
        self.assertEqual(packed.header("Vary"), "Accept-Encoding")
        self.assertEqual(gzip.decompress(packed.body), plain.body)
        self.assertLess(len(packed.body), len(plain.body))

    def test_gzip_q0_is_not_compressed(self):
        body = self.big_body()
        for accept in ("gzip;q=0", "identity", "deflate, gzip; q=0",
                       "gzip;q=0, *"):
            resp = self.infer("mlp_plain", body, {"Accept-Encoding": accept})
            self.assertEqual(resp.status, 200, resp)
            self.assertIsNone(resp.header("Content-Encoding"), accept)
            json.loads(resp.body)

    def test_small_answers_go_plain(self):
        resp = self.client.request("GET", "/v2/health/live", None,
                                   {"Accept-Encoding": "gzip"})
        self.assertEqual(resp.status, 200)
        self.assertIsNone(resp.header("Content-Encoding"))
        self.assertEqual(resp.json(), {"live": True})

    # --- gzip requests -----------------------------------------------

    def test_gzip_request_body_is_accepted(self):
        body = body_for(self.images[9:10])
        plain = self.infer("mlp_plain", body)
        packed = self.infer("mlp_plain", gzip.compress(body),
                            {"Content-Encoding": "gzip"})
        self.assertEqual(packed.status, 200, packed)
        self.assertEqual(packed.body, plain.body)

    def test_gzip_request_bytes_are_recorded_as_on_the_wire(self):
        body = body_for(self.images[10:11], req_id="wire-bytes")
        wire = gzip.compress(body)
        resp = self.client.request(
            "POST", "/v2/models/mlp_plain/infer", wire,
            {"Content-Encoding": "gzip", "Accept-Encoding": "gzip"})
        self.assertEqual(resp.status, 200, resp)
        rid = resp.request_id
        deadline = time.monotonic() + 10
        rec = None
        while rec is None and time.monotonic() < deadline:
            rec = next((r for r in self.server.records() if r["id"] == rid),
                       None)
            if rec is None:
                time.sleep(0.1)
        self.assertIsNotNone(rec, "no record for %s" % rid)
        self.assertEqual(rec["bytes_in"], len(wire))
        self.assertEqual(rec["bytes_out"], len(resp.body))

    def test_gzip_bomb_is_refused_quickly(self):
        bomb = gzip_bomb(GIB)
        self.assertLess(len(bomb), 2 * MIB)
        start = time.monotonic()
        resp = self.infer("mlp_plain", bomb, {"Content-Encoding": "gzip"})
        elapsed = time.monotonic() - start
        self.assertEqual(resp.status, 413, resp)
        self.assertIn("limit", resp.json()["error"])
        self.assertIn("inflated", resp.json()["error"])
        # Inflating all of it would take far longer than stopping at the
        # 64 MiB body limit; a generous bound against a hang.
        self.assertLess(elapsed, 10.0)
        self.assertTrue(self.server.alive())

    def test_damaged_gzip_body_is_400(self):
        good = gzip.compress(body_for(self.images[11:12]))
        damaged = good[:20] + bytes(b ^ 0x55 for b in good[20:40]) + \
            good[40:]
        for body in (b"not gzip at all", damaged, good[:len(good) // 2]):
            resp = self.infer("mlp_plain", body,
                              {"Content-Encoding": "gzip"})
            self.assertEqual(resp.status, 400, resp)
            self.assertTrue(resp.json()["error"].startswith("body: "),
                            resp)

    def test_unknown_content_encoding_is_415(self):
        resp = self.infer("mlp_plain", b"xxxx", {"Content-Encoding": "br"})
        self.assertEqual(resp.status, 415, resp)
        self.assertIn("'br'", resp.json()["error"])
        resp = self.infer("mlp_plain", body_for(self.images[:1]),
                          {"Content-Encoding": "identity"})
        self.assertEqual(resp.status, 200, resp)


if __name__ == "__main__":
    unittest.main()

"""
Model packages over HTTP: a package made here with tarfile or zipfile
from models/fashion_mlp is uploaded into an empty repository and answers
as PyTorch did (models/fashion_mlp/reference.txt); the downloaded package
holds the same bytes and `bms predict` on it answers alike; bad packages
are refused with 400 while the version uploaded before keeps serving and
the repository folder stays as it was.
"""

import gzip
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import threading
import unittest
import zipfile

import bmstest

NAME = "fashion_mlp"
MLP_DIR = os.path.join(bmstest.MODELS, NAME)
N_IMAGES = 20
PACKAGE_PATH = "/v2/repository/models/%s/package" % NAME


def read(path):
    with open(path, "rb") as f:
        return f.read()


CONFIG = read(os.path.join(MLP_DIR, "config.json"))
MODEL = read(os.path.join(MLP_DIR, "1", "model.onnx"))


def tar_bytes(entries, mode="w:gz"):
    """A tar (mode "w") or tar.gz of entries: (name, bytes) for a file,
    (name, "dir") for a folder, (name, ("symlink", target)) for a link."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode=mode) as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.mode = 0o644
            if data == "dir":
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            elif isinstance(data, tuple):
                info.type = tarfile.SYMTYPE
                info.linkname = data[1]
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def zip_bytes(entries):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries:
            z.writestr(name, data)
    return out.getvalue()


def listing(root):
    """Every path under root with the size of each file, sorted."""
    rows = []
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            rows.append(os.path.relpath(os.path.join(dirpath, d), root) + "/")
        for f in filenames:
            p = os.path.join(dirpath, f)
            rows.append("%s %d" % (os.path.relpath(p, root),
                                   os.path.getsize(p)))
    return sorted(rows)


def classes(resp):
    return resp.json()["outputs"][0]["data"]


class PackageTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="bms-e2e-package-")
        cls.repo = os.path.join(cls.tmp, "repo")
        os.mkdir(cls.repo)
        images = bmstest.load_test_images()[:N_IMAGES]
        cls.body = bmstest.infer_body(images, [28, 28])
        cls.body_path = os.path.join(cls.tmp, "body.json")
        with open(cls.body_path, "wb") as f:
            f.write(cls.body)
        cls.reference = bmstest.model_reference(NAME)[:N_IMAGES]
        cls.server = bmstest.Server(repository=cls.repo)
        try:
            cls.server.start()
        except BaseException:
            cls.server.cleanup()
            shutil.rmtree(cls.tmp, ignore_errors=True)
            raise
        cls.client = cls.server.client()

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        try:
            cls.server.stop()
        finally:
            cls.server.cleanup()
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def put(self, data, content_type="application/gzip", headers=None):
        hdrs = {"Content-Type": content_type}
        if headers:
            hdrs.update(headers)
        return self.client.request("PUT", PACKAGE_PATH, data, hdrs)

    def upload_good(self):
        """Install version 1 from a tar.gz with a top folder."""
        pkg = tar_bytes([(NAME + "/", "dir"),
                         (NAME + "/config.json", CONFIG),
                         (NAME + "/1/", "dir"),
                         (NAME + "/1/model.onnx", MODEL)])
        resp = self.put(pkg)
        self.assertEqual(resp.status, 201, resp)
        self.assertEqual(resp.json(), {"name": NAME, "versions": [1]})

    def assert_serves_v1(self):
        resp = self.client.infer(NAME, self.body)
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.header("X-Model-Version"), "1")
        self.assertEqual(classes(resp), self.reference)

    def test_upload_tar_gz_answers_as_pytorch(self):
        self.upload_good()
        self.assert_serves_v1()
        self.assertEqual(listing(self.repo),
                         ["%s/" % NAME, "%s/1/" % NAME,
                          "%s/1/model.onnx %d" % (NAME, len(MODEL)),
                          "%s/config.json %d" % (NAME, len(CONFIG))])

    def test_upload_is_audited_and_indexed(self):
        self.upload_good()
        resp = self.client.get("/api/audit?target=%s" % NAME)
        self.assertEqual(resp.status, 200, resp)
        uploads = [a for a in resp.json()["audit"]
                   if a["action"] == "model.upload"]
        self.assertTrue(uploads, resp)
        detail = json.loads(uploads[0]["detail"])
        self.assertEqual(detail["versions"], [1])
        self.assertEqual(detail["status"], 201)
        resp = self.client.get("/v2/repository/index")
        self.assertEqual(resp.status, 200, resp)
        self.assertIn({"name": NAME, "version": "1", "state": "READY",
                       "reason": ""}, resp.json())

    def test_upload_zip_and_plain_tar_whatever_the_content_type(self):
        pkg = zip_bytes([("config.json", CONFIG), ("1/model.onnx", MODEL),
                         ("2/model.onnx", MODEL)])
        resp = self.put(pkg, content_type="application/octet-stream")
        self.assertEqual(resp.status, 201, resp)
        self.assertEqual(resp.json(), {"name": NAME, "versions": [1, 2]})
        resp = self.client.infer(NAME, self.body, version=2)
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(classes(resp), self.reference)

        # A plain tar with only version 1 replaces the whole folder.
        pkg = tar_bytes([("config.json", CONFIG), ("1/model.onnx", MODEL)],
                        mode="w")
        resp = self.put(pkg, content_type="application/zip")
        self.assertEqual(resp.status, 201, resp)
        self.assertFalse(os.path.exists(os.path.join(self.repo, NAME, "2")))
        self.assert_serves_v1()
        resp = self.client.infer(NAME, self.body, version=2)
        self.assertEqual(resp.status, 404, resp)

    def test_download_holds_the_same_model_and_predicts(self):
        self.upload_good()
        resp = self.client.get(PACKAGE_PATH)
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.header("Content-Type"), "application/gzip")
        self.assertEqual(resp.header("Content-Disposition"),
                         'attachment; filename="%s.tar.gz"' % NAME)
        with tarfile.open(fileobj=io.BytesIO(resp.body), mode="r:gz") as t:
            self.assertEqual(t.getnames(), [NAME + "/config.json",
                                            NAME + "/1/model.onnx"])
            got = t.extractfile(NAME + "/1/model.onnx").read()
            got_config = t.extractfile(NAME + "/config.json").read()
        self.assertEqual(got, MODEL)
        self.assertEqual(got_config, CONFIG)

        path = os.path.join(self.tmp, "download.tar.gz")
        with open(path, "wb") as f:
            f.write(resp.body)
        scratch = os.path.join(self.tmp, "scratch")
        os.makedirs(scratch, exist_ok=True)
        env = dict(os.environ, TMPDIR=scratch)
        proc = subprocess.run([bmstest.BMS_BIN, "predict", path, "--input",
                               self.body_path], capture_output=True,
                              timeout=60, env=env)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(json.loads(proc.stdout)["outputs"][0]["data"],
                         self.reference)
        # The package was unpacked under TMPDIR and removed afterwards.
        self.assertEqual(os.listdir(scratch), [])

    def test_download_of_unknown_model_is_404(self):
        resp = self.client.get("/v2/repository/models/nothing/package")
        self.assertEqual(resp.status, 404, resp)

    def test_bad_packages_are_400_and_the_old_version_serves(self):
        self.upload_good()
        before = listing(self.repo)
        good_tgz = tar_bytes([("config.json", CONFIG),
                              ("1/model.onnx", MODEL)])
        other_config = json.dumps({"name": "other"}).encode()
        cases = [
            ("dotdot", tar_bytes([("config.json", CONFIG),
                                  ("1/model.onnx", MODEL),
                                  ("../escape", b"x")]),
             "entry '../escape'"),
            ("absolute", tar_bytes([("/abs/1/model.onnx", MODEL)]),
             "absolute path"),
            ("deep", zip_bytes([("1/model.onnx", MODEL),
                                ("1/a/b/c", b"x")]),
             "deeper path"),
            ("symlink", tar_bytes([("1/model.onnx",
                                    ("symlink", "/etc/passwd"))]),
             "symbolic link"),
            ("wrong name", tar_bytes([("config.json", other_config),
                                      ("1/model.onnx", MODEL)]),
             "name 'other' is not the model name"),
            ("no model", zip_bytes([("config.json", CONFIG)]),
             "no <version>/model.onnx"),
            ("broken v2", tar_bytes([("config.json", CONFIG),
                                     ("1/model.onnx", MODEL),
                                     ("2/model.onnx", b"not onnx")]),
             "version 2 does not load"),
            ("garbage", b"this is no archive" * 10, "not a tar"),
            ("truncated", good_tgz[:len(good_tgz) // 2], "damaged archive"),
        ]
        for what, pkg, needle in cases:
            with self.subTest(what):
                resp = self.put(pkg)
                self.assertEqual(resp.status, 400, resp)
                self.assertIn(needle, resp.json()["error"])
                self.assertEqual(listing(self.repo), before)
                self.assert_serves_v1()
        resp = self.client.get("/v2/models/%s" % NAME)
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.json()["versions"], ["1"])

    def test_concurrent_uploads_are_201_or_409_and_leave_one_model(self):
        pkg = tar_bytes([("config.json", CONFIG), ("1/model.onnx", MODEL)])
        statuses = []

        def one():
            client = self.server.client()
            try:
                resp = client.request("PUT", PACKAGE_PATH, pkg,
                                      {"Content-Type": "application/gzip"})
                statuses.append((resp.status, resp.body))
            finally:
                client.close()

        threads = [threading.Thread(target=one) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(len(statuses), 6)
        for status, body in statuses:
            self.assertIn(status, (201, 409), body)
            if status == 409:
                self.assertIn(b"another upload of this model is running",
                              body)
        self.assertIn(201, [st for st, _ in statuses])
        self.assertEqual(sorted(os.listdir(self.repo)), [NAME])
        self.assert_serves_v1()

    def test_gzip_encoded_tar_body_is_accepted(self):
        tar = tar_bytes([("config.json", CONFIG), ("1/model.onnx", MODEL)],
                        mode="w")
        resp = self.put(gzip.compress(tar), content_type="application/x-tar",
                        headers={"Content-Encoding": "gzip"})
        self.assertEqual(resp.status, 201, resp)
        self.assert_serves_v1()


class PackageAuthTest(unittest.TestCase):
    """Upload is for admins; download for keys allowed the model."""

    @classmethod
    def setUpClass(cls):
        cls.repo = tempfile.mkdtemp(prefix="bms-e2e-package-auth-")
        shutil.copytree(MLP_DIR, os.path.join(cls.repo, NAME),
                        ignore=shutil.ignore_patterns("*.txt"))
        cls.server = bmstest.Server(repository=cls.repo)
        try:
            cls.server.start()
            cls.client = cls.server.client()
            cls.admin = cls.make_key({"name": "root", "role": "admin"})
            cls.user = cls.make_key({"name": "u", "role": "user",
                                     "models": [NAME]}, cls.admin)
            cls.stranger = cls.make_key({"name": "s", "role": "user",
                                         "models": ["other"]}, cls.admin)
        except BaseException:
            cls.server.cleanup()
            shutil.rmtree(cls.repo, ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        try:
            cls.server.stop()
        finally:
            cls.server.cleanup()
            shutil.rmtree(cls.repo, ignore_errors=True)

    @classmethod
    def make_key(cls, fields, token=None):
        hdrs = {"Authorization": "Bearer " + token} if token else {}
        resp = cls.client.request("POST", "/api/keys", json.dumps(fields),
                                  hdrs)
        if resp.status != 201:
            raise AssertionError("key not made: %r" % resp)
        return resp.json()["token"]

    def call(self, method, token, body=None):
        hdrs = {"Content-Type": "application/gzip"}
        if token:
            hdrs["Authorization"] = "Bearer " + token
        return self.client.request(method, PACKAGE_PATH, body, hdrs)

    def test_roles_and_allow_lists(self):
        pkg = tar_bytes([("config.json", CONFIG), ("1/model.onnx", MODEL)])
        self.assertEqual(self.call("PUT", None, pkg).status, 401)
        self.assertEqual(self.call("PUT", self.user, pkg).status, 403)
        resp = self.call("PUT", self.admin, pkg)
        self.assertEqual(resp.status, 201, resp)
        self.assertEqual(self.call("GET", None).status, 401)
        self.assertEqual(self.call("GET", self.stranger).status, 403)
        resp = self.call("GET", self.user)
        self.assertEqual(resp.status, 200, resp)
        with tarfile.open(fileobj=io.BytesIO(resp.body), mode="r:gz") as t:
            got = t.extractfile(NAME + "/1/model.onnx").read()
        self.assertEqual(got, MODEL)


if __name__ == "__main__":
    unittest.main()

"""Bucket paths (``gs://``) end to end, offline, against a local GCS emulator.

``gcp-storage-emulator`` (pure Python, in-memory) serves the GCS JSON API on loopback. Both storage clients
xlt's files go through are pointed at it, so every read and write below really takes the ``gs://`` code
paths: tensorstore (orbax's array data; ``TENSORSTORE_GCS_HTTP_URL``) and etils.epath with its fsspec backend
(``gcsfs``, ``STORAGE_EMULATOR_HOST``; ``EPATH_USE_TF=false``) for orbax's metadata files and every file xlt
writes itself. What is not exercised: TensorFlow's own GCS client (tf.io.gfile), which epath uses by default
when TensorFlow is installed; its endpoint cannot be redirected (docs/SCALE.md "Bucket paths").

The objects are inspected with a separate gcsfs client and the working directory is checked to stay empty,
so a URL silently turned into a local path (``Path('gs://b')`` is ``gs:/b``) fails these tests.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from http import HTTPStatus
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest

from xlt import checkpoints, cli, files, paths, train
from xlt.data import vocab as vocab_lib
from xlt.errors import CheckpointError, ConfigError

emulator_server = pytest.importorskip("gcp_storage_emulator.server", reason="test extra: gcp-storage-emulator")
pytest.importorskip("gcsfs", reason="test extra: gcsfs (epath's fsspec backend for gs://)")

BUCKET = "xlt-test"
ENV = ("STORAGE_EMULATOR_HOST", "TENSORSTORE_GCS_HTTP_URL", "GOOGLE_AUTH_TOKEN_FOR_TESTING", "EPATH_USE_TF")


class Emulator:
    """The emulator's GCS JSON API read with plain HTTP: an inspector independent of the clients under test."""

    def __init__(self, url: str):
        self.url = url

    def _call(self, method: str, path: str, data: bytes | None = None) -> bytes:
        request = urllib.request.Request(self.url + path, data=data, method=method)
        try:
            with urllib.request.urlopen(request, timeout=30) as r:
                return r.read()
        except urllib.error.HTTPError as e:
            if e.code == 404:
                raise FileNotFoundError(path) from e
            raise

    def find(self, prefix: str) -> list[str]:
        out = json.loads(self._call("GET", f"/storage/v1/b/{BUCKET}/o?prefix={quote(prefix + '/', safe='')}"))
        return sorted(o["name"].removeprefix(prefix + "/") for o in out.get("items", []))

    def cat(self, name: str) -> bytes:
        return self._call("GET", f"/download/storage/v1/b/{BUCKET}/o/{quote(name, safe='')}?alt=media")

    def pipe(self, name: str, data: bytes) -> None:
        self._call("POST", f"/upload/storage/v1/b/{BUCKET}/o?uploadType=media&name={quote(name, safe='')}", data)

    def rm(self, prefix: str) -> None:
        names = [prefix] if not self.find(prefix) else [f"{prefix}/{n}" for n in self.find(prefix)]
        for name in names:
            self._call("DELETE", f"/storage/v1/b/{BUCKET}/o/{quote(name, safe='')}")


def _gcs_generations(server_module) -> dict:
    """Give the emulator two behaviours of real GCS that tensorstore's gcs driver relies on (its OCDBT manifest
    is read and written conditionally) and that gcp-storage-emulator 2026.7 lacks: the object generation in
    the ``x-goog-generation`` header of a download, and the ``ifGenerationMatch``/``ifGenerationNotMatch``
    preconditions (412 / 304) on reads, uploads and deletes. Returns the replaced handlers, for ``_restore``.

    tensorstore downloads with ``GET /storage/v1/b/<bucket>/o/<object>?alt=media``, which the emulator routes to
    its metadata handler ``get``; that one calls the module's own ``download`` directly, so replacing only the
    ``/download/...`` route's handler is not enough: a download through ``get`` came back without a
    generation header, which tensorstore reads as generation 0. Its next conditional read of that object
    (OCDBT re-reading its manifest, ``ifGenerationNotMatch=0``) is then refused before any request as
    "Malformed StorageGeneration" (0 is not a GCS generation). Whether the cached manifest generation came
    from such a read or from a write's JSON response depended on timing, hence a flaky test. So ``get`` is
    replaced too. The failure statuses are ``HTTPStatus`` members: the emulator's response writer reads
    ``status.phrase``, and a bare ``412`` made it drop the connection instead of answering."""
    from gcp_storage_emulator.exceptions import NotFound
    from gcp_storage_emulator.handlers import objects as handlers

    def generation(storage, bucket: str, name: str) -> str:
        try:
            return str(storage.get_file_obj(bucket, name)["generation"])
        except NotFound:
            return "0"

    def preconditions_hold(request, response, now: str) -> bool:
        """GCS's generation preconditions on an object whose generation is ``now`` ("0": no object); when one
        fails, the response is 412 (ifGenerationMatch) or 304 (ifGenerationNotMatch) and False returned."""
        query = request.query
        if "ifGenerationMatch" in query and query["ifGenerationMatch"][0] != now:
            response.status = HTTPStatus.PRECONDITION_FAILED
            return False
        if "ifGenerationNotMatch" in query and query["ifGenerationNotMatch"][0] == now:
            response.status = HTTPStatus.NOT_MODIFIED
            return False
        return True

    def download(request, response, storage, *args, **kwargs):
        bucket, name = request.params["bucket_name"], request.params["object_id"]
        now = generation(storage, bucket, name)
        if not preconditions_hold(request, response, now):
            return
        handlers.download(request, response, storage, *args, **kwargs)
        if now != "0":
            response["x-goog-generation"] = now
            response["x-goog-metageneration"] = "1"

    def get(request, response, storage, *args, **kwargs):
        if request.query.get("alt", [""])[0] == "media":
            return download(request, response, storage, *args, **kwargs)
        if "softDeleted" not in request.query and not preconditions_hold(
                request, response, generation(storage, request.params["bucket_name"], request.params["object_id"])):
            return
        return handlers.get(request, response, storage, *args, **kwargs)

    def insert(request, response, storage, *args, **kwargs):
        query = request.query
        if "name" in query and not preconditions_hold(
                request, response, generation(storage, request.params["bucket_name"], query["name"][0])):
            return
        handlers.insert(request, response, storage, *args, **kwargs)

    def delete(request, response, storage, *args, **kwargs):
        if not preconditions_hold(
                request, response, generation(storage, request.params["bucket_name"], request.params["object_id"])):
            return
        handlers.delete(request, response, storage, *args, **kwargs)

    replacements = {handlers.download: download, handlers.get: get, handlers.insert: insert, handlers.delete: delete}
    replaced = {}
    for _, table in server_module.HANDLERS:
        for method, handler in list(table.items()):
            new = replacements.get(handler)
            if new is not None:
                replaced[(id(table), method)] = (table, handler)
                table[method] = new
    return replaced


def _restore(replaced: dict) -> None:
    for (_, method), (table, handler) in replaced.items():
        table[method] = handler


@pytest.fixture(scope="module")
def gcs():
    """The emulator on a free loopback port and the environment that sends gs:// to it; yields an
    ``Emulator`` for inspecting objects."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    replaced = _gcs_generations(emulator_server)
    server = emulator_server.create_server("127.0.0.1", port, in_memory=True, default_bucket=BUCKET)
    server.start()
    url = f"http://127.0.0.1:{port}"
    saved = {k: os.environ.get(k) for k in ENV}
    os.environ.update({"STORAGE_EMULATOR_HOST": url, "TENSORSTORE_GCS_HTTP_URL": url,
                       "GOOGLE_AUTH_TOKEN_FOR_TESTING": "emulator", "EPATH_USE_TF": "false"})
    # epath decides once per process whether gs:// goes through TensorFlow (functools.cache on its "is TF
    # installed" check, which honours EPATH_USE_TF): an earlier test in the same process that touched any epath
    # path has already decided "TF". Forget that decision here and again on the way out.
    _forget_epath_backend()
    try:
        yield Emulator(url)
    finally:
        server.stop()
        _restore(replaced)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        _forget_epath_backend()


def _forget_epath_backend() -> None:
    from etils.epath import gpath
    gpath._is_tf_installed.cache_clear()


@pytest.fixture
def cwd(tmp_path, monkeypatch):
    """An empty working directory that must stay empty (no 'gs:' directory from a collapsed URL)."""
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    assert list(tmp_path.iterdir()) == []


def objects(gcs: Emulator, prefix: str) -> list[str]:
    return gcs.find(prefix)


def new_process() -> None:
    """Forget the listing cache of epath's gcsfs client, as a restarted process would: objects changed behind
    its back (by the Emulator client) are otherwise not seen in this process."""
    from etils.epath import backend

    backend.fsspec_backend.fs(f"gs://{BUCKET}").invalidate_cache()


def test_paths_and_atomic_writes_on_a_bucket(gcs, cwd):
    url = f"gs://{BUCKET}/files/a.json"
    assert paths.is_url(url) and not paths.is_url("/tmp/x") and paths.scheme(url) == "gs"
    assert str(paths.path(url)) == url and str(paths.path(url).parent / "b") == f"gs://{BUCKET}/files/b"
    files.atomic_write_text(url, json.dumps({"v": 1}))
    assert json.loads(gcs.cat("files/a.json")) == {"v": 1}
    assert files.read_json_object(url, "test file") == {"v": 1}
    # a failure inside the block leaves the previous object and no temporary object behind
    with pytest.raises(RuntimeError):
        with files.atomic_path(url) as tmp:
            tmp.write_text("half")
            raise RuntimeError("writer died")
    assert json.loads(gcs.cat("files/a.json")) == {"v": 1}
    assert objects(gcs, "files") == ["a.json"]
    files.atomic_copy(Path(__file__), f"gs://{BUCKET}/files/copy.py")
    assert gcs.cat("files/copy.py") == Path(__file__).read_bytes()
    with pytest.raises(CheckpointError, match="not found"):
        files.read_json_object(f"gs://{BUCKET}/files/missing.json", "test file")
    with pytest.raises(ConfigError, match="unsupported URL scheme ftp://"):
        paths.path("ftp://host/x")
    with pytest.raises(ConfigError, match="cannot be appended"):
        paths.open_file(url, "a")


def test_tensorstore_reopens_an_ocdbt_database_in_the_bucket(gcs, cwd):
    """The emulator's imitation of GCS generations, as tensorstore's OCDBT driver (orbax's array data) uses
    them: a database written through one context is read and extended through fresh ones, as a restarted job
    reads its checkpoint. With the generation missing from downloads through the metadata route (the earlier
    imitation), the second read failed every time with "Malformed StorageGeneration"."""
    import tensorstore as ts

    spec = {"driver": "ocdbt", "base": f"gs://{BUCKET}/ocdbt/"}
    kv = ts.KvStore.open(spec, context=ts.Context()).result()
    kv.write("a", b"1").result()
    kv.write("b", b"2").result()
    again = ts.KvStore.open(spec, context=ts.Context()).result()
    assert again.read("a").result().value == b"1" and again.read("b").result().value == b"2"
    again.write("c", b"3").result()
    third = ts.KvStore.open(spec, context=ts.Context()).result()
    assert [third.read(k).result().value for k in ("a", "b", "c")] == [b"1", b"2", b"3"]
    assert "manifest.ocdbt" in objects(gcs, "ocdbt")


def _tokenizer_json(path: Path) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = ["in", "the", "beginning", "god", "created"]
    tok = Tokenizer(models.WordLevel({"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(words)}},
                                     unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    path.parent.mkdir(parents=True, exist_ok=True)
    tok.save(str(path))
    return path


def losses(records) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in records if "loss" in r}


ALONE = "XLT_BUCKET_TEST_ALONE"


def run_alone(test: str) -> None:
    """Run ``test`` of this file alone in a new pytest process, as a training job runs: the process starts with
    no tensorstore, orbax or epath state from earlier tests (the GCS environment variables are read when a
    client is first made, and epath caches its backend choice)."""
    done = subprocess.run([sys.executable, "-m", "pytest", f"{__file__}::{test}", "-q", "-p", "no:cacheprovider"],
                          env={**os.environ, ALONE: test}, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0 and "1 passed" in done.stdout.splitlines()[-1], done.stdout[-4000:]


def alone(test):
    """Mark ``test`` as one that runs only inside ``run_alone``."""
    return pytest.mark.skipif(os.environ.get(ALONE) != test.__name__,
                              reason="run alone in its own process by its *_in_its_own_process test")(test)


@pytest.mark.slow  # a training run written to the emulator, resumed, probed and evaluated: about 40 s
def test_train_resume_probe_and_eval_from_a_bucket_in_its_own_process():
    run_alone("test_train_resume_probe_and_eval_from_a_bucket")


@alone
def test_train_resume_probe_and_eval_from_a_bucket(gcs, cwd):
    """MODEL_DIR=gs://…: checkpoints, config.json/config.gin, metrics.jsonl and TensorBoard events land in the
    bucket; a restart resumes from the bucket bitwise; probe and evaluation read the checkpoint from it and
    evaluation writes its output_dir there."""
    run = f"gs://{BUCKET}/run"
    argv = ["--gin_file=models/gpt_tiny.gin", "--gin_file=runs/pretrain.gin", "--gin.BATCH_SIZE=8",
            "--gin.SEQ_LEN=64", "--gin.learning_rate_schedule.warmup_steps=2", "--gin.TRAIN_STEPS=4",
            "--gin.CHECKPOINT_EVERY=2", f"--gin.MODEL_DIR='{run}'", "--gin.MIXTURE_OR_TASK_NAME='bible_en_prefix'",
            "--gin.train.log_every=1", "--gin.train.keep_checkpoints=5", "--gin.train.async_checkpoints=False",
            "--gin.train.quiet=True"]
    assert cli.main(train.main, argv) == 0
    names = objects(gcs, "run")
    assert {"config.json", "config.gin", "metrics.jsonl"} <= set(names)
    assert any(n.startswith("tb/events.out.tfevents") for n in names), names
    for step in (2, 4):
        assert f"checkpoints/{step}/commit_success.txt" in names and \
            any(n.startswith(f"checkpoints/{step}/state/") for n in names)
    assert json.loads(gcs.cat("run/config.json"))["model_dir"] == run
    first = losses(map(json.loads, gcs.cat("run/metrics.jsonl").decode().splitlines()))
    assert sorted(first) == [1, 2, 3, 4]

    gcs.rm("run/checkpoints/4")  # as if the job died after saving step 2
    new_process()
    assert cli.main(train.main, argv) == 0
    resumed = losses(map(json.loads, gcs.cat("run/metrics.jsonl").decode().splitlines()))
    assert resumed == first  # steps 3 and 4 recomputed from the bucket's step 2: the very same floats

    from xlt import probe
    from xlt.configs import EvalConfig
    from xlt.data import tasks as data_tasks
    from xlt.evaluation import evaluate as ev

    p = probe.load(run)
    assert p.meta.step == 4 and str(p.meta.root) == run
    assert np.all(np.isfinite(p.score(["in the beginning"], [" God"])))
    out = f"gs://{BUCKET}/eval"
    ev.evaluate(EvalConfig(checkpoint=run, output_dir=out, quiet=True, vocabulary=data_tasks.vocabulary(kind="byte"),
                           languages=("en",), tasks=("verse_ending_choice",), max_items_per_task=2,
                           max_new_tokens=4, batch_size=4))
    assert set(objects(gcs, "eval")) == {"records.json", "report.json", "report.md", "predictions.jsonl"}
    assert json.loads(gcs.cat("eval/records.json"))


def test_vocabulary_file_and_params_checkpoint_in_a_bucket(gcs, cwd, tmp_path_factory):
    """The vocabulary file a run keeps in MODEL_DIR, and a params-only checkpoint (save_params, load_params,
    read_meta, vocabulary_of), all at gs:// URLs; an incomplete one (no meta.json) is refused."""
    src = _tokenizer_json(tmp_path_factory.mktemp("tok") / "tokenizer.json")
    vocab = vocab_lib.TokenizersVocabulary(src, eos_id=1, unk_id=2)
    record = vocab_lib.record_of(vocab)
    run = f"gs://{BUCKET}/vocabrun"
    checkpoints.keep_vocabulary_file(run, vocab, record)
    assert gcs.cat(f"vocabrun/{record.file}") == src.read_bytes()
    checkpoints.keep_vocabulary_file(run, vocab, record)  # same file already there: skipped, still intact
    assert objects(gcs, "vocabrun") == [record.file]

    from xlt.models import ModelConfig

    cfg = ModelConfig(vocab_size=record.size, d_model=8, num_layers=1, num_heads=2, d_ff=16)
    params = {"decoder": {"w": np.arange(12, dtype=np.float32).reshape(3, 4), "b": np.ones(4, np.float32)}}
    meta = checkpoints.CheckpointMeta(kind="params", model=cfg, vocabulary=record)
    where = f"gs://{BUCKET}/params"
    out = checkpoints.save_params(where, params, meta, extra_files={record.file: src})
    assert str(out) == where
    assert {"meta.json", record.file} <= set(objects(gcs, "params"))
    assert any(o.startswith("params/") for o in objects(gcs, "params"))
    loaded, got = checkpoints.load_params(where)
    np.testing.assert_array_equal(loaded["decoder"]["w"], params["decoder"]["w"])
    assert got.vocabulary == record and got.model == cfg and str(got.root) == where
    assert checkpoints.read_meta(where) == got
    again = checkpoints.vocabulary_of(got)  # read through a local copy of the object, sha256 checked
    assert again.vocab_size == vocab.vocab_size and again.encode("god created") == vocab.encode("god created")
    with pytest.raises(CheckpointError, match="already exists"):
        checkpoints.save_params(where, params, meta, extra_files={record.file: src})
    # a tampered vocabulary object is refused by its digest
    gcs.pipe(f"params/{record.file}", src.read_bytes().replace(b"god", b"dog"))
    new_process()
    with pytest.raises(CheckpointError, match="sha256"):
        checkpoints.vocabulary_of(checkpoints.read_meta(where))
    # without its commit marker (meta.json) the directory is incomplete
    gcs.rm("params/meta.json")
    new_process()
    with pytest.raises(CheckpointError, match="incomplete"):
        checkpoints.load_params(where)


def test_transfer_matrix_results_dir_stays_a_url():
    """The matrix's folders derive from results_dir: a URL must stay one (not Path's collapsed 'gs:/…')."""
    from experiments import transfer_matrix as tm

    files_, bindings, search, _ = cli.parse_gin_args(["--gin_file=experiments/transfer_tiny_test.gin",
                                                      f"--gin.transfer_matrix.results_dir='gs://{BUCKET}/results'"])
    cli.load_gin(files_, bindings, search)
    cfg = tm.MatrixConfig.from_gin()
    assert str(cfg.root) == f"gs://{BUCKET}/results/{cfg.name}"
    assert str(cfg.base_path) == f"gs://{BUCKET}/results/{cfg.name}/base"
    assert str(cfg.tuned_dir("en")) == f"gs://{BUCKET}/results/{cfg.name}/tuned/en"
    assert str(cfg.tuned_dir("en").relative_to(cfg.root)) == "tuned/en"


@pytest.mark.slow  # a 1x1 matrix (pretrain, tune, evaluate two rows) in the emulator: about a minute
def test_transfer_matrix_in_a_bucket_in_its_own_process():
    run_alone("test_transfer_matrix_in_a_bucket")


@alone
def test_transfer_matrix_in_a_bucket(gcs, cwd):
    """A whole transfer-matrix run with results_dir=gs://…: the base and the tuned row are trained into the
    bucket, the cells evaluated from there, matrix.json/matrix.md, the figures and the compilation cache written
    there, nothing in the working directory; a re-run finds every cell done in the bucket and evaluates nothing."""
    import io

    from experiments import transfer_matrix as tm

    argv = ["--gin_file=experiments/transfer_tiny_test.gin",
            f"--gin.transfer_matrix.results_dir='gs://{BUCKET}/results'", "--gin.transfer_matrix.train_sets=['en']",
            "--gin.transfer_matrix.test_languages=['en']",
            "--gin.transfer_matrix.eval_tasks=['country_name_pair']", "--gin.transfer_matrix.seen_tasks=None"]
    files_, bindings, search, _ = cli.parse_gin_args(argv)
    cli.load_gin(files_, bindings, search)
    cfg = tm.MatrixConfig.from_gin()
    log = io.StringIO()
    matrix = tm.run(cfg, out=log)
    names = set(objects(gcs, "results/tiny"))
    for name in ("matrix.json", "matrix.md", "matrix_score.png", "matrix_gain.png"):
        assert name in names, sorted(names)
    assert any(n.startswith(".jax_cache/") for n in names), sorted(names)  # the compilation cache too
    assert "base/checkpoints/4/commit_success.txt" in names and "tuned/en_s0/checkpoints/3/commit_success.txt" in names
    for row in (tm.BASE_ROW, "en_s0"):
        assert {f"eval/{row}/en/{n}" for n in ("records.json", "predictions.jsonl", tm.CELL_FILE)} <= names
    saved = json.loads(gcs.cat("results/tiny/matrix.json"))
    assert [r["row"] for r in saved["rows"]] == [tm.BASE_LABEL, "en"]
    assert all(0.0 <= r["cells"]["en"]["mean"] <= 1.0 for r in saved["rows"])
    assert "base (untuned)" in gcs.cat("results/tiny/matrix.md").decode()
    new_process()
    again = io.StringIO()
    rerun = tm.run(cfg, out=again, hook=lambda row, lang: pytest.fail(f"re-evaluated {row}/{lang}"))
    assert "] evaluating " not in again.getvalue() and "] tuning " not in again.getvalue(), again.getvalue()
    assert rerun["rows"] == matrix["rows"]


def test_benchmark_source_and_instruction_data_in_a_bucket(gcs, cwd):
    """Data paths: a benchmark source (jsonl and parquet shards in the hub layout) and instruction-data sources
    (the files provider, and a published layout read through local_root) at gs:// URLs; a missing URL is a
    one-line DataError."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    from xlt import benchmarks
    from xlt.benchmarks import sources
    from xlt.errors import DataError
    from xlt.instruct.providers.files import FilesProvider
    from xlt.instruct.providers.multialpaca import MultiAlpacaProvider

    nli = [{"premise": f"The cat sat {i}.", "hypothesis": "A cat sat.", "label": i % 3} for i in range(4)]
    gcs.pipe("xnli/en/test.jsonl", "\n".join(json.dumps(r) for r in nli[:2]).encode())
    shard = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(nli[2:]), shard)
    gcs.pipe("xnli/en/test-00000-of-00001.parquet", shard.getvalue())
    new_process()
    sources.clear_cache()
    assert benchmarks.get("xnli", source=f"gs://{BUCKET}/xnli").records("en", "test") == nli
    with pytest.raises(DataError, match="no fr/test.jsonl"):
        benchmarks.get("xnli", source=f"gs://{BUCKET}/xnli").records("fr", "test")
    with pytest.raises(DataError, match="does not exist"):
        benchmarks.get("xnli", source=f"gs://{BUCKET}/nope").records("en", "test")

    rows = [{"inputs": f"q{i}", "targets": f"a{i}"} for i in range(3)]
    gcs.pipe("instr/qa/train.jsonl", "\n".join(json.dumps(r) for r in rows).encode())
    gcs.pipe("instr/qa/test.jsonl", json.dumps(rows[0]).encode())
    gcs.pipe("alpaca/ko.jsonl", json.dumps({"instruction": "i", "input": "", "output": "o"}).encode())
    new_process()
    files_ = FilesProvider(source=f"gs://{BUCKET}/instr", lang="ko")
    assert files_.languages() == ("ko",) and files_.splits("ko") == ("train", "test")
    assert [t.name for t in files_.tasks("ko")] == ["qa"]
    assert [e["inputs"] for e in files_.examples("qa", "ko", "train")] == ["q0", "q1", "q2"]
    alpaca = MultiAlpacaProvider(source=f"gs://{BUCKET}/alpaca")
    assert alpaca.languages() == ("ko",) and alpaca.size("multialpaca", "ko") == 1
    with pytest.raises(DataError, match="does not exist"):
        FilesProvider(source=f"gs://{BUCKET}/no-such", lang="ko").languages()


def test_moving_a_tree_hf_tokenizer_and_matrix_base_in_a_bucket(gcs, cwd, tmp_path_factory):
    """Checkpointer._set_aside of an unreadable step on a bucket (paths.move_tree: copy each object, delete), the
    harness's hf/ tokenizer lookup for a URL checkpoint, and a URL base_checkpoint passing the matrix's
    validation (a missing one refused)."""
    for name in ("a/x", "a/sub/y", "commit_success.txt"):  # a finished step, as orbax marks one on GCS
        gcs.pipe(f"mv/checkpoints/6/{name}", name.encode())
    new_process()
    ck = checkpoints.Checkpointer(f"gs://{BUCKET}/mv/checkpoints", async_save=False)
    assert ck.latest_step() == 6
    ck._set_aside(6)  # what restore_latest does with an unreadable step
    new_process()
    assert objects(gcs, "mv") == ["checkpoints.unreadable/6/a/sub/y", "checkpoints.unreadable/6/a/x",
                                  "checkpoints.unreadable/6/commit_success.txt"]
    assert gcs.cat("mv/checkpoints.unreadable/6/a/sub/y") == b"a/sub/y" and ck.latest_step() is None
    ck.close()

    from xlt import harness

    local = tmp_path_factory.mktemp("hf")
    src = _tokenizer_json(local / "tokenizer.json")
    (local / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "PreTrainedTokenizerFast",
                                                             "eos_token": "</s>", "pad_token": "<pad>"}))
    paths.copy_tree(local, f"gs://{BUCKET}/imported/hf")  # an import, with a fine-tuned checkpoint below it
    gcs.pipe("imported/tuned/meta.json", b"{}")
    new_process()
    tok = harness._load_tokenizer(f"gs://{BUCKET}/imported/tuned")
    assert tok is not None and tok("god created")["input_ids"] == [6, 7], src
    assert harness._load_tokenizer(f"gs://{BUCKET}/mv") is None

    from experiments import transfer_matrix as tm

    kwargs = dict(name="m", train_sets=("en",), test_languages=("en", "ko"), eval_tasks=("country_name_pair",))
    tm.MatrixConfig(base_checkpoint=f"gs://{BUCKET}/imported", **kwargs).validate()
    with pytest.raises(ConfigError, match="base_checkpoint"):
        tm.MatrixConfig(base_checkpoint=f"gs://{BUCKET}/absent", **kwargs).validate()


def test_vocabulary_path_in_a_bucket(gcs, cwd, tmp_path_factory):
    """A run's vocabulary.path at a gs:// URL (sentencepiece and tokenizers kinds; the tokenizer_config.json
    beside a tokenizer.json comes along and names its EOS): the vocabulary and its record equal those of the
    same file read locally; a missing URL is a one-line ConfigError; the recorded file of a bucket checkpoint
    is read (sha256 checked) through vocabulary_from_record."""
    import sentencepiece as spm

    local = tmp_path_factory.mktemp("vocabs")
    tok = _tokenizer_json(local / "tok" / "tokenizer.json")
    (local / "tok" / "tokenizer_config.json").write_text(json.dumps({"eos_token": "</s>", "unk_token": "<unk>"}))
    text = local / "text.txt"
    text.write_text("\n".join(["in the beginning god created the heaven and the earth"] * 20) + "\n")
    spm.SentencePieceTrainer.train(input=str(text), model_prefix=str(local / "spm"), vocab_size=20,
                                   model_type="unigram", minloglevel=2)
    paths.copy_tree(local / "tok", f"gs://{BUCKET}/vocab/tok")
    paths.copy_file(local / "spm.model", f"gs://{BUCKET}/vocab/spm.model")
    new_process()

    for kind, url, path in (("tokenizers", f"gs://{BUCKET}/vocab/tok/tokenizer.json", tok),
                            ("sentencepiece", f"gs://{BUCKET}/vocab/spm.model", local / "spm.model")):
        remote, here = vocab_lib.vocabulary(kind=kind, path=url), vocab_lib.vocabulary(kind=kind, path=str(path))
        assert remote.vocab_size == here.vocab_size and remote.eos_id == here.eos_id
        assert remote.encode("god created the earth") == here.encode("god created the earth")
        assert vocab_lib.record_of(remote) == vocab_lib.record_of(here)
        assert not paths.is_url(vocab_lib.source_file(remote))  # read through a local copy
    assert vocab_lib.vocabulary(kind="tokenizers", path=f"gs://{BUCKET}/vocab/tok/tokenizer.json").eos_id == 1
    with pytest.raises(ConfigError, match="sentencepiece model not found: gs://"):
        vocab_lib.vocabulary(kind="sentencepiece", path=f"gs://{BUCKET}/vocab/none.model")
    with pytest.raises(ConfigError, match="Hugging Face tokenizer not found: gs://"):
        vocab_lib.vocabulary(kind="tokenizers", path=f"gs://{BUCKET}/vocab/none.json")

    record = vocab_lib.record_of(vocab_lib.vocabulary(kind="sentencepiece", path=str(local / "spm.model")))
    gcs.pipe(f"ckpt/{record.file}", (local / "spm.model").read_bytes())
    new_process()
    again = vocab_lib.vocabulary_from_record(record, f"gs://{BUCKET}/ckpt")
    assert again.encode("the heaven") == vocab_lib.vocabulary(kind="sentencepiece", path=str(local / "spm.model")
                                                              ).encode("the heaven")
    gcs.pipe(f"ckpt/{record.file}", (local / "spm.model").read_bytes()[:-1])
    new_process()
    with pytest.raises(CheckpointError, match=f"gs://{BUCKET}/ckpt/vocab/spm.model has sha256"):
        vocab_lib.vocabulary_from_record(record, f"gs://{BUCKET}/ckpt")


def test_lm_eval_task_directory_in_a_bucket(gcs, cwd, tmp_path_factory):
    """An lm_eval:<task> benchmark whose source is a gs:// directory of task YAML files: read (once per
    process) through a local copy, the URL kept as its source; a missing directory is a one-line ConfigError."""
    pytest.importorskip("lm_eval")
    sys.path.insert(0, str(Path(__file__).resolve().parent / "benchmarks"))
    from lm_eval_fixtures import write_tasks

    from xlt import benchmarks
    from xlt.benchmarks import harness_tasks

    tasks = write_tasks(tmp_path_factory.mktemp("lm_eval_tasks") / "tasks")
    url = f"gs://{BUCKET}/lm_eval/tasks"
    paths.copy_tree(tasks, url)
    new_process()
    mc = benchmarks.get("lm_eval:toy_mc_de", source=url)
    here = benchmarks.get("lm_eval:toy_mc_de", source=str(tasks))
    assert mc.source == url and not paths.is_url(mc._include)
    assert (mc.task, mc.language, mc.kind, mc.metrics, mc.split) == (here.task, here.language, here.kind,
                                                                      here.metrics, here.split)
    gen = benchmarks.get("lm_eval:toy_gen", source=url)
    assert gen.metrics == ("exact_match,strict", "exact_match,loose") and gen._include == mc._include  # one download
    assert "toy_mc_de" in harness_tasks.task_manager(mc._include).all_subtasks
    with pytest.raises(ConfigError, match="must be a directory of lm-eval task YAML files"):
        benchmarks.get("lm_eval:toy_mc_de", source=f"gs://{BUCKET}/lm_eval/none")


def test_convert_hf_between_buckets(gcs, cwd, tmp_path_factory, capsys):
    """tools/convert_hf.py (``xlt.interop.hf.run``) with gs:// input and output: an import from a bucket's HF
    directory into a bucket equals the import of the same files locally; its export to a bucket writes the same
    bytes as a local export; an existing output and a missing input are one-line errors (exit 2)."""
    transformers = pytest.importorskip("transformers")
    import torch

    from xlt.interop import hf

    local = tmp_path_factory.mktemp("convert")
    hf_dir = local / "hf"
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(transformers.GPT2Config(
        vocab_size=16, n_positions=32, n_embd=16, n_layer=1, n_head=2, bos_token_id=None, eos_token_id=1,
        pad_token_id=0))
    model.save_pretrained(hf_dir)
    _tokenizer_json(hf_dir / "tokenizer.json")
    (hf_dir / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "PreTrainedTokenizerFast",
                                                              "eos_token": "</s>", "pad_token": "<pad>"}))
    paths.copy_tree(hf_dir, f"gs://{BUCKET}/hf_in")
    new_process()

    assert cli.main(hf.run, ["import", f"--hf_dir=gs://{BUCKET}/hf_in", f"--out=gs://{BUCKET}/imported_x"]) == 0
    assert cli.main(hf.run, ["import", f"--hf_dir={hf_dir}", f"--out={local / 'imported_x'}"]) == 0
    names = objects(gcs, "imported_x")
    assert {"meta.json", "model.gin", "hf/tokenizer.json", "hf/tokenizer_config.json"} <= set(names), names
    remote, remote_meta = checkpoints.load_params(f"gs://{BUCKET}/imported_x")
    here, here_meta = checkpoints.load_params(local / "imported_x")
    assert jax_tree_equal(remote, here)
    assert remote_meta.vocabulary == here_meta.vocabulary and remote_meta.source["hf_dir"] == f"gs://{BUCKET}/hf_in"

    assert cli.main(hf.run, ["export", f"--xlt_dir=gs://{BUCKET}/imported_x", f"--out=gs://{BUCKET}/hf_out"]) == 0
    assert cli.main(hf.run, ["export", f"--xlt_dir={local / 'imported_x'}", f"--out={local / 'hf_out'}"]) == 0
    new_process()
    exported = objects(gcs, "hf_out")
    assert exported == sorted(p.name for p in (local / "hf_out").iterdir()) and "model.safetensors" in exported
    for name in exported:
        assert gcs.cat(f"hf_out/{name}") == (local / "hf_out" / name).read_bytes(), name

    capsys.readouterr()
    assert cli.main(hf.run, ["export", f"--xlt_dir=gs://{BUCKET}/imported_x", f"--out=gs://{BUCKET}/hf_out"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert cli.main(hf.run, ["import", f"--hf_dir=gs://{BUCKET}/no_hf", f"--out=gs://{BUCKET}/x2"]) == 2
    assert "directory not found: gs://" in capsys.readouterr().err and objects(gcs, "x2") == []


def jax_tree_equal(a, b) -> bool:
    import jax

    leaves_a, tree_a = jax.tree.flatten(a)
    leaves_b, tree_b = jax.tree.flatten(b)
    return tree_a == tree_b and all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(leaves_a, leaves_b))

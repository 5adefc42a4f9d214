"""xlt as an lm-evaluation-harness backend, against the harness's own Hugging Face backend (offline).

Tiny random GPT-2, Llama and T5 models are written with transformers and saved with tokenizers trained here
(byte-level BPE from the ``tokenizers`` library: GPT-2's with no special tokens added, Llama's adding BOS,
T5's appending EOS, as the real ones do), converted with ``tools/convert_hf.py`` and run on local harness
tasks the test writes (a ``multiple_choice`` task with an empty-context document, a ``loglikelihood`` task
whose targets include greedy continuations, a ``loglikelihood_rolling`` task with documents longer than
the window, a ``generate_until`` task with a stop sequence) through ``HFLM`` (CPU, float32) and through
``xlt``: per-request log-likelihoods within 1e-4, the same ``is_greedy`` flags and greedy generations, the
same metrics. Also: a mesh run equals the one-device run, ``run_harness_tasks``, the ``python -m
xlt.harness`` command line and the one-line errors.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
lm_eval = pytest.importorskip("lm_eval")
tokenizers = pytest.importorskip("tokenizers")

from lm_eval.api.instance import Instance  # noqa: E402
from lm_eval.models.huggingface import HFLM  # noqa: E402
from lm_eval.tasks import TaskManager  # noqa: E402

from xlt import harness  # noqa: E402
from xlt.errors import ConfigError  # noqa: E402
from xlt.interop import hf as hf_interop  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TOL = 1e-4
MAX_LENGTH = 24  # small, so long documents are windowed and long contexts truncated
TEXTS = ["The cat sat on the mat.", "A dog ran in the park!", "Das ist ein kleines Haus am See.",
         "Le chat est noir et le chien est blanc.", "Question: what is two plus two? Answer: four.",
         "El perro come pan con queso.", "one two three four five six seven eight nine ten",
         "The weather is nice today, isn't it?", "Wir gehen morgen in die Stadt."]
FAMILIES = ("gpt2", "llama", "t5")


# --- Models and tokenizers ----------------------------------------------------------------------------------


def _bpe(specials: list[str], template: tuple[str, str] | None):
    """A byte-level BPE trained on TEXTS; ``template`` adds special tokens around the text (TemplateProcessing)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>" if "<unk>" in specials else None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(TEXTS * 4, trainer)
    if template is None:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    else:
        used = [s for s in specials if s in template[0] + template[1]]
        tok.post_processor = processors.TemplateProcessing(single=template[0], pair=template[1],
                                                           special_tokens=[(s, tok.token_to_id(s)) for s in used])
    return tok


def _tokenizer(family: str):
    if family == "gpt2":  # GPT-2: <|endoftext|> is BOS and EOS, nothing is added when encoding
        return transformers.PreTrainedTokenizerFast(tokenizer_object=_bpe(["<|endoftext|>"], None),
                                                    bos_token="<|endoftext|>", eos_token="<|endoftext|>")
    if family == "llama":  # Llama: BOS prepended
        return transformers.PreTrainedTokenizerFast(tokenizer_object=_bpe(["<unk>", "<s>", "</s>"], ("<s> $A", "<s> $A <s> $B")),
                                                    bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    # T5: pad 0, EOS 1 appended, no BOS
    return transformers.PreTrainedTokenizerFast(tokenizer_object=_bpe(["<pad>", "</s>", "<unk>"], ("$A </s>", "$A </s> $B </s>")),
                                                pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


def _model(family: str, tok):
    torch.manual_seed({"gpt2": 0, "llama": 1, "t5": 2}[family])
    vocab = len(tok)
    if family == "gpt2":
        cfg = transformers.GPT2Config(vocab_size=vocab, n_positions=64, n_embd=32, n_layer=2, n_head=4,
                                      initializer_range=0.3, bos_token_id=tok.bos_token_id,
                                      eos_token_id=tok.eos_token_id)
        return transformers.GPT2LMHeadModel(cfg)
    if family == "llama":
        cfg = transformers.LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                                       num_attention_heads=4, num_key_value_heads=2, head_dim=8, rms_norm_eps=1e-5,
                                       initializer_range=0.3, max_position_embeddings=64,
                                       rope_parameters={"rope_type": "default", "rope_theta": 500.0},
                                       tie_word_embeddings=False, bos_token_id=tok.bos_token_id,
                                       eos_token_id=tok.eos_token_id, pad_token_id=None)
        return transformers.LlamaForCausalLM(cfg)
    # A tied head (T5 v1.0 style): with transformers 5 an untied T5 loads with tie_word_embeddings=True whatever
    # its config.json says, and HFLM's tie_weights() then replaces the checkpoint's lm_head by the embeddings.
    cfg = transformers.T5Config(vocab_size=vocab, d_model=32, d_kv=8, d_ff=48, num_layers=2, num_decoder_layers=2,
                                num_heads=4, relative_attention_num_buckets=8, relative_attention_max_distance=20,
                                feed_forward_proj="gated-gelu", tie_word_embeddings=True, dropout_rate=0.0,
                                initializer_factor=1.0, decoder_start_token_id=0, pad_token_id=0,
                                eos_token_id=tok.eos_token_id)
    return transformers.T5ForConditionalGeneration(cfg)


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    """family -> (hf directory, xlt checkpoint directory, transformers model)."""
    root = tmp_path_factory.mktemp("harness_models")
    out = {}
    for family in FAMILIES:
        tok = _tokenizer(family)
        model = _model(family, tok).eval()
        hf_dir, xlt_dir = root / f"{family}_hf", root / f"{family}_xlt"
        model.save_pretrained(hf_dir)
        tok.save_pretrained(hf_dir)
        hf_interop.import_hf(hf_dir, xlt_dir)
        out[family] = (hf_dir, xlt_dir, model)
    return out


# --- Tasks ------------------------------------------------------------------------------------------------


def _greedy_targets(model, tok, seq2seq: bool) -> list[tuple[str, str]]:
    """(context, target) pairs whose target tokenises (as the harness splits context and continuation) into
    exactly the model's greedy continuation: requests with is_greedy True."""
    found = []
    for context in ("The cat sat on the", "Das ist ein kleines", "Le chat est", "one two three", "A dog ran in",
                    "El perro come", "Wir gehen morgen"):
        ctx_ids = tok(context)["input_ids"]
        for n in (1, 2, 3):
            with torch.no_grad():
                out = model.generate(input_ids=torch.tensor([ctx_ids]), max_new_tokens=n, do_sample=False,
                                     pad_token_id=tok.pad_token_id or 0, eos_token_id=None)
            new = out[0, 1:].tolist() if seq2seq else out[0, len(ctx_ids):].tolist()
            if any(t in tok.all_special_ids for t in new):
                continue
            target = tok.decode(new)
            split = (tok(target, add_special_tokens=False)["input_ids"] if seq2seq
                     else tok(context + target)["input_ids"][len(ctx_ids):])
            if split == new:
                found.append((context, target))
                break
        if len(found) == 2:
            break
    return found


def _write_tasks(root: Path, greedy_targets: list[tuple[str, str]]) -> Path:
    """Local harness tasks: YAML + JSON lines under root."""
    root.mkdir(parents=True, exist_ok=True)

    def data(name, rows):
        path = root / f"{name}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return path

    mc = data("mc", [
        {"question": "The cat sat on the", "choices": ["mat.", "park!", "Haus.", "queso."], "label": 0},
        {"question": "Question: what is two plus two? Answer:", "choices": ["four.", "five", "two plus", "six"],
         "label": 0},
        {"question": "", "choices": ["Le chat est noir.", "El perro come pan.", "one two", "Das ist"], "label": 1},
        {"question": "one two three four five six seven eight nine ten, and the weather is nice today, isn't it? "
                     "The dog ran", "choices": ["in the park!", "on the mat.", "to Wir gehen", "!"], "label": 0},
        {"question": "Wir gehen morgen in die", "choices": ["Stadt.", "Haus.", "park", "mat"], "label": 0},
    ])
    ll = data("ll", [{"context": c, "target": t} for c, t in greedy_targets]
              + [{"context": "A dog ran in the", "target": " park!"}, {"context": "Le chat est", "target": " blanc."}])
    ppl = data("ppl", [{"text": " ".join(TEXTS[:5])}, {"text": TEXTS[6]}, {"text": " ".join(TEXTS[3:])}])
    gen = data("gen", [{"prompt": "The cat sat on the", "answer": " mat"}, {"prompt": "Le chat est", "answer": " noir"},
                       {"prompt": "Question: what is two plus two? Answer:", "answer": " four"},
                       {"prompt": "one two three", "answer": " four"}, {"prompt": "Das ist ein", "answer": " Haus"}])

    def task(name, path, body):
        (root / f"{name}.yaml").write_text(
            f"task: {name}\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {path}\n"
            f"test_split: test\n{body}")

    task("xlt_mc", mc, "output_type: multiple_choice\ndoc_to_text: \"{{question}}\"\ndoc_to_choice: \"{{choices}}\"\n"
         "doc_to_target: label\ntarget_delimiter: \" \"\nmetric_list:\n"
         "  - metric: acc\n  - metric: acc_norm\n  - metric: exact_match\n    aggregation: mean\n"
         "    higher_is_better: true\n")
    task("xlt_ll", ll, "output_type: loglikelihood\ndoc_to_text: \"{{context}}\"\ndoc_to_target: \"{{target}}\"\n"
         "target_delimiter: \"\"\nmetric_list:\n  - metric: perplexity\n  - metric: acc\n")
    task("xlt_ppl", ppl, "output_type: loglikelihood_rolling\ndoc_to_text: \"\"\ndoc_to_target: \"{{text}}\"\n"
         "metric_list:\n  - metric: word_perplexity\n  - metric: byte_perplexity\n  - metric: bits_per_byte\n")
    task("xlt_gen", gen, "output_type: generate_until\ndoc_to_text: \"{{prompt}}\"\ndoc_to_target: \"{{answer}}\"\n"
         "generation_kwargs:\n  until: [\".\", \"!\"]\n  max_gen_toks: 6\n  do_sample: false\n"
         "metric_list:\n  - metric: exact_match\n    aggregation: mean\n    higher_is_better: true\n")
    return root


TASKS = ["xlt_mc", "xlt_ll", "xlt_ppl", "xlt_gen"]


def _task_dir(tmp_path, family, models) -> Path:
    hf_dir, _, model = models[family]
    tok = transformers.AutoTokenizer.from_pretrained(hf_dir)
    greedy = _greedy_targets(model, tok, seq2seq=family == "t5")
    assert greedy, "no context with a cleanly tokenising greedy continuation"
    return _write_tasks(tmp_path / "tasks", greedy)


def _evaluate(lm, task_dir: Path) -> dict:
    return lm_eval.simple_evaluate(model=lm, tasks=TASKS, task_manager=TaskManager(include_path=str(task_dir)),
                                   log_samples=True, bootstrap_iters=0, random_seed=0, numpy_random_seed=0,
                                   torch_random_seed=0, fewshot_random_seed=0)


def _responses(out: dict) -> dict:
    """(task, doc_id, request index) -> the raw response."""
    resps = {}
    for task, samples in out["samples"].items():
        for s in samples:
            for k, r in enumerate(s["resps"]):
                resps[(task, s["doc_id"], k)] = r[0]
    return resps


def _metrics(out: dict) -> dict:
    return {t: {k: v for k, v in m.items() if isinstance(v, (int, float)) and "stderr" not in k}
            for t, m in out["results"].items()}


# --- Parity -------------------------------------------------------------------------------------------------


def test_loglikelihood_requests_match_hf(models):
    """The fast check: a few loglikelihood requests (shared contexts, an empty context, truncation) straight
    through both backends' ``loglikelihood``."""
    hf_dir, xlt_dir, _ = models["gpt2"]
    hf_lm = HFLM(pretrained=str(hf_dir), device="cpu", dtype="float32", batch_size=4, max_length=MAX_LENGTH)
    xlt_lm = harness.XltLM(checkpoint=str(xlt_dir), batch_size=4, max_length=MAX_LENGTH)
    long = " ".join(TEXTS)
    reqs = _instances("loglikelihood", [("The cat sat on the", " mat."), ("The cat sat on the", " park!"),
                                        ("The cat sat on the ", "Haus."), ("", "Le chat est noir."),
                                        (long, " The end."), ("Le chat", " est")])
    ref, got = hf_lm.loglikelihood(reqs), xlt_lm.loglikelihood(reqs)
    np.testing.assert_allclose([g[0] for g in got], [r[0] for r in ref], atol=TOL)
    assert [g[1] for g in got] == [r[1] for r in ref]


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_parity_with_hf_backend(family, models, tmp_path):
    hf_dir, xlt_dir, model = models[family]
    task_dir = _task_dir(tmp_path, family, models)
    hf_lm = HFLM(pretrained=str(hf_dir), device="cpu", dtype="float32", batch_size=4, max_length=MAX_LENGTH,
                 backend="seq2seq" if family == "t5" else "causal")
    xlt_lm = harness.XltLM(checkpoint=str(xlt_dir), batch_size=4, max_length=MAX_LENGTH)
    ref, got = _evaluate(hf_lm, task_dir), _evaluate(xlt_lm, task_dir)
    r_resp, g_resp = _responses(ref), _responses(got)
    assert r_resp.keys() == g_resp.keys()
    worst, greedy_true = 0.0, 0
    for key, r in r_resp.items():
        g = g_resp[key]
        task = key[0]
        if task == "xlt_gen":
            if family == "t5":  # hf's seq2seq generation may run longer (module docstring): xlt's is a prefix
                assert r.startswith(g), (key, r, g)
            else:
                assert r == g, (key, r, g)
        elif task == "xlt_ppl":
            worst = max(worst, abs(float(r) - float(g)))
        else:
            (r_ll, r_greedy), (g_ll, g_greedy) = r, g
            worst = max(worst, abs(r_ll - g_ll))
            assert r_greedy == g_greedy, key
            greedy_true += bool(g_greedy)
    assert worst < TOL, f"{family}: largest log-likelihood difference {worst:.2e}"
    assert greedy_true >= 1, "no greedy continuation among the requests: is_greedy went untested"
    print(f"{family}: largest log-likelihood difference {worst:.2e}")
    r_met, g_met = _metrics(ref), _metrics(got)
    assert r_met.keys() == g_met.keys()
    for task in r_met:
        if family == "t5" and task == "xlt_gen":
            continue
        for name, value in r_met[task].items():
            np.testing.assert_allclose(g_met[task][name], value, rtol=1e-4, atol=1e-6, err_msg=f"{task} {name}")


def _instances(kind: str, args: list[tuple]) -> list[Instance]:
    return [Instance(request_type=kind, doc={}, arguments=a, idx=i, metadata=("t", i, 1)) for i, a in enumerate(args)]


@pytest.mark.slow
def test_t5_generation_equals_hf_at_its_length(models):
    """The hf backend's seq2seq generate runs to (context width + max_gen_toks) decoder tokens; asked for that
    many, xlt's greedy generations are identical."""
    hf_dir, xlt_dir, _ = models["t5"]
    hf_lm = HFLM(pretrained=str(hf_dir), device="cpu", dtype="float32", batch_size=1, backend="seq2seq")
    xlt_lm = harness.XltLM(checkpoint=str(xlt_dir), batch_size=2)
    prompts = ["The cat sat on the", "Le chat est", "Das ist ein kleines Haus"]
    ref = hf_lm.generate_until(_instances("generate_until", [(p, {"until": ["."], "max_gen_toks": 4}) for p in prompts]))
    widths = [len(hf_lm.tokenizer(p)["input_ids"]) for p in prompts]
    got = xlt_lm.generate_until(_instances("generate_until", [(p, {"until": ["."], "max_gen_toks": w + 3})
                                                              for p, w in zip(prompts, widths)]))
    assert got == ref


@pytest.mark.slow
def test_mesh_equals_one_device(models, tmp_path, devices):
    _, xlt_dir, _ = models["llama"]
    reqs = _instances("loglikelihood", [("The cat sat on the", " mat."), ("The cat sat on the", " park!"),
                                        ("Le chat", " est noir."), ("", "Das ist ein")])
    one = harness.XltLM(checkpoint=str(xlt_dir), batch_size=2)
    mesh = harness.XltLM(checkpoint=str(xlt_dir), batch_size=2, mesh_shape="2x2x2")
    assert mesh.mesh is not None and mesh.mesh.size == 8
    a, b = one.loglikelihood(reqs), mesh.loglikelihood(reqs)
    np.testing.assert_allclose([x[0] for x in b], [x[0] for x in a], atol=TOL)
    assert [x[1] for x in b] == [x[1] for x in a]
    gen = _instances("generate_until", [("The cat sat", {"until": ["."], "max_gen_toks": 5})] * 3)
    assert mesh.generate_until(gen) == one.generate_until(gen)


# --- Entry points and errors --------------------------------------------------------------------------------


@pytest.mark.slow
def test_run_harness_tasks(models, tmp_path):
    _, xlt_dir, _ = models["gpt2"]
    task_dir = _write_tasks(tmp_path / "tasks", [])
    out = harness.run_harness_tasks(xlt_dir, ["lm_eval:xlt_mc", "xlt_ppl"], include_path=task_dir, batch_size=4,
                                    max_length=MAX_LENGTH)
    assert set(out["results"]) == {"xlt_mc", "xlt_ppl"}
    assert 0.0 <= out["results"]["xlt_mc"]["acc"] <= 1.0
    assert out["results"]["xlt_ppl"]["word_perplexity"] > 1.0
    lm = harness.XltLM(checkpoint=str(xlt_dir), batch_size=2, max_length=MAX_LENGTH)
    again = harness.run_harness_tasks(lm, ["xlt_mc"], include_path=task_dir)
    assert again["results"]["xlt_mc"]["acc"] == out["results"]["xlt_mc"]["acc"]
    with pytest.raises(ConfigError, match="unknown lm-eval task"):
        harness.run_harness_tasks(lm, ["no_such_task_xyz"], include_path=task_dir)


@pytest.mark.slow
def test_command_line(models, tmp_path):
    _, xlt_dir, _ = models["gpt2"]
    task_dir = _write_tasks(tmp_path / "tasks", [])
    env = {**os.environ, "PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu", "TOKENIZERS_PARALLELISM": "false"}
    out_dir = tmp_path / "out"
    cmd = [sys.executable, "-m", "xlt.harness", "--model", "xlt", "--model_args",
           f"checkpoint={xlt_dir},max_length={MAX_LENGTH}", "--batch_size", "4", "--tasks", "xlt_mc",
           "--include_path", str(task_dir), "--output_path", str(out_dir)]
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "xlt_mc" in run.stdout and "acc" in run.stdout
    results = list(out_dir.rglob("results_*.json"))
    assert results and "xlt_mc" in json.loads(results[0].read_text())["results"]
    bad = subprocess.run(cmd[:6] + [f"checkpoint={xlt_dir},mesh_shape=banana"] + cmd[7:], capture_output=True,
                         text=True, env=env, timeout=300)
    assert bad.returncode == 2 and "xlt: error: mesh_shape" in bad.stderr


def test_errors(models):
    _, xlt_dir, _ = models["gpt2"]
    with pytest.raises(ConfigError, match="batch_size"):
        harness.XltLM(checkpoint=str(xlt_dir), batch_size="auto")
    with pytest.raises(ConfigError, match="learned position table"):
        harness.XltLM(checkpoint=str(xlt_dir), max_length=64)
    with pytest.raises(ConfigError, match="checkpoint"):
        harness.XltLM()
    lm = harness.XltLM(checkpoint=str(xlt_dir))
    assert lm.max_length == 63  # GPT-2's 64 positions, one short (module docstring)
    with pytest.raises(ConfigError, match="not supported by xlt"):
        lm.generate_until(_instances("generate_until", [("The cat", {"num_beams": 4, "max_gen_toks": 2})]))
    assert harness.parse_mesh_shape("1x2x4") == (1, 2, 4)
    assert harness.strip_prefix("lm_eval:xnli_ko") == "xnli_ko"


def test_registered_with_lm_eval():
    from lm_eval.api.registry import get_model

    assert get_model("xlt") is harness.XltLM
    assert get_model("hf").__name__ == "HFLM"  # the built-in models are still there


@pytest.mark.slow
def test_bench_harness_smoke(tmp_path):
    """tools/bench.py harness --smoke: both backends on the same task, equal results, a markdown section."""
    sys.path.insert(0, str(REPO / "tools"))
    import bench

    md = tmp_path / "bench.md"
    (rec,) = bench.run(["harness", "--smoke", f"--out={md}"])
    for key in ("hf_s", "xlt_s", "hf_requests_per_s", "xlt_requests_per_s", "ratio"):
        assert np.isfinite(rec[key]) and rec[key] > 0, key
    assert rec["requests"] == 4 * rec["docs"]
    assert rec["max_abs_loglik_diff"] < TOL and rec["metrics_equal"]
    text = md.read_text()
    assert "### harness" in text and "xlt / hf" in text and rec["command"] in text


@pytest.mark.parametrize("layout", ["gpt", "t5"])
def test_xlt_trained_checkpoint_scores_as_probe(layout, tmp_path):
    """An xlt-trained checkpoint (byte vocabulary, no Hugging Face tokenizer): the harness feeds the token layout
    xlt trains with ([0] + ids for decoder-only, ids + [EOS] for encoders) and gives probe.score's numbers."""
    import jax

    from xlt import checkpoints, probe
    from xlt.models import ModelConfig, build_model

    cfg = ModelConfig(layout=layout, vocab_size=264, d_model=32, num_layers=1, num_heads=4, d_ff=64, max_len=128)
    batch = {"decoder_input_tokens": np.ones((1, 4), np.int32)}
    if layout == "t5":
        batch["encoder_input_tokens"] = np.ones((1, 4), np.int32)
    import flax

    params = flax.linen.meta.unbox(jax.jit(lambda r: build_model(cfg).init(r, batch))(jax.random.key(3))["params"])
    ckpt = checkpoints.save_params(tmp_path / layout, jax.tree.map(np.asarray, params),
                                   {"model": cfg.to_dict(), "vocabulary": "ByteVocabulary:259"})
    lm = harness.XltLM(checkpoint=str(ckpt), batch_size=2)
    assert isinstance(lm.tokenizer, harness.SeqioTokenizer)
    pairs = [("Le chat est", " noir."), ("Le chat est", " blanc."), ("Das ist", " gut")]
    got = [ll for ll, _ in lm.loglikelihood(_instances("loglikelihood", pairs))]
    want = probe.load(ckpt).score([c for c, _ in pairs], [x for _, x in pairs])
    np.testing.assert_allclose(got, want, atol=TOL)
    (text,) = lm.generate_until(_instances("generate_until", [("Le chat", {"until": ["\n"], "max_gen_toks": 4})]))
    assert isinstance(text, str)

"""Convert checkpoints between Hugging Face and xlt (GPT-2/PolyLM, Llama, T5 v1.1/mT5, BLOOM/BLOOMZ).

Usage:
  python tools/convert_hf.py import --hf_dir=D --out=O [--dtype=float32|bfloat16] [--pad_vocab_to_multiple=128]
                                    [--scan_layers] [--overwrite]
  python tools/convert_hf.py export --xlt_dir=O --out=D [--dtype=float32|bfloat16|float16] [--max_shard_size=5GB]
                                    [--overwrite]

``import`` writes an xlt params-only checkpoint O (O/params, O/meta.json) with O/model.gin binding the
ModelConfig (use it as --gin_file) and the tokenizer files under O/hf/. ``export`` reads O (or a training
MODEL_DIR, its latest step) and writes config.json + safetensors that transformers' from_pretrained loads.
Every path may be a bucket URL (``gs://…``, docs/SCALE.md "Bucket paths"): a bucket's HF directory is read
through a local copy, an import is saved straight to the bucket, an export is written locally and uploaded.
Bad input prints one line ``xlt: error: ...`` and exits with status 2.
"""

from __future__ import annotations

import sys

from xlt import cli
from xlt.interop import hf

if __name__ == "__main__":
    sys.exit(cli.main(hf.run))

"""Print a model config's parameter count and training FLOPs per token.

    python -m xlt.models.describe --gin_file=models/polylm_1.7b.gin [--seq_len=2048] [--input_len=N]  (--help: every
    ModelConfig field with its default)

Counts are analytic (``ModelConfig.param_count``; the tests check them against initialised models),
so describing a 13B model needs no memory.
"""

from __future__ import annotations

import sys

from xlt import cli
from xlt.errors import ConfigError
from xlt.models.config import ModelConfig


def describe(cfg: ModelConfig, seq_len: int, input_len: int | None = None) -> str:
    counts = cfg.param_count()
    flops = cfg.flops_per_token(seq_len, input_len)
    lines = [f"layout {cfg.layout}: d_model {cfg.d_model}, layers {cfg.num_layers}"
             + (f"+{cfg.num_encoder_layers} (encoder)" if cfg.encoder_decoder else "")
             + f", heads {cfg.num_heads} (kv {cfg.num_kv_heads}) x {cfg.head_dim}, d_ff {cfg.d_ff},"
             f" vocab {cfg.vocab_size}"]
    lines += [f"  {name:<16} {n:>16,}" for name, n in counts.items() if n and name != "total"]
    lines.append(f"  total            {counts['total'] / 1e9:>15.3f}B")
    lines.append(f"training FLOPs per token at seq_len {seq_len}: {flops['total']:.4g} "
                 f"(6N matmul {flops['matmul']:.4g} + attention {flops['attention']:.4g})")
    return "\n".join(lines)


USAGE = "python -m xlt.models.describe --gin_file=models/FILE.gin [--gin.ModelConfig.NAME=VALUE ...] [--seq_len=N] [--input_len=N]"
DESCRIPTION = """Print a model config's parameter count and training FLOPs per token (analytic: no memory needed).
  --seq_len=N    sequence length of the FLOPs estimate (default: ModelConfig.max_len; 512 for encoder-decoders)
  --input_len=N  encoder length of an encoder-decoder (default: seq_len)"""


def help_text() -> str:
    from xlt import configs
    return configs.help_text(USAGE, DESCRIPTION, [ModelConfig])


def _int_option(opts: dict[str, str], name: str) -> int | None:
    if name not in opts:
        return None
    try:
        value = int(opts[name])
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"--{name} must be an integer > 0, got {opts[name]!r}")
    return value


def main(argv: list[str]) -> None:
    files, bindings, search, rest = cli.parse_gin_args(argv)
    opts = dict(a[2:].split("=", 1) for a in rest if a.startswith("--") and "=" in a)
    unknown = set(opts) - {"seq_len", "input_len"}
    if unknown or len(opts) != len(rest):
        raise ConfigError(f"unknown arguments {rest}; use --gin_file=F --gin.NAME=VALUE --seq_len=N --input_len=N")
    # Model files bind ModelConfig only; xlt.configs registers `train` too, so that an older model.gin with a
    # `train.model = @ModelConfig()` line still parses (it imports no trainer).
    import xlt.configs  # noqa: F401
    cli.load_gin(files, bindings, search)
    cfg = ModelConfig()  # gin-configurable: picks up the ModelConfig.* bindings just parsed
    seq_len = _int_option(opts, "seq_len") or (cfg.max_len if not cfg.encoder_decoder else 512)
    print(describe(cfg, seq_len, _int_option(opts, "input_len")))


if __name__ == "__main__":
    sys.exit(cli.main(main, usage=help_text))

"""``python -m xlt.eval --gin_file=runs/eval.gin --gin.CHECKPOINT="'DIR'"``: zero-shot evaluation of a
checkpoint (see ``xlt.evaluation.evaluate``; ``--help`` lists every setting)."""

import sys

from xlt import cli
from xlt.evaluation.evaluate import help_text, main

if __name__ == "__main__":
    sys.exit(cli.main(main, usage=help_text))

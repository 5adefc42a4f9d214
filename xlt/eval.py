"""``python -m xlt.eval --gin_file=runs/eval.gin --gin.CHECKPOINT="'DIR'"``: zero-shot evaluation of a
checkpoint (see ``xlt.evaluation.evaluate``)."""

import sys

from xlt import cli
from xlt.evaluation.evaluate import main

if __name__ == "__main__":
    sys.exit(cli.main(main))

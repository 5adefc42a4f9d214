"""Local lm-evaluation-harness tasks (YAML + JSON lines) for the tests of harness benchmarks and of evaluation
during training: written offline, read by lm-eval through an include path."""

from __future__ import annotations

import json
from pathlib import Path

MC_ROWS = [{"question": "The cat sat on the", "choices": ["mat.", "park!", "Haus."], "label": 0},
           {"question": "Wir gehen morgen in die", "choices": ["Stadt.", "Haus.", "park"], "label": 0},
           {"question": "Le chat est", "choices": ["noir", "blanc"], "label": 1},
           {"question": "Das ist ein kleines", "choices": ["Haus", "mat", "chien", "queso"], "label": 0}]
GEN_ROWS = [{"prompt": "The cat", "answer": " sat"}, {"prompt": "one two", "answer": " three"}]


def write_tasks(root: Path) -> Path:
    """A multiple-choice task named for German (toy_mc_de), a generation task with two filters and no language
    in its name (toy_gen), and a group (toy_group)."""
    root.mkdir(parents=True, exist_ok=True)
    for name, rows in (("mc", MC_ROWS), ("gen", GEN_ROWS)):
        (root / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    def task(name, data, body):
        (root / f"{name}.yaml").write_text(f"task: {name}\ndataset_path: json\ndataset_kwargs:\n  data_files:\n"
                                           f"    test: {root / data}\ntest_split: test\n{body}")

    task("toy_mc_de", "mc.jsonl", "output_type: multiple_choice\ndoc_to_text: \"{{question}}\"\n"
         "doc_to_choice: \"{{choices}}\"\ndoc_to_target: label\nmetric_list:\n  - metric: acc\n"
         "  - metric: acc_norm\n")
    task("toy_gen", "gen.jsonl", "output_type: generate_until\ndoc_to_text: \"{{prompt}}\"\n"
         "doc_to_target: \"{{answer}}\"\ngeneration_kwargs:\n  until: [\".\"]\n  max_gen_toks: 4\n"
         "filter_list:\n  - name: strict\n    filter:\n      - function: take_first\n"
         "  - name: loose\n    filter:\n      - function: remove_whitespace\n      - function: take_first\n"
         "metric_list:\n  - metric: exact_match\n    aggregation: mean\n    higher_is_better: true\n")
    (root / "toy_group.yaml").write_text("group: toy_group\ntask:\n  - toy_mc_de\n  - toy_gen\n")
    return root

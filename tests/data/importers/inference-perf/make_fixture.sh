#!/usr/bin/env bash
# Regenerates the real inference-perf fixture in this folder: inference-perf 0.7.0 (PyPI; needs Python >= 3.12)
# against tpsbench's pace server on loopback, with a word-level tokenizer made here (nothing downloaded).
#
#   python3.12 -m venv /work/venv-ip && /work/venv-ip/bin/pip install inference-perf==0.7.0
#   IP_VENV=/work/venv-ip TPSBENCH_PY=/work/venv/bin/python bash tests/data/importers/inference-perf/make_fixture.sh
#
# Keeps: per_request_lifecycle_metrics.json (every request's lifecycle, with inference-perf's own
# computed_metrics per request), summary_lifecycle_metrics.json (its aggregates), config.yaml (its dump of
# the run's configuration: the importer reads the stage's concurrency there) and pace_log.json (the pace server's own send log: the truth).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../../.." && pwd)"
ip_venv="${IP_VENV:-/work/venv-ip}"
py="${TPSBENCH_PY:-/work/venv/bin/python}"
port="${PORT:-18124}"
work="$(mktemp -d)"
trap 'kill "$pace_pid" 2>/dev/null || true; rm -rf "$work"' EXIT

# A word-level tokenizer over the words of inference-perf's own prompt corpus (so its synthetic prompts
# decode and re-encode to their exact length) and " tok", the pace server's piece: one token each, as in
# the server's usage.
"$ip_venv/bin/python" - "$work/tok" <<'PY'
import sys
from importlib.resources import files

from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

corpus = (files("inference_perf") / "assets" / "shakespeare.txt").read_text(encoding="utf-8")
words = ["[UNK]", "tok", *dict.fromkeys(("Pick as many lines as you can from these poem lines:\n" + corpus).split())]
tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(dict.fromkeys(words))}, unk_token="[UNK]"))
tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
tok.decoder = decoders.WordPiece(prefix="\x00", cleanup=False)  # tokens joined by single spaces
PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]").save_pretrained(sys.argv[1])
PY

# 50 ms to the first token, then a chunk of 1-4 tokens every 10 ms (speculative-decoding-like chunks)
PYTHONPATH="$repo" "$py" -m tpsbench.reference.pace --port "$port" --ttft-ms 50 --interval-ms 10 \
  --tokens 1-4 --seed 1 > "$work/pace.out" &
pace_pid=$!
for _ in $(seq 50); do grep -q http "$work/pace.out" 2>/dev/null && break; sleep 0.1; done

cat > "$work/config.yml" <<YML
api: {type: completion, streaming: true}
data:
  type: synthetic
  input_distribution: {min: 16, max: 16, mean: 16, std_dev: 0}
  output_distribution: {min: 40, max: 40, mean: 40, std_dev: 0}
load:
  type: concurrent
  stages: [{num_requests: 16, concurrency_level: 4}]
  num_workers: 1
server: {type: vllm, model_name: pace, base_url: "http://127.0.0.1:$port", ignore_eos: true}
tokenizer: {pretrained_model_name_or_path: "$work/tok"}
report:
  request_lifecycle:
    summary: true
    per_stage: false
    per_adapter: false
    per_request: true
    per_request_fields: {request: false, response: false, computed_metrics: true}
  prometheus: null
storage: {local_storage: {path: "$work/out"}}
YML
(cd "$work" && HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 "$ip_venv/bin/inference-perf" --config_file config.yml)
"$py" -c "import json, sys, urllib.request; json.dump(json.load(urllib.request.urlopen(sys.argv[1])), sys.stdout, indent=1)" \
  "http://127.0.0.1:$port/log" > "$here/pace_log.json"
out="$(dirname "$(find "$work/out" -name per_request_lifecycle_metrics.json | head -1)")"
cp "$out/per_request_lifecycle_metrics.json" "$out/summary_lifecycle_metrics.json" "$here/"
sed "s|$work|/tmp/inference-perf-fixture|g" "$out/config.yaml" > "$here/config.yaml"  # its dump of the run's config
"$ip_venv/bin/pip" show inference-perf | grep -i '^version'

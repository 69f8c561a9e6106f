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
ip_venv="${IP_VENV:-/work/venv-ip}"
port="${PORT:-18124}"
. "$here/../pace_fixture.sh"  # repo, py (TPSBENCH_PY), work; word_tokenizer, start_pace, save_pace_log

# The tokenizer covers the words of inference-perf's own prompt corpus, so its synthetic prompts decode and
# re-encode to their exact length.
"$ip_venv/bin/python" -c '
from importlib.resources import files

corpus = (files("inference_perf") / "assets" / "shakespeare.txt").read_text(encoding="utf-8")
print("Pick as many lines as you can from these poem lines:\n" + corpus)
' | word_tokenizer "$ip_venv/bin/python" "$work/tok"

start_pace

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
save_pace_log
out="$(dirname "$(find "$work/out" -name per_request_lifecycle_metrics.json | head -1)")"
cp "$out/per_request_lifecycle_metrics.json" "$out/summary_lifecycle_metrics.json" "$here/"
sed "s|$work|/tmp/inference-perf-fixture|g" "$out/config.yaml" > "$here/config.yaml"  # its dump of the run's config
"$ip_venv/bin/pip" show inference-perf | grep -i '^version'

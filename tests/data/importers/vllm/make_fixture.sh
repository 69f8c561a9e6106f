#!/usr/bin/env bash
# Regenerates the real `vllm bench serve` fixture in this folder: vLLM 0.33.0 (PyPI, with its CUDA torch
# 2.14.0 wheel; the benchmark client runs on CPU, no GPU and no download needed) against tpsbench's pace
# server on loopback, with a word-level tokenizer made here.
#
#   python3.12 -m venv /work/venv-vllm && /work/venv-vllm/bin/pip install vllm==0.33.0
#   VLLM_VENV=/work/venv-vllm TPSBENCH_PY=/work/venv/bin/python bash tests/data/importers/vllm/make_fixture.sh
#
# Keeps: vllm-bench-serve.json (--save-result --save-detailed: per-request ttfts, itls, latencies,
# start_times, output_lens and vLLM's aggregates) and pace_log.json (the pace server's own send log, one
# entry per request, X-Request-Id = vLLM's request id "<prefix><index>": the truth).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${VLLM_VENV:-/work/venv-vllm}"
port="${PORT:-18125}"
. "$here/../pace_fixture.sh"  # repo, py (TPSBENCH_PY), work; word_tokenizer, start_pace, save_pace_log

word_tokenizer "$venv/bin/python" "$work/tok" <<< "the and to of a I you my is in that it not"
start_pace

# --ready-check-timeout-sec is 0 (the default): vLLM sends no test request, so the pace log holds exactly
# the 16 benchmark requests, X-Request-Id "pace-fixture-<i>" for index i of vLLM's per-request lists.
(cd "$work" && HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 "$venv/bin/vllm" bench serve --backend openai \
  --base-url "http://127.0.0.1:$port" --endpoint /v1/completions --model pace --tokenizer "$work/tok" \
  --dataset-name random --random-input-len 16 --random-output-len 40 --num-prompts 16 --max-concurrency 4 \
  --ignore-eos --seed 1 --request-id-prefix pace-fixture- --save-result --save-detailed \
  --result-dir "$work" --result-filename vllm-bench-serve.json)
save_pace_log
sed "s|$work|/tmp/vllm-fixture|g" "$work/vllm-bench-serve.json" > "$here/vllm-bench-serve.json"
"$venv/bin/pip" show vllm | grep -i '^version'

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
repo="$(cd "$here/../../../.." && pwd)"
venv="${VLLM_VENV:-/work/venv-vllm}"
py="${TPSBENCH_PY:-/work/venv/bin/python}"
port="${PORT:-18125}"
work="$(mktemp -d)"
trap 'kill "$pace_pid" 2>/dev/null || true; rm -rf "$work"' EXIT

# A word-level tokenizer: " tok" (the pace server's piece) is one token, as in the server's usage.
"$venv/bin/python" - "$work/tok" <<'PY'
import sys

from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

words = ["[UNK]", "tok", "the", "and", "to", "of", "a", "I", "you", "my", "is", "in", "that", "it", "not"]
tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
tok.decoder = decoders.WordPiece(prefix="\x00", cleanup=False)  # tokens joined by single spaces
PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]").save_pretrained(sys.argv[1])
PY

# 50 ms to the first token, then a chunk of 1-4 tokens every 10 ms (speculative-decoding-like chunks)
PYTHONPATH="$repo" "$py" -m tpsbench.reference.pace --port "$port" --ttft-ms 50 --interval-ms 10 \
  --tokens 1-4 --seed 1 > "$work/pace.out" &
pace_pid=$!
for _ in $(seq 50); do grep -q http "$work/pace.out" 2>/dev/null && break; sleep 0.1; done

# --ready-check-timeout-sec is 0 (the default): vLLM sends no test request, so the pace log holds exactly
# the 16 benchmark requests, X-Request-Id "pace-fixture-<i>" for index i of vLLM's per-request lists.
(cd "$work" && HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 "$venv/bin/vllm" bench serve --backend openai \
  --base-url "http://127.0.0.1:$port" --endpoint /v1/completions --model pace --tokenizer "$work/tok" \
  --dataset-name random --random-input-len 16 --random-output-len 40 --num-prompts 16 --max-concurrency 4 \
  --ignore-eos --seed 1 --request-id-prefix pace-fixture- --save-result --save-detailed \
  --result-dir "$work" --result-filename vllm-bench-serve.json)
"$py" -c "import json, sys, urllib.request; json.dump(json.load(urllib.request.urlopen(sys.argv[1])), sys.stdout, indent=1)" \
  "http://127.0.0.1:$port/log" > "$here/pace_log.json"
sed "s|$work|/tmp/vllm-fixture|g" "$work/vllm-bench-serve.json" > "$here/vllm-bench-serve.json"
"$venv/bin/pip" show vllm | grep -i '^version'

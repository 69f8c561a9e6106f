# Sourced (not run) by the importer fixture scripts beside it (inference-perf/, vllm/make_fixture.sh):
# what they share to run another harness against tpsbench's pace server on loopback.
#
#   here="$(cd "$(dirname "$0")" && pwd)"; port="${PORT:-18125}"
#   . "$here/../pace_fixture.sh"
#   word_tokenizer "$venv/bin/python" "$work/tok" <<< "the and to"   # needs tokenizers + transformers
#   start_pace                                                      # http://127.0.0.1:$port
#   ... run the harness ...
#   save_pace_log                                                   # -> $here/pace_log.json
#
# Needs `here` (the fixture's folder: pace_log.json goes there) and `port` set before it is sourced. Sets
# `repo` (this checkout), `py` (TPSBENCH_PY, the Python that has tpsbench's dependencies) and `work` (a
# scratch folder); on exit the pace server is stopped by its pid and `work` removed.

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
py="${TPSBENCH_PY:-/work/venv/bin/python}"
work="$(mktemp -d)"
pace_pid=""
trap 'if [ -n "$pace_pid" ]; then kill "$pace_pid" 2>/dev/null || true; fi; rm -rf "$work"' EXIT

# word_tokenizer PYTHON OUT_DIR, the words on stdin: a word-level tokenizer saved in OUT_DIR, one token per
# word, with "[UNK]" and " tok" (the pace server's piece, one token each, as in the server's usage) first.
# PYTHON is the harness's own (it loads the tokenizer with its transformers).
word_tokenizer() {
  "$1" -c '
import sys

from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

words = dict.fromkeys(["[UNK]", "tok", *sys.stdin.read().split()])
tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
tok.decoder = decoders.WordPiece(prefix="\x00", cleanup=False)  # tokens joined by single spaces
PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]").save_pretrained(sys.argv[1])
' "$2"
}

# start_pace: the pace server on $port, in the background, once it listens: 50 ms to the first token, then
# a chunk of 1-4 tokens every 10 ms (speculative-decoding-like chunks).
start_pace() {
  PYTHONPATH="$repo" "$py" -m tpsbench.reference.pace --port "$port" --ttft-ms 50 --interval-ms 10 \
    --tokens 1-4 --seed 1 > "$work/pace.out" &
  pace_pid=$!
  for _ in $(seq 50); do grep -q "^http://" "$work/pace.out" 2>/dev/null && return 0; sleep 0.1; done
  echo "the pace server did not print its URL within 5 s (port $port)" >&2
  return 1
}

# save_pace_log: the pace server's own send log (one entry per request: the truth the importer tests
# check the harness against) as $here/pace_log.json.
save_pace_log() {
  "$py" -c "import json, sys, urllib.request; json.dump(json.load(urllib.request.urlopen(sys.argv[1])), sys.stdout, indent=1)" \
    "http://127.0.0.1:$port/log" > "$here/pace_log.json"
}

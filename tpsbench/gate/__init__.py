"""The regression gate: does a candidate run make users wait longer than a baseline run?

The package by concern: metric names, directions and thresholds in :mod:`tpsbench.core.metricspec` (shared
with scenario validation); what makes runs and points comparable in :mod:`tpsbench.results.matching`
(shared with ``tpsbench compare``); the statistical tests in :mod:`tpsbench.results.stats`; the verdicts in
:mod:`.verdicts` (pure ``compare``, and ``evaluate`` that opens the runs); rows and the result in
:mod:`.result`; Markdown, JUnit and terminal renderers in :mod:`.render` over the formatters of :mod:`.text`.

    >>> result = evaluate("results/baseline", "results/candidate/run-1")  # doctest: +SKIP
    >>> result.exit_code, [r.metric for r in result.regressions]  # doctest: +SKIP
    (1, ['tps_user_p50'])

Exit codes (the contract CI relies on, also in docs/ci.md):

- ``0`` pass: no row regressed (rows may be improved, unchanged, large-but-not-significant or not comparable).
- ``1`` at least one row regressed.
- ``2`` not comparable or bad input: a missing or unreadable file (the message names it), an unknown
  threshold metric, runs of a different model, API or workload (input/output tokens, prompts file,
  ignore_eos: :func:`tpsbench.results.matching.comparability_reasons`), or no load point in common. No
  row is judged then.

Inputs. The baseline and the candidate are each a run directory (``summary.json`` and, if present,
``requests.jsonl``) or a ``summary.json`` file alone. Load points are matched by their load (concurrency,
or rate and arrival: :func:`tpsbench.results.matching.point_key`), never by position; a point found in
one run only gives ``not_comparable`` rows.
Samples are the measured requests of a point (``warmup`` excluded) that succeeded (``error`` is null);
error rates count every measured request except ``cancelled`` ones (an interrupted run is not the
server's fault). When both runs have ``requests.jsonl`` the values are computed from those records (each
per-request metric derived from the raw record by :mod:`tpsbench.results.metrics`);
otherwise both sides use their summary values, so one row always compares like with like.

Rows. By default, per load point: TPS/user p50 and p10 (higher is better), TTFT p50 and p99 (lower is
better), output TPS (higher) and error rate (lower). Any ``<metric>_<pNN>`` of ``ttft_s``, ``tps_user``,
``tpot_s``, ``e2e_s``, ``e2e_tps`` and the per-request TPS/user definitions (``tps_user_aiperf``,
``tps_user_inferencex``, ``tps_user_guidellm``, ``tpot_inferencex_s``; pNN in p1, p5, p10, p50, p90, p95,
p99) given a threshold is added, and so are the point-level TPS/user definitions ``tps_user_mlperf`` and
``tps_user_vllm`` (:mod:`tpsbench.results.definitions`).

Statistics, per row (x = baseline samples, y = candidate samples):

- change: relative, ``(value_c / value_b - 1) * 100`` percent; for the error rate, the difference in
  percentage points. ``Row.worse`` re-signs it so that positive always means worse for users.
- noise floor (``threshold``, percent; percentage points for ``error_rate``): 5 for medians, 10 for other
  percentiles and output TPS, 1 pp for the error rate; overridable per metric (``{"ttft_s_p99": 15}``), by
  the candidate's ``scenario.yaml`` ``gate.thresholds`` and then by the ``thresholds`` argument.
- p50: two-sided Mann-Whitney U test on x and y (a rank test: robust to the heavy tails of latencies).
- other percentiles: seeded percentile bootstrap of ``Q_q(y) - Q_q(x)`` (numpy's linear quantile). The
  p-value inverts the interval: ``p = 2 * (min(#{d* <= 0}, #{d* >= 0}) + 1) / (B + 1)``, the smallest
  alpha whose (1 - alpha) interval excludes 0. A tail percentile is tested only when at least 1.5 samples
  lie beyond it on each side (n * min(q, 1 - q) >= 1.5: n >= 150 for p99); below that the percentile
  bootstrap is anti-conservative (measured: 11% false positives at alpha 0.05 for p99 with n = 50).
- error rate: two-sided Fisher exact test on the 2x2 table (errors, successes) x (baseline, candidate).
- output TPS is one number per run (tokens / measured window), so the change is that number's, and the
  test is on what it estimates: by Little's law a closed loop of C users delivers C * R tokens/s with
  R = sum(tokens_i) / sum(latency_i) over the measured requests (failed ones add latency, not tokens).
  Delta method: Var(log R) ~= var((t_i - R d_i) / mean(d)) / (n R^2); z = (log R_c - log R_b) /
  sqrt(V_b + V_c), two-sided normal p (``test = "ratio"``). R is free of the window's drain noise (the
  last, partly idle wave): judged on the window alone, 1.7% of the output TPS rows of identical
  wide-spread synthetic runs moved by more than 10%.
- ``tps_user_mlperf`` (MLPerf: 1 / p90 of the per-request InferenceX TPOT) is tested as the
  ``tpot_inferencex_s_p90`` row it inverts (the bootstrap above, same p-value: x -> 1/x is monotone, so the
  quantile differs significantly exactly when its reciprocal does); value, change and threshold are the
  reciprocal's (higher is better, 10%).
- ``tps_user_vllm`` (vLLM: output TPS / concurrency) is tested as output TPS is, on R: at a closed-loop
  point both runs have the same concurrency, so its change is output TPS's; in open loop the concurrency
  is the mean in flight, sum(time in flight inside the window) / window over the requests whose tokens
  output TPS counts, so the value is tokens per request-second, as R is (10%).
- summary-only comparisons: medians are significant when the two summaries' ``p50_ci`` intervals do not
  overlap (asv's rule; conservative, about p < 0.006 for two 95% intervals); other percentiles (no
  interval in the summary), output TPS and the two point-level definitions are reported as not tested.
  Error counts are in the summary, so the Fisher test still runs.
- multiplicity: one gate tests many rows, so the p-values of all tested rows are Holm-adjusted
  (family-wise error rate <= alpha for the whole run, under any dependence between rows). Without it,
  3 load points x 6 rows at alpha = 0.05 failed 12% of identical synthetic runs; with it, 0-1%
  (benchmarks/gate_power.py), while 10% lower TPS/user or 20% higher TTFT is still caught in >= 98%.
- client timing noise: a TTFT or E2E latency is one interval stamped by the client, so a change smaller
  than the client's own event-loop lag p99 at that point (``self_check.loop_lag_p99_s``, the larger of
  the two runs) cannot be told from the client falling behind, and is ``unchanged`` whatever its p-value.
  (Measured: two identical reference runs on a loaded 2-core machine differed by +9.4 ms in TTFT p99 at
  c=4, p = 0.01, while the candidate's client lagged 11.2 ms at p99 against 3.0 ms.)
- repeats (both runs with 2 or more repeats of the plan, :mod:`tpsbench.results.repeats`): every quantile,
  output TPS and point-level TPS/user row compares the per-repeat values (``test = "welch-t"``: Welch's
  two-sample t test, pyperf's ``is_significant`` way), so significance comes from the run-to-run
  variance; the shown values are the means over repeats. The error rate stays a Fisher test on the
  pooled counts. With one run on either side the per-request tests above are used and a warning says so
  (``GateResult.mode``).
- curve rows (``GateResult.curve``, :mod:`tpsbench.gate.curve`): output TPS per GPU read on the
  candidate's curve at each baseline point's TPS/user, and TPS/user at its throughput, with their own
  thresholds (``curve_tps_per_gpu``, ``curve_tps_user``, 5%); Welch t on per-repeat curves, or a
  delta-method z test for one run. They join the Holm family and the exit code.
- fewer than ``min_samples`` (default 8) samples on either side: never significant, never a failure.
- a significant test counts only when its effect points the same way as the change (a rank test can,
  rarely, disagree with the median).

Verdict: ``regressed`` = worse by more than the threshold AND significant at alpha (after Holm);
``improved`` symmetrically; ``large_not_significant`` = beyond the threshold either way but not
significant; ``unchanged`` = within the threshold or the client's timing noise (significant or not);
``not_comparable`` = a value is missing on one side.
"""

from tpsbench.core.metricspec import DEFAULT_METRICS, MetricSpec, metric_spec, parse_thresholds
from tpsbench.gate.render import rich_table, to_junit, to_markdown, verdict_lines
from tpsbench.gate.result import (
    EXIT_NOT_COMPARABLE,
    EXIT_PASS,
    EXIT_REGRESSION,
    GateResult,
    Method,
    Row,
    Verdict,
)
from tpsbench.gate.verdicts import GateInputError, RunData, compare, evaluate, load_run

__all__ = [
    "DEFAULT_METRICS",
    "EXIT_NOT_COMPARABLE",
    "EXIT_PASS",
    "EXIT_REGRESSION",
    "GateInputError",
    "GateResult",
    "Method",
    "MetricSpec",
    "Row",
    "RunData",
    "Verdict",
    "compare",
    "evaluate",
    "load_run",
    "metric_spec",
    "parse_thresholds",
    "rich_table",
    "to_junit",
    "to_markdown",
    "verdict_lines",
]

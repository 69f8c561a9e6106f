"""The calibrated performance model of the reference system: Llama 4 Maverick on one DGX B200 (8x B200).

Every calibration number lives in :class:`ModelParams`, each field tagged with its status and source
(``measured`` = third-party measurement, ``vendor`` = NVIDIA's or Meta's published figure, ``derived`` =
arithmetic on those, ``assumption`` = a modelling choice, fitted or guessed); :func:`param_table` lists them.
Facts and sources: ``shared/reference/maverick-b200.md``. :class:`ReferenceModel` is pure arithmetic on them.

Notation: B = decoding sequences in the batch, k = draft length, T = B (k + 1) tokens verified per step,
c = context length of a sequence, E = experts, N = active matmul parameters per token.

- Distinct experts touched per MoE layer by T tokens (top-1 routing, uniform):
  ``Eu(T) = E (1 - (1 - 1/E)^T)``.
- Weight bytes read per step: ``W(T) = W_base + L_moe Eu(T) S_expert``.
- Attended positions per token, over layers (iRoPE): ``a(c) = L_global c + L_chunked min(c, chunk)``.
- KV bytes read per sequence: ``K(c) = 2 H_kv d b_kv a(c)`` (2048 B per layer-position at FP8).
- FLOPs per token: ``F(c) = 2 N + 4 H d a(c)``.
- Decode step: ``t_step = t0 + (W(T) + sum_i K(c_i)) / BW + (k + 1) sum_i F(c_i) / PHI_d + k t_d``.
- Prefill of n tokens alone: ``t_pf(n) = t0 + W(n) / BW + n F(n / 2) / PHI_p`` (mean attended position n/2).
- Prefill riding along a decode step (chunked prefill): only its FLOPs are added, ``+ n F(n / 2) / PHI_p``;
  the weights are streamed for the decode tokens anyway. This is the calibrated model's choice (the
  reference table is reproduced with it); it is optimistic for MoE at small batch, where a prompt chunk
  touches experts the decode tokens did not.
- Speculation: draft k tokens, verify them in one step; with chain acceptance probabilities p_1..p_k a step
  commits j tokens with ``P(j) = p_1 ... p_{j-1} (1 - p_j)`` for j <= k and ``P(k+1) = p_1 ... p_k``; the
  acceptance length is ``AL(k) = sum_j j P(j) = 1 + sum_{i<=k} p_1 ... p_i``.

    >>> m = ReferenceModel()
    >>> round(m.step_time(1, 1500, 3) * 1e3, 2), round(m.acceptance_length(3), 3)
    (2.6, 2.735)
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal, TypeVar

Status = Literal["measured", "vendor", "derived", "assumption"]

_T = TypeVar("_T")

# The published points the model is calibrated to (the targets, not inputs) are in .published.
# measured: mean acceptance length of the EAGLE-3 head on 8x B200 (vLLM), k -> (coding, math, summarization)
EAGLE3_ACCEPTANCE_LENGTH: dict[int, tuple[float, float, float]] = {
    1: (1.83, 1.86, 1.69),
    2: (2.45, 2.56, 2.12),
    3: (2.94, 3.08, 2.37),
    7: (3.62, 4.02, 2.63),
}


def _p(default: _T, status: Status, source: str) -> _T:
    """A dataclass field with its provenance in the field metadata (see :func:`param_table`)."""
    f: _T = field(default=default, metadata={"status": status, "source": source})
    return f


@dataclass(frozen=True)
class ModelParams:
    """Every calibration number of the reference model, with its status and source.

    Override by name with :meth:`with_overrides` (scenario ``reference:`` block, ``--param NAME=VALUE``)::

        ModelParams().with_overrides({"draft_len": 0})   # speculation off
    """

    # The system.
    gpus: int = _p(8, "vendor", "DGX B200: 8x B200")
    max_model_len: int = _p(1_048_576, "vendor", "HF config max_position_embeddings (1M context)")
    # The model (Hugging Face Llama4TextConfig of Llama-4-Maverick-17B-128E).
    global_attn_layers: int = _p(12, "vendor", "HF config: 48 layers, every 4th global attention (iRoPE)")
    chunked_attn_layers: int = _p(36, "vendor", "HF config: the other 36 layers use chunked attention")
    attn_chunk: int = _p(8192, "vendor", "HF config attention_chunk_size")
    n_heads: int = _p(40, "vendor", "HF config num_attention_heads")
    n_kv_heads: int = _p(8, "vendor", "HF config num_key_value_heads")
    head_dim: int = _p(128, "vendor", "HF config head_dim")
    kv_bytes_per_value: float = _p(1.0, "vendor", "FP8 KV cache / attention (NVIDIA record blog)")
    moe_layers: int = _p(24, "vendor", "HF config: MoE every 2nd layer")
    n_experts: int = _p(128, "vendor", "HF config num_local_experts")
    experts_per_token: int = _p(1, "vendor", "HF config num_experts_per_tok (top-1, plus a shared expert)")
    expert_bytes: float = _p(125.8e6, "derived", "3 x 5120 x 8192 params per routed expert, FP8")
    base_weight_bytes: float = _p(14.1e9, "derived", "all weights but routed experts, FP8; LM head BF16")
    active_params: float = _p(16.1e9, "derived", "~17B active per token minus the embedding lookup")
    # The hardware, as achieved (fractions of the vendor peaks fitted to the two published points).
    hbm_bandwidth: float = _p(48e12, "assumption", "75% of 64 TB/s aggregate HBM3e (vendor), fitted")
    decode_flops: float = _p(9e15, "assumption", "25% of 8 x 4.5 PFLOP/s dense FP8 (vendor), fitted")
    prefill_flops: float = _p(18e15, "assumption", "50% of 8 x 4.5 PFLOP/s dense FP8 (vendor), fitted")
    step_overhead_s: float = _p(1.65e-3, "assumption", "t0: launch, sync, all-reduce per step; fitted")
    draft_token_s: float = _p(0.13e-3, "assumption", "t_d: one EAGLE-3 draft token; fitted")
    # Speculative decoding (EAGLE-3, one-model).
    draft_len: int = _p(3, "vendor", "record config: max_draft_len 3 (TensorRT-LLM tech blog 6); 0 = off")
    spec_max_batch: int = _p(8, "assumption", "speculate only while B <= this (record: CUDA graphs to 8)")
    accept_probs: tuple[float, ...] = _p(
        (0.78, 0.72, 0.70), "assumption", "chain acceptance; AL(3) = 2.735 within measured 2.37-3.08"
    )
    # Serving.
    max_batch: int = _p(2048, "assumption", "B_max: concurrent sequences; more requests queue")
    prefill_chunk_tokens: int = _p(8192, "assumption", "chunked-prefill token budget of a decode step")
    # Simulator only: output lengths when the client lets the model stop (no ignore_eos / min_tokens).
    eos_mean_tokens: float = _p(350.0, "assumption", "mean of the lognormal output length")
    eos_sigma: float = _p(0.8, "assumption", "sigma of the lognormal output length")

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "accept_probs":
                if not all(0.0 <= p <= 1.0 for p in value):
                    raise ValueError(f"accept_probs: every probability must be in [0, 1], got {value}")
            elif f.name == "draft_len" or f.name == "eos_sigma":
                if value < 0:
                    raise ValueError(f"{f.name} must be >= 0, got {value}")
            elif value <= 0:
                raise ValueError(f"{f.name} must be > 0, got {value}")
        if self.draft_len > len(self.accept_probs):
            raise ValueError(
                f"draft_len {self.draft_len} needs as many accept_probs, got {len(self.accept_probs)}"
            )
        if self.experts_per_token > self.n_experts:
            raise ValueError("experts_per_token must be <= n_experts")

    def with_overrides(self, d: Mapping[str, Any]) -> ModelParams:
        """A copy with the named fields replaced; strings are parsed (``"0.8,0.7"`` for a tuple).

        Unknown names raise ``ValueError`` naming the closest known ones.
        """
        known = {f.name: f for f in fields(self)}
        unknown = [name for name in d if name not in known]
        if unknown:
            hints = []
            for name in unknown:
                close = difflib.get_close_matches(name, known, n=3)
                hints.append(f"{name!r}" + (f" (did you mean {', '.join(close)}?)" if close else ""))
            raise ValueError(
                f"unknown reference model parameter {', '.join(hints)}; known: {', '.join(known)}"
            )
        changes = {name: _coerce(name, getattr(self, name), value) for name, value in d.items()}
        return replace(self, **changes)

    def overrides(self) -> dict[str, Any]:
        """The fields that differ from the defaults (what to pass to a server subprocess)."""
        default = DEFAULT_PARAMS
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if getattr(self, f.name) != getattr(default, f.name)
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


DEFAULT_PARAMS = ModelParams()


def _coerce(name: str, current: Any, value: Any) -> Any:
    """Convert ``value`` to the type of the field's current value, with an error that names the field."""
    try:
        if isinstance(current, tuple):
            items = value.split(",") if isinstance(value, str) else list(value)
            return tuple(float(x) for x in items)
        if isinstance(value, bool):
            raise TypeError("a boolean")
        if isinstance(current, int):
            number = float(value) if isinstance(value, str) else value
            if isinstance(number, float):
                if not number.is_integer():
                    raise ValueError("not an integer")
                number = int(number)
            if not isinstance(number, int):
                raise TypeError(type(number).__name__)
            return number
        if isinstance(current, float):
            if not isinstance(value, str | int | float):
                raise TypeError(type(value).__name__)
            return float(value)
    except (TypeError, ValueError) as exc:
        kind = "comma-separated numbers" if isinstance(current, tuple) else type(current).__name__
        raise ValueError(
            f"reference model parameter {name!r}: expected {kind}, got {value!r} ({exc})"
        ) from None
    raise ValueError(f"reference model parameter {name!r} cannot be overridden")  # pragma: no cover


def param_table(params: ModelParams = DEFAULT_PARAMS) -> list[dict[str, Any]]:
    """One row per parameter: name, value, status, source (the measured-vs-assumed split)."""
    return [
        {
            "name": f.name,
            "value": getattr(params, f.name),
            "status": f.metadata["status"],
            "source": f.metadata["source"],
        }
        for f in fields(params)
    ]


@dataclass(frozen=True)
class Prediction:
    """The model's steady state for ``concurrency`` closed-loop users at ISL/OSL ``isl``/``osl``.

    - ``batch`` = min(concurrency, max_batch); ``k`` its draft length; ``accept_len`` = AL(k).
    - ``step_s``: mean decode step a user sees, with the other users' prompts riding along.
    - ``tps_user``: (osl - 1) / decode time, as Artificial Analysis measures it (tokens after the first
      chunk over the time after it), with the last step's truncation; about ``accept_len / step_s``.
    - ``server_tps`` = batch x accept_len / step_s: the server with its batch kept full (the doc's table).
    - ``output_tps``: what a closed-loop run measures, min(concurrency, max_batch) x osl / e2e per slot
      (lower than ``server_tps`` at small concurrency because a slot prefills between answers).
    - ``ttft_s``: server-side, queueing for a slot included; ``e2e_s`` = ttft + decode time.
    """

    concurrency: int
    isl: int
    osl: int
    batch: int
    k: int
    accept_len: float
    step_s: float
    tps_user: float
    server_tps: float
    output_tps: float
    ttft_s: float
    e2e_s: float
    queue_s: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ReferenceModel:
    """Pure functions of :class:`ModelParams`: step and prefill times, speculation, predicted curves."""

    _STEPS_TABLE = 4096  # exact expected-step counts up to here; linear beyond (renewal theorem)

    def __init__(self, params: ModelParams = DEFAULT_PARAMS) -> None:
        self.params = params
        p = params
        self.kv_bytes_per_position = 2 * p.n_kv_heads * p.head_dim * p.kv_bytes_per_value  # K and V
        self.attn_flops_per_position = 4 * p.n_heads * p.head_dim  # Q.K^T and A.V, 2 FLOPs per MAC
        self._steps_cache: dict[int, list[float]] = {}

    # --- bytes and FLOPs -------------------------------------------------------------------------------
    def active_experts(self, tokens: float) -> float:
        """Eu(T) = E (1 - (1 - top_k/E)^T): distinct experts per MoE layer touched by T tokens."""
        p = self.params
        miss = 1.0 - p.experts_per_token / p.n_experts  # chance one token avoids a given expert
        return p.n_experts * (1.0 - math.pow(miss, tokens))

    def weight_bytes(self, tokens: float) -> float:
        """W(T) = W_base + L_moe Eu(T) S_expert: weight bytes one forward pass over T tokens reads."""
        p = self.params
        return p.base_weight_bytes + p.moe_layers * self.active_experts(tokens) * p.expert_bytes

    def attended_positions(self, context: float) -> float:
        """a(c) = L_global c + L_chunked min(c, chunk): KV positions one token attends to, over layers."""
        p = self.params
        return p.global_attn_layers * context + p.chunked_attn_layers * min(context, p.attn_chunk)

    def kv_bytes(self, context: float) -> float:
        """K(c) = 2 H_kv d b_kv a(c): KV-cache bytes read per decoded sequence at context c."""
        return self.kv_bytes_per_position * self.attended_positions(context)

    def flops_per_token(self, context: float) -> float:
        """F(c) = 2 N + 4 H d a(c): FLOPs of one token at context c."""
        return 2 * self.params.active_params + self.attn_flops_per_position * self.attended_positions(context)

    def prefill_flops(self, start: int, end: int) -> float:
        """FLOPs to prefill prompt positions [start, end): (end - start) F((start + end) / 2)."""
        return (end - start) * self.flops_per_token((start + end) / 2)

    # --- time --------------------------------------------------------------------------------------------
    def step_time_sum(
        self, batch: int, attended: float, k: int, prefill_tokens: int = 0, prefill_flops: float = 0.0
    ) -> float:
        """Duration of one engine step, from exact per-batch sums (what the engine calls).

        ``attended`` = sum of a(c_i) over the B decoding sequences. With B > 0::

            t = t0 + (W(B(k+1)) + K_pos attended) / BW + (k+1) (2 N B + F_pos attended) / PHI_d
                + k t_d + prefill_flops / PHI_p

        With B = 0 (a pure prefill step of P tokens): ``t = t0 + W(P) / BW + prefill_flops / PHI_p``.
        """
        p = self.params
        if batch <= 0:
            return (
                p.step_overhead_s
                + self.weight_bytes(prefill_tokens) / p.hbm_bandwidth
                + (prefill_flops / p.prefill_flops)
            )
        tokens = batch * (k + 1)
        memory = (self.weight_bytes(tokens) + self.kv_bytes_per_position * attended) / p.hbm_bandwidth
        compute = (k + 1) * (2 * p.active_params * batch + self.attn_flops_per_position * attended)
        return (
            p.step_overhead_s
            + memory
            + compute / p.decode_flops
            + k * p.draft_token_s
            + prefill_flops / p.prefill_flops
        )

    def step_time(self, batch: int, context: float, k: int) -> float:
        """t_step = t0 + (W(T) + B K(c)) / BW + T F(c) / PHI_d + k t_d, with T = B (k + 1)."""
        return self.step_time_sum(batch, batch * self.attended_positions(context), k)

    def prefill_time(self, n: int) -> float:
        """t_pf(n) = t0 + W(n) / BW + n F(n/2) / PHI_p: a prompt of n tokens alone (TTFT, no queueing)."""
        return self.step_time_sum(0, 0.0, 0, n, self.prefill_flops(0, n))

    # --- speculation -------------------------------------------------------------------------------------
    def draft_len(self, batch: int) -> int:
        """k = draft_len while B <= spec_max_batch, else 0 (speculation off at large batch)."""
        p = self.params
        return p.draft_len if batch <= p.spec_max_batch else 0

    def token_distribution(self, k: int) -> tuple[float, ...]:
        """(P(1), ..., P(k+1)): tokens committed per verify step, P(j) = p_1..p_{j-1} (1 - p_j)."""
        probs = self.params.accept_probs[:k]
        if len(probs) < k:
            raise ValueError(f"draft length {k} exceeds the {len(probs)} acceptance probabilities")
        out: list[float] = []
        reach = 1.0  # probability that draft j is reached (all earlier ones accepted)
        for p in probs:
            out.append(reach * (1.0 - p))
            reach *= p
        out.append(reach)
        return tuple(out)

    def acceptance_length(self, k: int) -> float:
        """AL(k) = sum_j j P(j) = 1 + sum_{i<=k} p_1 ... p_i (mean tokens committed per step)."""
        return sum((j + 1) * pj for j, pj in enumerate(self.token_distribution(k)))

    def expected_steps(self, tokens: int, k: int) -> float:
        """E[steps to commit ``tokens`` tokens], the last step truncated (renewal: about tokens / AL).

        ``S(m) = 1 + sum_j P(j) S(m - j)``, ``S(m <= 0) = 0``; exact up to 4096, then ``+ (m - 4096) / AL``.
        """
        if tokens <= 0:
            return 0.0
        table = self._steps_cache.get(k)
        if table is None:
            dist = self.token_distribution(k)
            table = [0.0] * (self._STEPS_TABLE + 1)
            for m in range(1, self._STEPS_TABLE + 1):
                table[m] = 1.0 + sum(pj * table[max(0, m - j - 1)] for j, pj in enumerate(dist))
            self._steps_cache[k] = table
        if tokens <= self._STEPS_TABLE:
            return table[tokens]
        return table[self._STEPS_TABLE] + (tokens - self._STEPS_TABLE) / self.acceptance_length(k)

    # --- prediction --------------------------------------------------------------------------------------
    def predict(self, concurrency: int, isl: int, osl: int) -> Prediction:
        """Steady state of ``concurrency`` closed-loop users sending ISL/OSL ``isl``/``osl`` requests.

        Choices (they mirror what :mod:`tpsbench.reference.engine` does, so measurement can match):

        - B = min(concurrency, B_max), k = draft_len(B), mean context c = isl + osl / 2.
        - Each other user's next prompt rides along a decode step once per answer, i.e. (B - 1) AL / osl
          prompts per step, each adding its FLOPs isl F(isl/2) / PHI_p:
          ``step_s = t_step(B, c, k) + (B - 1) AL / osl x isl F(isl/2) / PHI_p``.
        - tps_user = (osl - 1) / (S(osl - 1) step_s) (first chunk = 1 token from the prefill).
        - TTFT at B = 1: the engine is idle when the request arrives, ``t_pf(isl)``. At B > 1: a closed-loop
          request arrives just after a step began (its predecessor's last chunk ended the previous one), so
          it waits about one step, then prefills over ceil(isl / chunk budget) steps:
          ``ttft = (1 + ceil(isl / budget)) step_s + isl F(isl/2) / PHI_p``.
        - Beyond B_max the extra users queue; by Little's law they wait
          ``(concurrency - B_max) x e2e_slot / B_max``.
        """
        if concurrency < 1 or isl < 1 or osl < 1:
            raise ValueError(f"concurrency, isl and osl must be >= 1, got {concurrency}, {isl}, {osl}")
        p = self.params
        batch = min(concurrency, p.max_batch)
        k = self.draft_len(batch)
        al = self.acceptance_length(k)
        context = isl + osl / 2
        ride_along = self.prefill_flops(0, isl) / p.prefill_flops  # one prompt's extra time in a step
        step_s = self.step_time(batch, context, k) + (batch - 1) * al / osl * ride_along
        decode_s = self.expected_steps(osl - 1, k) * step_s
        tps_user = (osl - 1) / decode_s if osl > 1 else al / step_s
        if batch == 1:
            ttft_free = self.prefill_time(isl)
        else:
            ttft_free = (1 + math.ceil(isl / p.prefill_chunk_tokens)) * step_s + ride_along
        e2e_slot = ttft_free + decode_s
        queue_s = max(0, concurrency - p.max_batch) * e2e_slot / p.max_batch
        return Prediction(
            concurrency=concurrency,
            isl=isl,
            osl=osl,
            batch=batch,
            k=k,
            accept_len=al,
            step_s=step_s,
            tps_user=tps_user,
            server_tps=batch * al / step_s,
            output_tps=batch * osl / e2e_slot,
            ttft_s=ttft_free + queue_s,
            e2e_s=ttft_free + queue_s + decode_s,
            queue_s=queue_s,
        )

    def predict_curve(self, concurrencies: Iterable[int], isl: int, osl: int) -> list[Prediction]:
        """:meth:`predict` at each concurrency, in order."""
        return [self.predict(c, isl, osl) for c in concurrencies]

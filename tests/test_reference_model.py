"""The reference model reproduces the published points and the reference document's table."""

from __future__ import annotations

import math

import pytest

from tpsbench.reference.model import (
    DEFAULT_PARAMS,
    EAGLE3_ACCEPTANCE_LENGTH,
    ModelParams,
    ReferenceModel,
    param_table,
)
from tpsbench.reference.published import PREVIOUS_BEST_TPS_USER, RECORD_SERVER_TPS, RECORD_TPS_USER

MODEL = ReferenceModel()


def test_record_tps_user_at_concurrency_1_within_3_percent() -> None:
    p = MODEL.predict(1, 1000, 1000)
    assert p.k == 3
    assert p.tps_user == pytest.approx(RECORD_TPS_USER, rel=0.03)


def test_vendor_server_tps_at_max_batch_within_10_percent() -> None:
    p = MODEL.predict(DEFAULT_PARAMS.max_batch, 1000, 1000)
    assert p.batch == 2048 and p.k == 0
    assert p.server_tps == pytest.approx(RECORD_SERVER_TPS, rel=0.10)
    assert p.output_tps == pytest.approx(RECORD_SERVER_TPS, rel=0.10)  # what a closed-loop run measures


def test_speculation_off_gives_the_lower_baseline() -> None:
    off = ReferenceModel(DEFAULT_PARAMS.with_overrides({"draft_len": 0})).predict(1, 1000, 1000)
    assert off.k == 0 and off.accept_len == 1.0
    assert off.tps_user == pytest.approx(496, rel=0.01)
    assert off.tps_user < PREVIOUS_BEST_TPS_USER < RECORD_TPS_USER


@pytest.mark.parametrize(
    ("batch", "tps_user", "server_tps"),
    [
        (1, 1051, 1051),
        (8, 639, 5100),
        (64, 176, 11300),
        (256, 90, 23000),
        (1024, 53, 54000),
        (2048, 36, 74000),
    ],
)
def test_reference_table(batch: int, tps_user: float, server_tps: float) -> None:
    p = MODEL.predict(batch, 1000, 1000)
    assert p.tps_user == pytest.approx(tps_user, rel=0.02)
    assert p.server_tps == pytest.approx(server_tps, rel=0.02)


def test_step_time_and_speculation_numbers() -> None:
    assert MODEL.step_time(1, 1500, 3) == pytest.approx(2.60e-3, abs=0.005e-3)
    assert MODEL.acceptance_length(3) == pytest.approx(2.735, abs=0.001)
    dist = MODEL.token_distribution(3)
    assert [round(x, 3) for x in dist] == [0.22, 0.218, 0.168, 0.393]
    assert sum(dist) == pytest.approx(1.0)
    measured = EAGLE3_ACCEPTANCE_LENGTH[3]
    assert min(measured) <= MODEL.acceptance_length(3) <= max(measured)
    assert MODEL.draft_len(8) == 3 and MODEL.draft_len(9) == 0
    assert MODEL.token_distribution(0) == (1.0,)


def test_bytes_and_flops_formulas() -> None:
    assert MODEL.kv_bytes_per_position * 48 == 96 * 1024  # 96 KiB per token at FP8
    assert MODEL.kv_bytes(1000) == 2048 * (12 * 1000 + 36 * 1000)
    assert MODEL.kv_bytes(10_000) == 2048 * (12 * 10_000 + 36 * 8192)
    assert MODEL.flops_per_token(0) == 2 * 16.1e9
    assert MODEL.active_experts(1) == pytest.approx(1.0)
    assert MODEL.active_experts(100_000) == pytest.approx(128.0)
    assert MODEL.weight_bytes(0) == 14.1e9


@pytest.mark.parametrize(("isl", "ttft_s"), [(1000, 0.012), (10_000, 0.031), (100_000, 0.29)])
def test_prefill_ttft_without_queueing(isl: int, ttft_s: float) -> None:
    assert MODEL.prefill_time(isl) == pytest.approx(ttft_s, rel=0.05)
    assert MODEL.predict(1, isl, 100).ttft_s == MODEL.prefill_time(isl)


def test_curve_trades_per_user_speed_for_server_throughput() -> None:
    curve = MODEL.predict_curve([1, 8, 64, 256, 1024, 2048], 1000, 1000)
    users = [p.tps_user for p in curve]
    servers = [p.server_tps for p in curve]
    assert users == sorted(users, reverse=True)
    assert servers == sorted(servers)


def test_beyond_max_batch_requests_queue() -> None:
    full = MODEL.predict(2048, 1000, 1000)
    over = MODEL.predict(4096, 1000, 1000)
    assert over.batch == 2048 and over.server_tps == full.server_tps
    assert over.queue_s == pytest.approx(full.e2e_s, rel=0.01)  # twice the slots' worth of users
    assert over.ttft_s == pytest.approx(full.ttft_s + over.queue_s)


def test_expected_steps_with_truncation() -> None:
    assert MODEL.expected_steps(100, 0) == 100
    assert MODEL.expected_steps(1, 3) == 1
    al = MODEL.acceptance_length(3)
    # renewal theorem: steps grow by 1/AL per token, plus a bounded overshoot term
    assert MODEL.expected_steps(10_000, 3) - MODEL.expected_steps(9_000, 3) == pytest.approx(
        1000 / al, rel=1e-3
    )
    assert 999 / al < MODEL.expected_steps(999, 3) < 999 / al + 1


def test_overrides_parse_strings_and_reject_unknown_names() -> None:
    p = DEFAULT_PARAMS.with_overrides(
        {"draft_len": "0", "hbm_bandwidth": "40e12", "accept_probs": "0.8,0.7,0.6"}
    )
    assert p.draft_len == 0 and p.hbm_bandwidth == 40e12 and p.accept_probs == (0.8, 0.7, 0.6)
    assert DEFAULT_PARAMS.with_overrides({"max_batch": 512.0}).max_batch == 512
    assert p.overrides() == {"draft_len": 0, "hbm_bandwidth": 40e12, "accept_probs": (0.8, 0.7, 0.6)}
    with pytest.raises(ValueError, match=r"unknown reference model parameter 'draft_length'.*draft_len"):
        DEFAULT_PARAMS.with_overrides({"draft_length": 2})
    with pytest.raises(ValueError, match="'max_batch': expected int"):
        DEFAULT_PARAMS.with_overrides({"max_batch": "many"})
    with pytest.raises(ValueError, match="max_batch"):
        DEFAULT_PARAMS.with_overrides({"max_batch": 2.5})
    with pytest.raises(ValueError, match="accept_probs"):
        DEFAULT_PARAMS.with_overrides({"draft_len": 4})
    with pytest.raises(ValueError, match="hbm_bandwidth must be > 0"):
        ModelParams(hbm_bandwidth=0.0)


def test_every_parameter_has_a_status_and_a_source() -> None:
    rows = param_table()
    assert {r["name"] for r in rows} == set(DEFAULT_PARAMS.to_dict())
    assert all(r["status"] in {"measured", "vendor", "derived", "assumption"} and r["source"] for r in rows)
    fitted = {r["name"] for r in rows if r["status"] == "assumption"}
    assert {"hbm_bandwidth", "decode_flops", "prefill_flops", "step_overhead_s", "draft_token_s"} <= fitted


def test_prediction_is_json_ready() -> None:
    d = MODEL.predict(8, 1000, 1000).to_dict()
    assert all(isinstance(v, int | float) and math.isfinite(v) for v in d.values())

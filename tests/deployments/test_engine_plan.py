"""Plan steps are typed, and Release.plan stays the JSON it always was: a plan stored before the
steps were typed loads into them and writes back key for key."""

from __future__ import annotations

import json

from deployments.engine import (
    AnalyzeStep,
    PlanStep,
    PromoteStep,
    StepAction,
    StepPhase,
    StepTarget,
    TrafficStep,
    build_plan,
    plan_to_json,
)
from deployments.runtime.base import Mirror, Track

# A shadow release through staging with a rollback rehearsal, as the untyped engine stored it.
STORED = json.loads(
    """[
 {"phase": "staging", "action": "deploy", "target": "staging", "version": 2, "track": "stable"},
 {"phase": "staging", "action": "await_ready", "target": "staging", "version": 2,
  "deadline_seconds": 120},
 {"phase": "staging", "action": "traffic", "target": "staging", "weights": {"2": 100}},
 {"phase": "staging", "action": "smoke", "target": "staging", "version": 2},
 {"phase": "staging", "action": "promote", "target": "staging", "version": 2, "previous": 1},
 {"phase": "rehearsal", "action": "traffic", "target": "staging", "weights": {"1": 100}},
 {"phase": "rehearsal", "action": "smoke", "target": "staging", "version": 1, "routed": true},
 {"phase": "rehearsal", "action": "traffic", "target": "staging", "weights": {"2": 100}},
 {"phase": "rehearsal", "action": "smoke", "target": "staging", "version": 2, "routed": true},
 {"phase": "production", "action": "deploy", "target": "target", "version": 2, "track": "shadow"},
 {"phase": "production", "action": "await_ready", "target": "target", "version": 2,
  "deadline_seconds": 120},
 {"phase": "production", "action": "smoke", "target": "target", "version": 2},
 {"phase": "production", "action": "traffic", "target": "target", "weights": {"1": 100},
  "mirror": {"version": 2, "percent": 30}},
 {"phase": "production", "action": "analyze", "target": "target", "stable": 1, "canary": 2,
  "weight": 0, "shadow": true, "interval_seconds": 60.0, "warmup_seconds": 6.5,
  "min_requests": 5, "max_cost_increase": null},
 {"phase": "production", "action": "traffic", "target": "target", "weights": {"2": 100}},
 {"phase": "production", "action": "promote", "target": "target", "version": 2, "previous": 1}
]"""
)
PARAMS = {
    "analysis_interval_seconds": 60,
    "analysis_warmup_seconds": 6.5,
    "min_requests": 5,
    "mirror_percent": 30,
    "progress_deadline_seconds": 120,
}


def test_a_plan_stored_before_steps_were_typed_loads_and_writes_back_key_for_key():
    steps = [PlanStep.from_json(data) for data in STORED]
    assert plan_to_json(steps) == STORED
    mirror = steps[12]
    assert isinstance(mirror, TrafficStep)
    assert (mirror.weights, mirror.mirror, mirror.deadline_seconds) == (
        {1: 100},
        Mirror(2, 30),
        None,
    )
    analysis = steps[13]
    assert isinstance(analysis, AnalyzeStep) and analysis.shadow and analysis.interval_seconds == 60
    assert steps[0].phase is StepPhase.STAGING and steps[0].target is StepTarget.STAGING


def test_a_new_plan_is_the_stored_one_with_a_deadline_on_each_traffic_step():
    plan = build_plan(
        strategy="shadow", params=PARAMS, new=2, old=1, staging_old=1, has_staging=True
    )
    assert [PlanStep.from_json(data) for data in plan_to_json(plan)] == plan
    traffic = [step for step in plan if isinstance(step, TrafficStep)]
    assert {step.deadline_seconds for step in traffic} == {120}
    without = [
        {k: v for k, v in data.items() if k != "deadline_seconds"}
        if data["action"] == StepAction.TRAFFIC
        else data
        for data in plan_to_json(plan)
    ]
    assert without == STORED


def test_a_first_release_has_nothing_to_compare_or_go_back_to():
    plan = build_plan(
        strategy="canary", params={}, new=1, old=None, staging_old=None, has_staging=False
    )
    assert [step.action for step in plan] == [
        StepAction.DEPLOY,
        StepAction.AWAIT_READY,
        StepAction.SMOKE,
        StepAction.TRAFFIC,
        StepAction.PROMOTE,
    ]
    assert plan[0].track is Track.STABLE
    assert isinstance(plan[-1], PromoteStep) and plan[-1].previous is None

"""A scripted analyzer for release-engine tests that run against the fake Kubernetes API, where
no real traffic exists to analyse. The verdict comes from a file so that a real worker process
and the test agree on it. Monitoring's real analysis is tested against a real Prometheus."""

from __future__ import annotations

import os
from pathlib import Path

from deployments.analysis import AnalysisRequest, AnalysisResult, Verdict

VERDICT_FILE_ENV = "MODELPLANE_SCRIPTED_VERDICT_FILE"


def set_verdict(path: Path, verdict: str) -> None:
    path.write_text(verdict)


class ScriptedAnalyzer:
    def analyze(self, request: AnalysisRequest) -> AnalysisResult:
        path = os.environ.get(VERDICT_FILE_ENV)
        verdict = Path(path).read_text().strip() if path and Path(path).exists() else "pass"
        return AnalysisResult(
            Verdict(verdict),
            [f"scripted {verdict}"],
            {
                "stable": request.stable_version,
                "canary": request.canary_version,
                "window_seconds": request.window_seconds,
                "error_rate": 0.0,
            },
        )

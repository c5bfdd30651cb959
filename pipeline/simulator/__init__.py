"""A faithful fake of the DDS task-center API (`GET /v3.1/{project_id}/jobs`) for tests, demos and benchmarks.

    with DdsSimulator(SimulatorConfig(seed=7), port=0) as sim:
        requests.get(f"{sim.url}/v3.1/{sim.project_id}/jobs", params=..., headers={"X-Auth-Token": "sim-token"})
"""

from pipeline.simulator.faults import FAULT_KINDS, Fault, FaultInjector
from pipeline.simulator.jobs import TASK_NAMES, JobQuery, JobStore
from pipeline.simulator.server import (
    ApiError,
    Authenticator,
    DdsSimulator,
    OpenAuthenticator,
    RecordedRequest,
    RequestInfo,
    Response,
    Route,
    SimulatorConfig,
    TokenAuthenticator,
    error_response,
    json_response,
)

__all__ = [
    "FAULT_KINDS", "TASK_NAMES", "ApiError", "Authenticator", "DdsSimulator", "Fault", "FaultInjector", "JobQuery",
    "JobStore", "OpenAuthenticator", "RecordedRequest", "RequestInfo", "Response", "Route", "SimulatorConfig",
    "TokenAuthenticator", "error_response", "json_response",
]

"""A sync as a run makes it, without Dagster: a warehouse of its own, the client against the simulator."""

from collections.abc import Sequence
from datetime import date, datetime

from pipeline.api.auth import TokenAuth
from pipeline.api.client import DdsTaskCenterClient
from pipeline.simulator import DdsSimulator
from pipeline.sync import sync_days
from pipeline.warehouse.store import Warehouse
from tests.support.simulator_http import TOKEN


def run_sync(url: str, simulator: DdsSimulator, days: Sequence[date], now: datetime) -> int:
    """One run syncing ``days`` from ``simulator`` (which wants simulator_http's TOKEN) into the warehouse at
    ``url``, its schema made ready as a run's is; the jobs it inserted."""
    warehouse = Warehouse(url)
    try:
        with DdsTaskCenterClient(simulator.url, simulator.project_id, TokenAuth(TOKEN)) as client:
            return sync_days(client, warehouse, days, now=now).inserted
    finally:
        warehouse.dispose()

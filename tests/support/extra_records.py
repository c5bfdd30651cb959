"""A jobs route serving records the simulator cannot make (ids holding NULs, a status left out, a created_at in
another form), each on the pages of the windows that hold its instant, beside the simulator's own jobs."""

import json
from datetime import datetime

from pipeline.simulator import json_response
from pipeline.simulator.jobs import parse_api_time
from pipeline.simulator.server import JOBS_PATH, list_jobs


class ExtraRecords:
    """The records added to the simulator's answers, as (created instant, record); the test may change them between
    syncs (a job whose created_at moves, for one)."""

    def __init__(self, records: list[tuple[datetime, dict]] = ()) -> None:
        self.records = list(records)

    def route(self) -> tuple:
        """The simulator's jobs route with the records of each request's window added to its first page."""

        def answer(sim, request):
            response = list_jobs(sim, request)
            if response.status != 200 or request.query.get("offset", "0") != "0":
                return response
            start, end = (parse_api_time(name, request.query.get(name)) for name in ("start_time", "end_time"))
            extra = [record for instant, record in self.records if start <= instant <= end]
            payload = json.loads(response.body)
            payload["jobs"] += extra
            payload["total_count"] += len(extra)
            return json_response(200, payload)

        return ("GET", JOBS_PATH, answer, True)

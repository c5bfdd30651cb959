"""The DDS task-center API: time windows, retries, paging and the client that ties them together."""

from pipeline.api.client import DdsTaskCenterClient, FetchResult, FetchStats
from pipeline.api.errors import DdsApiError
from pipeline.api.pagination import Page
from pipeline.api.retry import RETRY_KINDS, RetryPolicy
from pipeline.api.windows import MAX_API_SPAN, TimeWindow, format_api_time

__all__ = [
    "MAX_API_SPAN",
    "RETRY_KINDS",
    "DdsApiError",
    "DdsTaskCenterClient",
    "FetchResult",
    "FetchStats",
    "Page",
    "RetryPolicy",
    "TimeWindow",
    "format_api_time",
]

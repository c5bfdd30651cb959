"""The simulated dataset that ``dds-tasks demo`` syncs and ``dds-tasks simulate`` serves by default.

Both draw the same jobs (a day's jobs depend only on the seed, the volume and the project id), so following the
README through the demo and then the simulator shows one set of jobs, never two mixed.
"""

from pipeline.simulator.server import DEFAULT_PROJECT_ID

SEED = 2026
JOBS_PER_DAY = 200
# The API's month, and some days before it that a backfill can be tried on (they answer as aged out).
HISTORY_DAYS = 42
PROJECT_ID = DEFAULT_PROJECT_ID

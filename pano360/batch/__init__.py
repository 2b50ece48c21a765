"""Convert a folder of videos: job discovery, resumable runs, local processes or Ray tasks."""

from pano360.batch.jobs import Job, discover_jobs, is_complete
from pano360.batch.run import run_batch, summarize

__all__ = ["Job", "discover_jobs", "is_complete", "run_batch", "summarize"]

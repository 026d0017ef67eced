"""Batch videos from a spreadsheet: one talking-head video per row, on this computer or a Ray cluster.

A CSV or XLSX with the columns photo (a file, or a saved twin profile's name), script or audio, and
optionally voice, language, subtitles, name. Each row becomes one MP4 through
``pipelines.twin.pipeline.create_twin_video``; a summary CSV (row, name, status, duration,
render_seconds, output, error) is written as rows finish, and the finished videos are zipped.

- Resumable: each video's name holds a hash of its row's inputs (the photo's and recording's bytes
  included), so a row already rendered for the same inputs is skipped; a failed row fails alone with
  its reason and the rest go on.
- Local: one worker process per core (each loads its models once, through its own model cache).
- Ray: ``ray_address="local"`` starts a Ray instance here; "auto" or "ray://HOST:10001" joins a
  cluster. One Ray task per row; inputs travel as bytes unless the nodes share a folder; a lost
  worker's rows are retried by Ray (``max_retries``).
- Bad input is refused with a clear message: for the file (missing columns, unreadable encoding) before
  any work, or for the row (unknown voice, a path outside the allowed folders, no face...).

Consent: running a batch declares that you have the right to animate every face in it, as the twin
CLI does; every video carries the visible "AI-generated" label.

    python -m pipelines.batch jobs.csv --out videos/
    python -m pipelines.batch jobs.xlsx --out videos/ --ray-address ray://head:10001
"""
from .plan import RenderOptions, RowJob
from .run import BatchConfig, BatchResult, RowResult, read_summary, run_batch
from .spreadsheet import COLUMNS, open_sheet

__all__ = ["BatchConfig", "BatchResult", "RowResult", "RenderOptions", "RowJob", "run_batch", "read_summary",
           "open_sheet", "COLUMNS"]

"""What a person sees while checkpointed work runs: units, notes, captured output, progress.

One format for sizes, durations and ages (``units``), the short hit/miss lines (``notes``), the
recording and replay of a block's output (``capture``) and progress bars (``progress``). Used by
every front end and the tools; imports nothing above the configuration."""

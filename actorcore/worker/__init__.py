"""Worker processes (DESIGN.md §2): stateless task executors, or the host of one actor."""

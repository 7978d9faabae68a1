"""Messages between actor systems in different processes (DESIGN.md §3, §5)."""

"""Messages between actor systems in different processes (docs/architecture.md, "The actor
kernel")."""

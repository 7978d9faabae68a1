"""actorcore."""

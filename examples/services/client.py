"""Talks to the counter service that `actorcore supervise examples/services/services.toml`
(or counter.toml) keeps alive."""

import actorcore as ray

ray.init(address="auto", namespace="services")
counter = ray.get_actor("counter")
print("count:", ray.get(counter.incr.remote()))
ray.shutdown()

"""Talks to the kv service that `actorcore supervise examples/services/services.toml` keeps alive."""

import actorcore as ray

ray.init(address="auto", namespace="services")
kv = ray.get_actor("kv")
items = {"a": 1, "b": 2, "c": 3}
ray.get([kv.put.remote(key, value) for key, value in items.items()])
keys = ray.get(kv.keys.remote())
print(f"kv: put {len(items)} keys; keys = {keys}; get('a') = {ray.get(kv.get.remote('a'))}")
print(f"kv: size = {ray.get(kv.size.remote())}; restored from a checkpoint: {ray.get(kv.was_restored.remote())}")
ray.shutdown()

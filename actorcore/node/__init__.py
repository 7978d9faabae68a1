"""The node (Ray's raylet): a process whose parts are actors (docs/architecture.md, "The
actor tree of a node").

`scheduler.py` grants worker leases, `worker_pool.py` supervises worker processes,
`object_store.py` keeps the node's shared-memory objects, `gcs_link.py` is the node's etcd
session; `main.py` starts them under one root supervisor. The records on the node's boundary
(`NodeConfig`, `NodeEndpoints`, `WorkerConfig`) are in `actorcore.node_config`, shared with the
drivers and workers that start or reach a node; `actorcore.node_launcher` starts a node process
for ``init()`` and ``actorcore start``.
"""

"""Runtime environments: what a task's, an actor's or a job's worker needs besides the cluster's
own code (docs/architecture.md, "Runtime environments").

`packaging` packs a local directory (a ``working_dir`` or a ``py_modules`` entry) into a
content-addressed zip, `package_store` keeps packages in etcd for every node, and
`package_cache` extracts them once per node.
"""

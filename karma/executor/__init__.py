"""Where attempts run: in this process's thread pool, or on the workers of a Dask cluster."""

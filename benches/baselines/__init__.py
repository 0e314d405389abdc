"""Hand-written baselines for the reference workload B10 (performance-baselines.md).

The ten segments S1–S10 of ``examples/segments.toml``, evaluated three ways, all with the
meaning ``docs/language.md`` gives them:

* `benches.baselines.duckdb_b10`: SQL over DuckDB native tables or over in-memory Arrow;
* `benches.baselines.polars_b10`: Polars lazy queries over in-memory DataFrames;
* `benches.baselines.numba_b10`: hand-written Numba kernels over the store's own arrays
  (the "speed of light" the generated kernels are measured against).

`benches.baselines.check_b10` runs all three, checks them on the hand-made edge profiles of
`benches.baselines.edge_b10` and that every segment has exactly the same members in each on
B10, and prints the timings. The shared definitions are in `benches.baselines.b10`.
"""

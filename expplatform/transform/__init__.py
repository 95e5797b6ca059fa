"""dbt side of the platform: the dbt project wiring and the DuckDB functions its models call."""

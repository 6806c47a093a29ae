"""Workflows: DAG runs of named steps (chains and groups are DAG shapes)."""

"""Alembic migrations of the durable schema (`orchestrator/db/tables.py`).

A package so that it ships in the wheel: `orchestrator.db.migrate` finds it by import.
"""

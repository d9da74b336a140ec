"""Warehouse engines: one small protocol (`engine.WarehouseEngine`), one module per engine."""

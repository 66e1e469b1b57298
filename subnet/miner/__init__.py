"""The miner: an aiohttp server (btauth/1, admission, metrics) in front of an inference engine.

`MinerServer.create(config)` / `await start()` / `await stop()`; `create_app(...)` for the bare
app; `subnet.miner.admission` for the pure admission policy.
"""

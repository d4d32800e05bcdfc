"""The ways to run the collective: embedded, the services around Redis, backtest, tune.

Also the one-shot operations on a running collective and `rawe doctor`.
"""

"""Brokers by name: `paper` (built in) or `alpaca` (an Alpaca account through alpaca-py).

Alpaca is paper trading unless `live`. Live trading needs `live` and a confirmation: an
interactive one (type LIVE at the prompt, which shows the account and its equity), or
`confirm_live` for scripts. Without a terminal and without `confirm_live`, live is refused.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any

from rawe_cli.brokers.base import Broker
from rawe_cli.config import Settings
from rawe_cli.errors import RaweError, UsageError

BROKERS = ("paper", "alpaca")
CONFIRM_WORD = "LIVE"


def ask_terminal(prompt: str) -> bool:
    """Ask on the terminal; refuse when there is none (a script must say --confirm-live)."""
    if not sys.stdin.isatty():
        raise UsageError("--live needs a confirmation: run it in a terminal, or add "
                        "--confirm-live in scripts")
    print(prompt, end="", file=sys.stderr, flush=True)
    try:
        reply = sys.stdin.readline()
    except (EOFError, KeyboardInterrupt):
        reply = ""
    return reply.strip() == CONFIRM_WORD


def make_broker(
    name: str,
    settings: Settings,
    *,
    live: bool = False,
    confirm_live: bool = False,
    env: Mapping[str, str] | None = None,
    confirm: Callable[[str], bool] | None = None,
    log: Callable[[str], None] | None = None,
) -> Broker:
    """The broker called `name`. RaweError (one line) on unknown names, missing or rejected
    keys, an account that cannot trade, or live trading not confirmed."""
    name = (name or "").strip().lower()
    if name not in BROKERS:
        raise UsageError(f"unknown broker {name!r} (choose {' or '.join(BROKERS)})")
    if confirm_live and not live:
        raise UsageError("--confirm-live goes only with --live")
    if name == "paper":
        if live:
            raise UsageError("--live needs --broker alpaca (the paper broker never trades)")
        from rawe_cli.brokers.paper import PaperBroker

        return PaperBroker(fee_bps=settings.fee_bps, slippage_bps=settings.slippage_bps)

    from rawe_cli.brokers.alpaca import AlpacaBroker, config_from_env
    from rawe_cli.brokers.alpaca_streaming import StreamingAlpacaBroker

    cfg = config_from_env(env, live=live)
    inner = AlpacaBroker(cfg, say=log)
    account: dict[str, Any] = inner.check_account()
    mode = "LIVE" if live else "paper"
    if live and not confirm_live:
        ask = confirm or ask_terminal
        prompt = (f"LIVE trading with real money on Alpaca account {account['account_number']} "
                  f"(equity ${account['equity']:,.2f}) at {cfg.endpoint}.\n"
                  f"Type {CONFIRM_WORD} to go on: ")
        if not ask(prompt):
            raise RaweError("live trading not confirmed; nothing was sent")
    if log is not None:
        log(f"alpaca {mode} account {account['account_number']} at {cfg.endpoint}: "
            f"equity ${account['equity']:,.2f}, buying power ${account['buying_power']:,.2f}")
    # orders off the engine's loop, fills by the trade-update stream (REST as the fallback)
    return StreamingAlpacaBroker(inner, say=log).start()

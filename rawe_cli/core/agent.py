"""An agent: a personality reading signals and writing proposals. It never trades.

Pure: the signal carries its event time; proposal ids are deterministic (agent, signal,
sequence), so the same world gives the same proposals. Durations in bars (holding horizon,
cooldown) are resolved against `bar_seconds`, the bar size of the data; stop-loss and
take-profit in noise units against the signal's per-bar volatility.
"""

from __future__ import annotations

import hashlib

from rawe_cli.config import Personality
from rawe_cli.models import ArbitrageSignal, Direction, Proposal, SignalType


def confidence_of(signal: ArbitrageSignal, personality: Personality) -> float:
    """Strength discounted by the signal's risk, as much as the personality is risk-averse."""
    return max(0.0, signal.strength * (1.0 - personality.risk_aversion * signal.risk_score))


def direction_for(signal: ArbitrageSignal, personality: Personality) -> Direction:
    """`fade` trades against building narratives; exhaustion signals are reversals already."""
    direction = signal.direction
    if personality.stance == "fade" and signal.signal_type is SignalType.NARRATIVE_LEADS:
        return direction.opposite
    return direction


class Agent:
    def __init__(self, personality: Personality, bar_seconds: float = 5.0) -> None:
        self.personality = personality
        self.name = personality.name
        self.bar_seconds = bar_seconds
        self.horizon = personality.holding_horizon.seconds(bar_seconds)
        self.horizon_bars = personality.holding_horizon.bars(bar_seconds)
        self.cooldown = personality.cooldown.seconds(bar_seconds)
        self._trusts = frozenset(personality.trusts)
        self._last_proposal: dict[str, float] = {}  # asset -> event time
        self._seq = 0

    def consider(self, signal: ArbitrageSignal) -> Proposal | None:
        """The proposal this agent makes on `signal`, or None if it passes."""
        p = self.personality
        if signal.signal_type.value not in self._trusts:
            return None
        if signal.strength < p.min_strength or signal.risk_score > p.max_risk_score:
            return None
        confidence = confidence_of(signal, p)
        if confidence < p.min_confidence:
            return None
        last = self._last_proposal.get(signal.financial_asset)
        if last is not None and signal.timestamp - last < self.cooldown:
            return None
        self._last_proposal[signal.financial_asset] = signal.timestamp
        size = p.position_size * (confidence if p.size_by_confidence else 1.0)
        self._seq += 1
        key = (f"{self.name}|{signal.narrative_id}|{signal.financial_asset}|"
               f"{signal.timestamp!r}|{self._seq}")
        pid = "p-" + hashlib.blake2b(key.encode(), digest_size=10).hexdigest()
        vol = signal.metadata.get("volatility")
        bar_vol = float(vol) if isinstance(vol, int | float) else None
        return Proposal(
            id=pid,
            agent=self.name,
            asset=signal.financial_asset,
            direction=direction_for(signal, p),
            size=round(size, 6),
            expected_profit=signal.expected_profit,
            risk_score=signal.risk_score,
            narrative_id=signal.narrative_id,
            signal_type=signal.signal_type.value,
            timestamp=signal.timestamp,
            confidence=round(confidence, 6),
            horizon=self.horizon,
            stop_loss=round(p.stop_loss.fraction(bar_vol, self.horizon_bars), 8),
            take_profit=round(p.take_profit.fraction(bar_vol, self.horizon_bars), 8),
        )

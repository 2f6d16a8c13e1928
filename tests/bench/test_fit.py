"""The committed fit is what the recorded sessions give, and says what it was fitted from."""

from __future__ import annotations

import pytest

from bench import fit
from bench.workload import Fit


@pytest.mark.skipif(not fit.FIXTURES.is_dir(), reason="../shared/fixtures is not beside the repository")
def test_committed_parameters_are_those_the_captures_give() -> None:
    assert fit.fit() == Fit.load()


def test_venues_short_of_recorded_trades_take_the_pooled_shapes() -> None:
    venues = Fit.load().venues
    assert venues["kraken"].fitted_from == []
    assert venues["binance"].fitted_from and venues["coinbase"].fitted_from
    for venue in venues.values():
        assert venue.trades_per_s_per_symbol > 0 and 0 < venue.taker_buy_fraction < 1
        assert venue.log_notional_quantiles == sorted(venue.log_notional_quantiles)

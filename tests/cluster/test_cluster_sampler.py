"""The double-ownership check itself must be able to fail (unit tests of the test helper)."""

from __future__ import annotations

import pytest

from tests.cluster.cluster_helpers import Sample, assert_never_owned_twice


def test_handover_in_order_passes() -> None:
    samples = [Sample(1.0, "a", {"s": 1}), Sample(2.0, "a", {"s": 1}), Sample(3.0, "b", {"s": 2})]
    assert assert_never_owned_twice(samples) == 2


def test_overlapping_epochs_fail() -> None:
    samples = [Sample(1.0, "a", {"s": 1}), Sample(3.0, "a", {"s": 1}), Sample(2.0, "b", {"s": 2})]
    with pytest.raises(AssertionError, match="owned twice"):
        assert_never_owned_twice(samples)


def test_one_epoch_claimed_by_two_instances_fails() -> None:
    with pytest.raises(AssertionError, match="claimed by a and b"):
        assert_never_owned_twice([Sample(1.0, "a", {"s": 1}), Sample(1.5, "b", {"s": 1})])

"""Shared fixtures (every test leaves no actor running) and the markers.

Markers, set here by path so test files stay free of them: `slow` — tests that start other
programs or run for seconds (`-m "not slow"` is the quick subset, under 2 minutes on an idle
2-core machine); `timing` — tests asserting wall-clock bounds (latency, detection time,
lateness), which a loaded machine can miss (`-m "not timing"` skips them). `tests/` is a
package: helpers are imported as `tests.<path>`, and every wait is `tests.waiting.wait_for`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pykka
import pytest


@pytest.fixture(autouse=True)
def _stop_all_actors() -> Iterator[None]:
    yield
    try:
        pykka.ActorRegistry.stop_all(block=True, timeout=5)
    except pykka.Timeout:
        pass  # a deliberately hung test actor: it is abandoned, as the supervisor does


#: Folders whose tests start real processes of other programs (peers, browsers, Prometheus,
#: the daemon itself, the soak): all `slow`, so `-m "not slow"` is the quick subset.
_SLOW_FOLDERS = ("peers", "e2e", "soak", "examples", "cluster")
#: Modules of real-server fault scenarios and fuzzers (seconds each): `slow` too.
_SLOW_MODULES = frozenset({
    "actors/test_persistence_faults.py",
    "actors/opcua/test_opcua_session.py",
    "actors/opcua/test_opcua_actor.py",
    "actors/mqtt/test_mqtt_noloss.py",
    "actors/mqtt/test_mqtt_detection.py",
    "actors/mqtt/test_mqtt_duplicates.py",
    "httpapi/test_http_fuzz.py",
    "httpapi/test_http_schemathesis.py",
    "httpapi/test_http_abuse.py",
    "httpapi/test_http_readings_history.py",
    "storage/test_retention.py",
    "storage/test_raw_size.py",
    "storage/test_migrate_v2.py",
})
#: Tests asserting wall-clock bounds (elapsed, latency, lateness, detection within a bound):
#: `timing`, so `-m "not timing"` leaves them out on a loaded machine. Keys: module::function.
_TIMING_TESTS = frozenset({
    "actors/icmp/test_icmp_actor.py::test_loopback_goes_up_and_stores_probes",
    "actors/icmp/test_icmp_netns.py::test_link_down_times_out_and_link_up_answers",
    "actors/icmp/test_icmp_netns.py::test_silent_host_does_not_delay_loopback",
    "actors/icmp/test_icmp_prober.py::test_due_time_is_kept",
    "actors/icmp/test_icmp_prober.py::test_loopback_hosts_answer",
    "actors/icmp/test_icmp_prober.py::test_stop_is_prompt_with_probes_in_flight",
    "actors/icmp/test_icmp_schedule.py::test_schedule_probes_now_then_every_period_on_its_phase",
    "actors/mqtt/test_mqtt_actor.py::test_broker_killed_then_restarted",
    "actors/mqtt/test_mqtt_actor.py::test_device_offline_and_back_online",
    "actors/mqtt/test_mqtt_actor.py::test_frozen_broker_down_within_one_and_a_half_keepalive",
    "actors/mqtt/test_mqtt_client.py::test_frozen_broker_at_connect_time_and_stop_never_hangs",
    "actors/mqtt/test_mqtt_detection.py::test_first_connect_to_a_silent_host_shows_down_within_the_bound",
    "actors/mqtt/test_mqtt_detection.py::test_frozen_broker_at_first_connect_shows_down_within_the_bound",
    "actors/mqtt/test_mqtt_detection.py::test_unanswered_tcp_handshake_fails_the_attempt_within_the_bound",
    "actors/opcua/test_opcua_actor.py::test_frozen_server_goes_down_and_recovers",
    "actors/opcua/test_opcua_actor.py::test_stopped_server_goes_down_and_comes_back",
    "actors/opcua/test_opcua_session.py::test_frozen_endpoint_does_not_slow_another",
    "actors/opcua/test_opcua_session.py::test_frozen_server_is_down_within_timeout_and_recovers",
    "actors/test_persistence.py::test_a_state_change_is_visible_to_readers_quickly",
    "actors/test_scheduler.py::test_every_keeps_its_cadence",
    "actors/test_supervisor.py::test_hung_child_is_replaced_by_health_check_and_later_messages_ignored",
    "actors/test_supervisor.py::test_shutdown_timeout_of_a_hung_child",
    "cluster/test_cluster_leases.py::test_crashed_owner_is_taken_over_within_ttl_plus_5_s",
    "cluster/test_cluster_leases.py::test_drain_hands_sites_over_at_once",
    "cluster/test_cluster_processes.py::test_a_clock_60_s_off_changes_nothing",
    "config/test_config_hostile.py::test_a_100000_character_name_is_refused_in_linear_time",
    "config/test_config_hostile.py::test_url_password_redaction_is_linear",
    "httpapi/test_http_abuse.py::test_a_request_trickling_slower_than_the_deadline_is_closed",
    "httpapi/test_http_hostile.py::test_a_long_name_is_refused_before_any_slow_step",
    "httpapi/test_http_hostile.py::test_a_site_body_declares_at_most_1000_endpoints",
    "httpapi/test_http_listing_commands.py::test_command_during_a_listing_is_not_held_back",
    "httpapi/test_http_metrics.py::test_render_time_with_10000_endpoints",
    "httpapi/test_http_server.py::test_stop_ends_open_streams",
})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark tests `slow` (by folder or module) and `timing` (by name); see the module doc."""
    root = os.path.dirname(__file__)
    for item in items:
        rel = os.path.relpath(str(item.path), root).replace(os.sep, "/")
        if rel.split("/", 1)[0] in _SLOW_FOLDERS or rel in _SLOW_MODULES:
            item.add_marker(pytest.mark.slow)
        if f"{rel}::{getattr(item, 'originalname', item.name)}" in _TIMING_TESTS:
            item.add_marker(pytest.mark.timing)

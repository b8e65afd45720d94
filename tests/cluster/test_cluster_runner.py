"""ClusterRunner's pure parts: the storage URL split into a libpq DSN and schema, the channel name."""

from __future__ import annotations

from fieldwatch.cluster.runner import channel_name, split_storage_url


def test_the_schema_comes_out_of_the_options_and_the_rest_stays() -> None:
    dsn, schema = split_storage_url(
        "postgres://fw@db:5432/plant?options=-csearch_path%3Dfw_ha_1&sslmode=require&connect_timeout=3"
    )
    assert schema == "fw_ha_1"
    assert dsn == "postgresql://fw@db:5432/plant?sslmode=require&connect_timeout=3"


def test_a_plain_url_has_no_schema() -> None:
    assert split_storage_url("postgresql://fw@db/plant") == ("postgresql://fw@db/plant", None)
    # options that do not set the search_path are kept for libpq
    dsn, schema = split_storage_url("postgresql://fw@db/plant?options=-cwork_mem%3D8MB")
    assert schema is None and "options=-cwork_mem" in dsn


def test_each_schema_has_its_own_channel() -> None:
    assert channel_name(None) == "fieldwatch_commands"
    assert channel_name("a") != channel_name("b") != channel_name(None)


def test_a_command_applied_for_another_instance_does_not_store_its_flag_again() -> None:
    """Storing again a flag read a moment earlier could overwrite a newer command sent through
    a third instance meanwhile (disable via a, enable via c: b re-storing 'disabled' after
    c stored 'enabled' would lose the enable)."""
    import threading

    from fieldwatch.cluster.runner import RemoteAwareStorage
    from fieldwatch.storage.commands import LoadSites, SetEndpointEnabled, SetSiteEnabled, SetTopicActive

    class Inner:
        def __init__(self) -> None:
            self.ran: list[object] = []

        def command(self, cmd: object, timeout_s: float = 5.0) -> str:
            self.ran.append(cmd)
            return "stored"

        def submit(self, write: object) -> None:
            self.ran.append(write)

    inner, remote = Inner(), threading.local()
    storage = RemoteAwareStorage(inner, remote)
    flags = [SetSiteEnabled("s", True), SetEndpointEnabled("s", "e", False), SetTopicActive(1, "t", True)]
    assert [storage.command(c, 1.0) for c in flags] == ["stored"] * 3  # a command taken here: stored
    remote.active = True
    assert [storage.command(c, 1.0) for c in flags] == [None] * 3  # applied for another instance: not
    assert storage.command(LoadSites(), 1.0) == "stored"  # reads and other commands still run
    storage.submit("a write")
    assert inner.ran == [*flags, LoadSites(), "a write"]

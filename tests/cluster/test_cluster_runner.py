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

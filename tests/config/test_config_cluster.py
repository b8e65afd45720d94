"""The `cluster:` block (SPEC section 10): lease_ttl_s, and PostgreSQL only."""

from __future__ import annotations

from fieldwatch.config.model import ClusterConfig
from tests.config.config_files import ConfigFiles

PG = 'storage: {url: "postgresql://fw@db.example/fieldwatch"}\n'


def test_no_cluster_block_means_a_single_instance(files: ConfigFiles) -> None:
    assert files.load("instance: gw\n").cluster is None


def test_cluster_defaults_to_a_15_s_lease(files: ConfigFiles) -> None:
    config = files.load(PG + "cluster: {}\n")
    assert config.cluster == ClusterConfig(lease_ttl_s=15.0)


def test_cluster_lease_ttl_is_read(files: ConfigFiles) -> None:
    config = files.load(PG + "cluster:\n  lease_ttl_s: 7.5\n")
    assert config.cluster is not None and config.cluster.lease_ttl_s == 7.5


def test_lease_ttl_below_5_s_is_refused(files: ConfigFiles) -> None:
    errors = files.errors(PG + "cluster:\n  lease_ttl_s: 4\n")
    assert errors == ["fieldwatch.yaml:3: cluster.lease_ttl_s: must be >= 5, got 4.0"]


def test_unknown_cluster_key_is_refused(files: ConfigFiles) -> None:
    errors = files.errors(PG + "cluster:\n  lease_tll_s: 10\n")
    assert errors == ["fieldwatch.yaml:3: cluster.lease_tll_s: unknown key 'lease_tll_s' "
                      "(did you mean 'lease_ttl_s'?)"]


def test_cluster_on_explicit_sqlite_is_a_configuration_error_naming_the_key(files: ConfigFiles) -> None:
    errors = files.errors("""
        storage:
          url: sqlite:///fieldwatch.db
        cluster:
          lease_ttl_s: 15
        """)
    assert len(errors) == 1
    assert errors[0].startswith("fieldwatch.yaml:3: cluster: a cluster needs a shared PostgreSQL database")


def test_cluster_on_the_default_sqlite_is_a_configuration_error(files: ConfigFiles) -> None:
    errors = files.errors("instance: gw\ncluster: {lease_ttl_s: 15}\n")
    assert len(errors) == 1 and errors[0].startswith("fieldwatch.yaml:2: cluster: ")


def test_cluster_error_is_reported_beside_other_errors(files: ConfigFiles) -> None:
    errors = files.errors("instance: gw\ncluster: {lease_ttl_s: 15}\nhttp: {threads: 0}\n")
    assert [e.split(": ")[0] + ": " + e.split(": ")[1] for e in errors] == [
        "fieldwatch.yaml:2: cluster", "fieldwatch.yaml:3: http.threads"]


def test_cluster_null_is_a_single_instance_even_on_sqlite(files: ConfigFiles) -> None:
    assert files.load("instance: gw\ncluster:\n").cluster is None

"""Storage: peewee models, database opening, the write gateway, read queries, retention.

Import what you need from its modules (`storage.db`, `storage.gateway`, `storage.writes`,
`storage.commands`, `storage.queries`, ...): this package re-exports nothing, so importing
one of them does not load the others.
"""

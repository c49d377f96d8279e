"""The indexes audit search needs on `audit_entries`, kept beside the search that uses them.

Every search is a keyset page ordered by `(time, id)` inside one tenant, so each index ends
with `time, id`: the database walks the index in order, checks the cursor inside the index
and stops after one page, however many millions of rows match. The leading columns are the
scope (`team_id` for a team's search) or a filter that is selective enough to be worth an
index (`runtime_id`, or the tenant plus tool / user / agent / rule / approver). Filters on
few distinct values (decision, kind, severity) ride on these indexes: matching rows are
common, so a page is found after a short scan.

The table is the ingest helper's (`audit/models.py`); these objects are added to its
`__table_args__`, and migration `0102_audit_search` creates them.

One more index, PostgreSQL only and not a model (an expression SQLite has no function for):
the approver filter also finds a name among the listed `source:a,b,c` (`search.
approver_matches`), which no B-tree serves, so a team's search walked the team's whole
history for a rare approver (234 ms at 1M entries, 486 ms at 10M). `PG_APPROVER_INDEX` is a
GIN index of the listed names as an array, partial on rows that have an approver (about
one in thirty), created by migration `1102_audit_approver_names`, which repeats the
expression: the search must write it exactly so for PostgreSQL to use the index.
"""

from __future__ import annotations

from sqlalchemy import Index

SEARCH_INDEXES = (
    Index("ix_audit_entries_team_time", "team_id", "time", "id"),
    Index("ix_audit_entries_runtime_time", "runtime_id", "time", "id"),
    Index("ix_audit_entries_org_tool_time", "org_id", "tool", "time", "id"),
    Index("ix_audit_entries_org_user_time", "org_id", "user", "time", "id"),
    Index("ix_audit_entries_org_agent_time", "org_id", "agent", "time", "id"),
    Index("ix_audit_entries_org_rule_time", "org_id", "rule", "time", "id"),
    Index("ix_audit_entries_org_approver_time", "org_id", "approver", "time", "id"),
)

PG_APPROVER_INDEX = "ix_audit_entries_approver_names"
PG_APPROVER_NAMES = ("string_to_array(substr(audit_entries.approver, "
                     "strpos(audit_entries.approver, ':') + 1), ',')")

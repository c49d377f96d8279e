"""Approvals routed through the server: routes, escalation, delegation, quorum.

How an ask travels:
1. An enrolled runtime whose policy asks (approval mode wait or defer) sends the ask:
   `POST /api/v1/runtime/approvals` (runtime credential). `routing` picks the team's first
   matching route (priority order; runtime labels, tool glob, rule glob, minimum severity)
   or the team's fallback (owners, admins and approvers; one level, quorum one).
   `notifying` enqueues one message per channel of the level's group (of the team's
   fallback channels for an ask no route matched), with the link
   `{RUNESTONE_SERVER_PUBLIC_URL}/approvals/{id}`. In ask mode the host asks its own user
   and the server only records the ask (state `host`).
2. Approvers list (`GET /api/v1/approvals`), read and vote (`POST .../{id}/votes`); the
   rules are in `service` (current level only, quorum of distinct people, one deny
   denies, never one's own agent's request, delegations). An approve has a scope: this
   action "once", or "rule-session" (the request's rules in the requesting session for
   1-480 minutes; not for a request with no rules); the narrowest approval decides.
3. `escalation` (a worker task) moves a request past its level's deadline to the next
   level, and past the last one to `expired` (a deny).
4. The runtime long-polls `GET /api/v1/runtime/approvals/{request_id}?wait=N` and acts
   only on the server's Ed25519 signature over `runestone.remote.signing.decision_message`
   (runtime id, request id, action hash, decision, hash of the runtime's credential,
   scope and minutes). A verified rule-session approval becomes local rule grants for
   the runtime's own request's rules and session (`runestone.approvals.service`).
   A runtime that stops waiting withdraws its ask (`.../cancel`).

Every step is a ServerEvent whose detail carries `request_id` and `approval_id`:
approval.requested, .notified, .escalated, .vote, .decided, .expired, .cancelled.
Configuration: `/api/v1/teams/{id}/approver-groups`, `/approval-routes`,
`/approval-settings` (the channels told of asks no route matches; `fallback`) (managers)
and `/api/v1/delegations` (each user their own). Pages call `service`, `config` and
`fallback` directly.
"""

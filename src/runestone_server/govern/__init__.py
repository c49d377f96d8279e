"""Governing centrally: what the team's runtimes did (usage), where people are asked most
(friction), and rules proposed from what people approved (proposals), all read from the
ingested audit and the approval requests."""

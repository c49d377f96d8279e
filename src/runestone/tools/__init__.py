"""Tools the runtime executes itself (`shell.exec`, `files.write`, `http.request`), so that an
agent given only these cannot step around the gate: every call is decided by policy first,
then held to hard limits the policy cannot loosen, then audited with its result."""

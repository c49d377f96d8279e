"""Approvals: when policy says ask, a human decides, through signed single-use links."""

# How long a rule-session approval may last, on the runtime's own page and on the control
# plane alike (a longer one from the server does not verify on the runtime).
MAX_SCOPE_MINUTES = 480
# How long a grant made on the command line may last: a year (and a number a timestamp holds).
MAX_GRANT_MINUTES = 366 * 24 * 60

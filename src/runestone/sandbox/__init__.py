"""The sandbox tier: commands that are neither known-good nor known-bad run contained.

A policy's `sandbox` decision names a profile (`profiles`): what the command may write,
read and reach. `runestone sandbox run` (`run`) runs a command under bubblewrap with that
profile (`bwrap`), with a filtering proxy outside the sandbox when the profile grants hosts
(`proxy`). Nothing here is imported on the hook path unless a decision is `sandbox`.
"""

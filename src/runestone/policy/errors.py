"""Policy errors: what was wrong, where (file, line, field), and what to do."""

from __future__ import annotations


class PolicyError(Exception):
    """A policy cannot be used. The whole policy is refused; nothing is half-applied."""

    def __init__(
        self,
        message: str,
        *,
        source: str = "",
        line: int | None = None,
        field: str | None = None,
        hint: str = "",
    ) -> None:
        self.message = message
        self.source = source
        self.line = line
        self.field = field
        self.hint = hint
        super().__init__(self.render())

    def render(self) -> str:
        where = self.source or "<policy>"
        if self.line is not None:
            where += f":{self.line}"
        text = f"{where}: {self.message}"
        if self.field:
            text += f" (field '{self.field}')"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class PolicyTestFailure(PolicyError):
    """The policy's own examples or test cases do not hold."""

    def __init__(self, failures: list[str], *, source: str = "") -> None:
        self.failures = failures
        listed = "\n  - ".join(failures)
        super().__init__(
            f"{len(failures)} policy test(s) failed:\n  - {listed}",
            source=source,
            hint="fix the rule or the example; `runestone policy test` shows the full report",
        )

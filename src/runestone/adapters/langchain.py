"""LangChain: guard any `BaseTool` (a `@tool` function, a `StructuredTool`, a toolkit's).

    from runestone.adapters.langchain import guard_tool
    tools = [guard_tool(t) for t in tools]

The guarded tool has the original's name, description and argument schema, so the model
sees no difference; a call the policy does not allow raises `ToolDenied` (a
PermissionError) before the original runs, or, with `deny_as_message=True`, answers the
model with the reason instead (LangChain's ToolException, handled by the tool).
"""

from __future__ import annotations

from typing import Any

from runestone.gatekeeper import Gatekeeper
from runestone.sdk import GuardedCall, ToolDenied


def guard_tool(tool: Any, *, agent: str = "langchain", session: str | None = None,
               keeper: Gatekeeper | None = None, deny_as_message: bool = False) -> Any:
    """A StructuredTool that decides, then delegates to `tool`, then audits the result."""
    from langchain_core.tools import StructuredTool, ToolException

    def _call(kwargs: dict[str, Any]) -> GuardedCall:
        call = GuardedCall(tool.name, kwargs, agent=agent, session=session, keeper=keeper)
        try:
            call.decide()
        except ToolDenied as denied:
            if deny_as_message:
                raise ToolException(f"runestone: {denied}") from denied
            raise
        return call

    def run(**kwargs: Any) -> Any:
        call = _call(kwargs)
        try:
            result = tool.invoke(kwargs)
        except Exception as exc:
            call.failed(exc)
            raise
        call.finished(result)
        return result

    async def arun(**kwargs: Any) -> Any:
        import asyncio

        call = await asyncio.to_thread(_call, kwargs)  # a `wait` approval blocks; not the loop
        try:
            result = await tool.ainvoke(kwargs)
        except Exception as exc:
            call.failed(exc)
            raise
        call.finished(result)
        return result

    return StructuredTool.from_function(
        func=run, coroutine=arun, name=tool.name, description=tool.description,
        args_schema=tool.args_schema, return_direct=getattr(tool, "return_direct", False),
        handle_tool_error=deny_as_message)

"""OpenAI Agents SDK: guard a `FunctionTool` (what `@function_tool` makes).

    from runestone.adapters.openai_agents import guard_function_tool
    agent = Agent(name="ops", tools=[guard_function_tool(t) for t in tools])

The SDK hands a tool its arguments as a JSON string; the guard decides on the parsed
arguments before the original `on_invoke_tool` runs. A call the policy does not allow
never runs: the model is answered with the reason, which is how the SDK reports tool
failures to it, so the agent can change course instead of crashing the run.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

from runestone.gatekeeper import Gatekeeper
from runestone.sdk import GuardedCall, ToolDenied


def guard_function_tool(tool: Any, *, agent: str = "openai-agents",
                        session: str | None = None,
                        keeper: Gatekeeper | None = None) -> Any:
    """A copy of `tool` whose invocations are decided, audited and linked."""
    original = tool.on_invoke_tool

    async def on_invoke_tool(context: Any, arguments: str) -> Any:
        try:
            parsed = json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            return f"runestone: the arguments are not JSON; the call was not run ({tool.name})"
        tool_input = parsed if isinstance(parsed, dict) else {"input": parsed}
        call = GuardedCall(tool.name, tool_input, agent=agent,
                           session=session,
                           keeper=keeper)
        try:
            await asyncio.to_thread(call.decide)  # a `wait` approval blocks; not the loop
        except ToolDenied as denied:
            return f"runestone: {denied}"
        try:
            result = await original(context, arguments)
        except Exception as exc:
            call.failed(exc)
            raise
        call.finished(result)
        return result

    return dataclasses.replace(tool, on_invoke_tool=on_invoke_tool)

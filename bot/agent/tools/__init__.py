"""The agent's tools: one module per tool, each one :class:`bot.agent.tool.Tool` subclass
(see ``bot.agent.registry`` for the list)."""

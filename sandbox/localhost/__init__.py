"""A small local stand-in for the Azure Functions host (Core Tools is not installable offline).

It indexes a v2-model ``FunctionApp`` and runs its HTTP, Storage Queue and timer triggers the way the
real host does, closely enough for end-to-end tests. ``python -m sandbox.host`` is the entry point;
the modules here are its parts: settings, indexing, invocation, HTTP, queues and timers.
"""

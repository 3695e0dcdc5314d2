"""Projects, their members, tasks and documents (the knowledge pmbot answers from)."""

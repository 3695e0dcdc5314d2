"""Knowledge: ingestion of project documents, authorized retrieval and answers."""

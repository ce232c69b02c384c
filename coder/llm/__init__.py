"""The LLM backend: pre-coding through any OpenAI-compatible endpoint, with instructor.

One module per concept: ``config`` (settings), ``prompts`` (templates and their
hashes), ``response_model`` (the run-time model built from the codebook), ``retry``
(tenacity policies), ``pricing``, ``redact`` (PII), ``injection`` (prompt-injection
heuristic), ``batch_api`` (OpenAI Batch API) and ``classifier`` (the backend itself).
"""

"""The LLM backend: pre-coding through any OpenAI-compatible endpoint, with instructor.

One module per concept: ``config`` (settings), ``prompts`` (templates and their
hashes), ``response_model`` (the run-time model built from the codebook), ``retry``
(tenacity policies, error text), ``pricing``, ``secrets`` (keys kept out of what is
stored), ``shortlist`` and ``examples`` (what a prompt offers), ``prompt_choice`` (the
shortlist's cut and the example pool of a project), ``request_prompt`` (what one request
sends, fitted to the context window), ``context_window``, ``planning`` (requests and
estimates), ``client`` (the instructor client of a run), ``transport`` (HTTP attempts
guarded and logged), ``aiohttp_transport`` (the HTTP/1.1 connections under it), ``proxy``
(which proxy a call goes through: --proxy, the standard variables, NO_PROXY), ``secret_screen`` (a quick look before the key-masking
walk), ``patches`` (speed patches
of the pinned openai and instructor), ``batch_api`` (OpenAI Batch API) and
``classifier`` (the backend itself).
"""

"""Prompt templates (Jinja2 ``*.j2`` files) shipped as package data.

Rendered by :mod:`coder.llm.prompts`; each proposal stores the hash of the template
files and of the rendered system prompt, so changing a template is a new prompt version.
"""

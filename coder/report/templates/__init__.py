"""Jinja2 templates of the HTML report (a package so setuptools ships the *.j2 files)."""

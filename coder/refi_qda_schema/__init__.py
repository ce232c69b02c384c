"""REFI-QDA XML schemas (MIT, see NOTICE.md); a package so setuptools ships the *.xsd files."""

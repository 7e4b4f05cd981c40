"""Helpers for the real-browser test (tests/test_browser.py): a JupyterLab server
(:mod:`.lab`) and a notebook page driven by Playwright (:mod:`.page`)."""

"""What the tests share that is not a fixture: helpers, constants and the child processes they start.

Fixtures live in ``tests/conftest.py`` (and in the conftest.py of the one folder that uses them); no test module
imports another.
"""

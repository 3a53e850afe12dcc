"""`gptlab selftest faults`: gptlab attacks itself and counts what broke.

Each section (one module here) kills, corrupts or fuzzes one part of the product and returns
rows of figures; ``command.py`` prints them as one table. A row's ``bad`` count (documents lost,
crashes, tracebacks, files destroyed, ...) must be 0; the command exits 1 when any is not.
``make faults`` runs the full grid; ``make test`` runs a quick subset (``--quick``).
"""

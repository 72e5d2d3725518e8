"""Reading broker bodies safely, shared by every broker adapter (docs/brokers.md §1 finding 4).

Modules, one concept each: `body` (hostile-input-safe JSON), `keys` (key folding), `fields` (lenient
field types), `loader` (the compiled schema loader). Times and time zones are app/times.py.
"""

"""Reference values of `inscl::seed::derive` (shared/src/seed.rs): the first 8 bytes,
little-endian, of SHA-256("{seed}/{purpose}/{index}"), computed with Python's hashlib.

Run: python3 tools/reference/seed_reference.py  (prints the Rust constants of the test)
"""

import hashlib

CASES = [(0, "shuffle", "1"), (42, "train", "3"), (7, "held-out", "task039_qasc")]

for seed, purpose, index in CASES:
    digest = hashlib.sha256(f"{seed}/{purpose}/{index}".encode()).digest()
    value = int.from_bytes(digest[:8], "little")
    print(f'({seed}, "{purpose}", "{index}", {value}),')

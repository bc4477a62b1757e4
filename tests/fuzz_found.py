"""Inputs the fuzzer (``scripts/fuzz.py``) found to crash foleygen, kept as regression cases: each is a
test of its own (``tests/test_fuzz_findings.py``, ``tests/io/test_probe.py``) and a case of the hostile
corpus (``tests/hostile_corpus.py``). A few KB at most, base64 here rather than binary fixtures."""

from __future__ import annotations

import base64

# A PNG whose damaged pHYs chunk gives a sample aspect ratio of billions to one (was an OverflowError in
# the scaler, asked for a frame that wide).
ABSURD_ASPECT_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAgAAAAICAIAAABLbSncAAAACXBIWXNqAAAAAAAAAQCEeRdzAAAAGklEQVR4nGO0sLBggIELFy7A2SwMOMDglAAAU+4DNlNJ9BQAAAAASUVORK5CYII="
)

# A damaged FFV1 Matroska file whose last decodable frame (1x1) the scaler refuses (was an av.OSError).
UNCONVERTIBLE_LAST_FRAME_MKV = base64.b64decode(
    "GkXfo6NChoEBQveBAULygQRC84EIQoKIbWF0cm9za2FCh4EEQoWBAhhTgGcBAAAAAAACbxFNm3TAv4R3Lv93TbuLU6uEFUmpZlOs"
    "gaFNu4tTq4QWVK5rU6yB8U27jFOrhBJUw2dTrIIBfE27jFOrhBxTu2tTrIICU+wBAAAAAAAAUwAAAAAAAAAAYXZmNjIuMTIuMTAy"
    "c6SQOontjlspDERhDWxQPQIQH0SJiEB/QAAAAAAAFlSua0CFv4QZKXHxrgEAAAAAAAB214EBc8WIximwRmHcq1icgQAitZyDdW5k"
    "iIEAhoZWX0ZGVjGDgQEj44OEBfXhAOCKsIEBuoEBVLKBBFXugQDsAQAAAAAAAAIAAGOiqlYrisN2bLiv0nHXFoSMCleXIJkyaTGZ"
    "6lVOOMT9a+Ztmw7DMWhfhAqdZxJUw2fev4QE3jQ+c3OgY8CAZ8iaRaOHRU5DT0RFUmSHjUxhdmY2MtyrWJyBACK1nIN1bmSIgQCG"
    "hlZfRkZWMYOBASPjg4QF9eEA4IouMTIuMTAyc3OyY8CLY8WIximwRmHcq1hnyKFFo4hEVVJBVElPTkSHkzAwOjAwOjAwLjUwMDAw"
    "MDAwMAAfQ7Z177+EGfxnQ+eBAKOUgQAAKPwAgAgAD0P0AAAIAPXO+qejkoEAZAB8qAWPo+BvZGB0aHQKYVpjLDFlNDAwLGRvZyx0"
    "cmFpbgphb3V0dWJlX2lkLHN0cnRfYXNlY29uZHMsbGFiZWwsc3BsaXQKYWJjLDBlNDAwLGRvX3NldHJ0X2FzZWNvbmRzLGxhYmVs"
    "LHNwbGl0CmFiYywwZTQwMCxkb19zZWNvbmQAAAYAJ9qLdqOSgQDIAHyoHx7HoAAABgC/lZV6o5KBASwAfKgODyPAAAAGAJTK5g+j"
    "koEBkAB8qBSO47AAAAYAy2mGhhxTu2uXv4Q8AqdGu4+zgQC3iveBAfGCAd/wgQk="
)

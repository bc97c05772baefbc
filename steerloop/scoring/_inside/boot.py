"""Bootstrap of the sandboxed interpreter: ``python -I -S -B -c <the source of this file>``.

Standard input carries frames (a 4-byte big-endian length, then ``marshal`` data) written
by the trusted steerloop process. This reads exactly the *first* frame — the configuration
and the source of this package's modules, nothing secret — with unbuffered reads, so the
next frame (the job) stays unread in the pipe; installs the modules as the package
``_steerloop_sandbox``; and calls ``main(payload)`` of the entry module. ``marshal`` rather
than ``json`` because the writer is trusted and ``json`` would cost an import of ``re``
before the candidate process is forked.
"""

from __future__ import annotations

import marshal
import os
import sys
import types

PACKAGE = "_steerloop_sandbox"


def _read_exact(fd: int, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = os.read(fd, size - len(data))
        if not chunk:
            raise EOFError("standard input ended inside a frame")
        data += chunk
    return bytes(data)


def read_frame(fd: int) -> bytes:
    """Read one frame from ``fd``, exactly (no read-ahead)."""
    return _read_exact(fd, int.from_bytes(_read_exact(fd, 4), "big"))


def boot() -> None:
    """Install the payload's modules, then run its entry module's ``main``."""
    payload = marshal.loads(read_frame(0))  # noqa: S302 - written by the trusted parent
    package = types.ModuleType(PACKAGE)
    package.__path__ = []
    sys.modules[PACKAGE] = package
    for name, source in payload["modules"]:
        module = types.ModuleType(f"{PACKAGE}.{name}")
        module.__package__ = PACKAGE
        sys.modules[module.__name__] = module
        setattr(package, name, module)
        code = compile(source, f"<sandbox {name}>", "exec")
        exec(code, module.__dict__)  # noqa: S102 - steerloop's own modules, not untrusted code
    sys.modules[f"{PACKAGE}.{payload['entry']}"].main(payload)


if __name__ == "__main__":
    boot()

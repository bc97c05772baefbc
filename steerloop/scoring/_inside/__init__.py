"""Code that runs *inside* the sandbox, in interpreters started by :mod:`steerloop.scoring.sandbox`.

steerloop never imports these modules at run time: the sandbox reads their source and
passes it to a fresh ``python -I -S -B -c`` process (:mod:`.boot` installs them there as
the package ``_steerloop_sandbox``). They use the standard library only and import each
other relatively.

* :mod:`.boot` — the bootstrap program of both sandboxed processes;
* :mod:`.supervisor` — the first process: confinement, then the checker (or timing);
* :mod:`.confine` — mounts, the minimal root, resource limits, privilege and capability drop;
* :mod:`.spawn` — starts the candidate process;
* :mod:`.wire` — the plain-value codec and the framing of the candidate pipe;
* :mod:`.checker` — runs the task's tests against the candidate over the pipe;
* :mod:`.runner` — the candidate process: loads the candidate program and answers calls;
* :mod:`.timing` — the efficiency measurement (reference and candidate in one process).
"""

"""Confinement of the sandboxed processes: the minimal root, resource limits, privileges.

:func:`build_root` runs once, in the supervisor, before anything untrusted: in the private
mount namespace it builds a root that holds only what an interpreter needs and chroots
into it, so the candidate cannot read the host's files (the project, the tests on disk, a
data set shipped in a package), only:

* read-only binds of ``/usr``, ``/bin``, ``/sbin``, ``/lib*`` (symlinks where the host has
  them) and of the interpreter's prefix (plus the virtual environment with
  ``site_packages=True``), at their host paths;
* from ``/etc`` only the dynamic loader's cache and configuration and ``localtime``;
* without ``site_packages=True``, an empty read-only tmpfs over the interpreter's and the
  system Python's ``site-packages``/``dist-packages`` (installed packages and the data they
  ship, such as a benchmark's test set, are not there to read);
* ``/dev/null``, ``zero``, ``full``, ``random``, ``urandom``, the ``/dev/fd`` links, the
  namespace's own ``/proc``;
* fresh size-limited tmpfs on ``/tmp`` (holding the working directory ``/tmp/work``),
  ``/var/tmp`` and ``/dev/shm``.

:func:`restrict` confines one process before it runs code: resource limits, then (as root)
a throwaway uid/gid with no supplementary groups, an empty capability bounding set and no
capabilities (checked in ``/proc/self/status``), ``no_new_privs``, death with the parent,
and, for the checker, ``PR_SET_DUMPABLE=0`` (no ``ptrace`` or ``/proc/<pid>/mem`` access
by processes of the same uid).
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_REC = 16384
MS_RELATIME = 1 << 21
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
_CAPABILITY_VERSION_3 = 0x20080522

ROOT = "/tmp"  # noqa: S108 - the mount point of the new root, in the private namespace
WORK = "/tmp/work"  # noqa: S108 - inside the new root's private tmpfs
_SYSTEM = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32")
_ETC = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime")
_DEVICES = ("null", "zero", "full", "random", "urandom")
_DEV_LINKS = {"fd": "/proc/self/fd", "stdin": "fd/0", "stdout": "fd/1", "stderr": "fd/2"}
# statvfs flags a bind remount must keep (in a user namespace they are locked).
_KEPT = (
    (os.ST_NOSUID, MS_NOSUID),
    (os.ST_NODEV, MS_NODEV),
    (os.ST_NOEXEC, MS_NOEXEC),
    (os.ST_NOATIME, MS_NOATIME),
    (os.ST_NODIRATIME, MS_NODIRATIME),
    (os.ST_RELATIME, MS_RELATIME),
)


def libc() -> Any:
    """The C library with the prototypes used here."""
    lib = ctypes.CDLL(None, use_errno=True)
    lib.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]
    lib.prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4
    lib.capset.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    return lib


def _mount(
    lib: Any, source: str | None, target: str, fstype: str | None, flags: int, data: str | None
) -> None:
    result = lib.mount(
        source.encode() if source else None,
        target.encode(),
        fstype.encode() if fstype else None,
        flags,
        data.encode() if data else None,
    )
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno), target)


def _tmpfs(lib: Any, target: str, mode: str, size: int) -> None:
    _mount(lib, "tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, f"mode={mode},size={size}")


def _bind_read_only(lib: Any, source: str, target: str, *, strict: bool) -> None:
    _mount(lib, source, target, None, MS_BIND | MS_REC, None)
    flags = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID
    kept = os.statvfs(target).f_flag
    for statvfs_flag, mount_flag in _KEPT:
        if kept & statvfs_flag:
            flags |= mount_flag
    try:
        _mount(lib, None, target, None, flags, None)
    except OSError:
        # Outside root, a user namespace may refuse it; those files are not the caller's
        # to protect anyway. As root the bind must be read-only.
        if strict:
            raise


def prefixes(site: bool, executable: str) -> list[str]:
    """Directories the interpreter needs that may lie outside the system directories."""
    found = {os.path.realpath(sys.base_prefix)}
    real_prefix = os.path.realpath(sys.prefix)
    if site or executable.startswith(real_prefix + os.sep):
        found.add(real_prefix)
    system = tuple(os.path.realpath("/" + name) + os.sep for name in _SYSTEM)
    return sorted(p for p in found if not (p + os.sep).startswith(system))


def _site_directories() -> list[str]:
    """Where third-party packages of this interpreter and of the system's Python live."""
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    found = []
    for prefix in {os.path.realpath(sys.base_prefix), "/usr", "/usr/local"}:
        for lib in ("lib", "lib64"):
            found.append(os.path.join(prefix, lib, version, "site-packages"))
            found.append(os.path.join(prefix, lib, version, "dist-packages"))
            found.append(os.path.join(prefix, lib, f"python{sys.version_info[0]}", "dist-packages"))
    return sorted(set(found))


def _populate_system(lib: Any, root: str, strict: bool) -> None:
    for name in _SYSTEM:
        host = "/" + name
        if os.path.islink(host):
            os.symlink(os.readlink(host), os.path.join(root, name))
        elif os.path.isdir(host):
            os.mkdir(os.path.join(root, name), 0o755)
            _bind_read_only(lib, host, os.path.join(root, name), strict=strict)
    os.mkdir(os.path.join(root, "etc"), 0o755)
    for name in _ETC:
        host, target = "/etc/" + name, os.path.join(root, "etc", name)
        if os.path.islink(host):
            os.symlink(os.readlink(host), target)
        elif os.path.isdir(host):
            os.mkdir(target, 0o755)
            _bind_read_only(lib, host, target, strict=strict)
        elif os.path.isfile(host):
            os.close(os.open(target, os.O_CREAT | os.O_WRONLY, 0o644))
            _bind_read_only(lib, host, target, strict=strict)


def _populate_devices(lib: Any, root: str, tmpfs_bytes: int) -> None:
    dev = os.path.join(root, "dev")
    os.mkdir(dev, 0o755)
    for name in _DEVICES:
        if os.path.exists("/dev/" + name):
            os.close(os.open(os.path.join(dev, name), os.O_CREAT | os.O_WRONLY, 0o666))
            _mount(lib, "/dev/" + name, os.path.join(dev, name), None, MS_BIND, None)
    for name, target in _DEV_LINKS.items():
        os.symlink(target, os.path.join(dev, name))
    os.mkdir(os.path.join(dev, "shm"), 0o755)
    _tmpfs(lib, os.path.join(dev, "shm"), "1777", 1 << 20)
    os.mkdir(os.path.join(root, "proc"), 0o555)
    _mount(lib, "/proc", os.path.join(root, "proc"), None, MS_BIND | MS_REC, None)
    os.mkdir(os.path.join(root, "tmp"), 0o1777)
    _tmpfs(lib, os.path.join(root, "tmp"), "1777", tmpfs_bytes)
    os.makedirs(os.path.join(root, "var", "tmp"), 0o755)
    _tmpfs(lib, os.path.join(root, "var", "tmp"), "1777", 1 << 20)


def build_root(lib: Any, config: dict[str, Any]) -> None:
    """Build the minimal root (see the module docstring), chroot into it, create ``WORK``."""
    strict = config.get("uid") is not None
    os.umask(0o022)
    # Handles first: the prefixes may live under /tmp, which the new root hides.
    handles = {
        prefix: os.open(prefix, os.O_PATH | os.O_DIRECTORY)
        for prefix in prefixes(bool(config.get("site")), str(config["executable"]))
    }
    _tmpfs(lib, ROOT, "0755", 1 << 20)
    _populate_system(lib, ROOT, strict)
    _populate_devices(lib, ROOT, int(config["tmpfs_bytes"]))
    for prefix, handle in handles.items():
        target = ROOT + prefix
        os.makedirs(target, 0o755, exist_ok=True)
        _bind_read_only(lib, f"/proc/self/fd/{handle}", target, strict=strict)
        os.close(handle)
    if not config.get("site"):
        for folder in _site_directories():
            if os.path.isdir(ROOT + folder):
                _mount(lib, "tmpfs", ROOT + folder, "tmpfs", MS_RDONLY | MS_NOSUID, "size=4k")
    os.chroot(ROOT)
    os.chdir("/")
    os.mkdir(WORK, 0o700)
    if config.get("uid") is not None:
        os.chown(WORK, int(config["uid"]), int(config["uid"]))


def set_limits(limits: dict[str, int]) -> None:
    """CPU, address space, file size, open files, processes; no core dumps."""
    cpu = int(limits["cpu"])
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_AS, (int(limits["memory"]),) * 2)
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(limits["fsize"]),) * 2)
    resource.setrlimit(resource.RLIMIT_NOFILE, (int(limits["nofile"]),) * 2)
    resource.setrlimit(resource.RLIMIT_NPROC, (int(limits["nproc"]),) * 2)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _drop_capabilities(lib: Any) -> None:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as handle:
            last = int(handle.read())
    except (OSError, ValueError):
        last = 63
    for capability in range(last + 1):
        lib.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0)
    lib.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)


def _clear_capability_sets(lib: Any) -> None:
    header = (ctypes.c_uint32 * 2)(_CAPABILITY_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()
    if lib.capset(ctypes.addressof(header), ctypes.addressof(data)) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"capset failed: {os.strerror(errno)}")


def _check_no_capabilities() -> None:
    # The bounding set matters while the uid is 0 (a user namespace's root gains it back at
    # execve); other uids gain nothing at execve under no_new_privs.
    checked = {"CapInh", "CapPrm", "CapEff", "CapAmb"} | (
        {"CapBnd"} if os.geteuid() == 0 else set()
    )
    with open("/proc/self/status") as handle:
        fields = dict(line.split(":", 1) for line in handle if line.startswith("Cap"))
    held = [key for key, value in fields.items() if key in checked and int(value, 16) != 0]
    if held:
        raise PermissionError(f"capabilities remain after the drop: {sorted(held)}")


def _drop_privileges(uid: int, gid: int) -> None:
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if os.getresuid() != (uid, uid, uid) or os.getresgid() != (gid, gid, gid) or os.getgroups():
        raise PermissionError("privilege drop did not take effect")


def restrict(lib: Any, limits: dict[str, int], uid: int | None, *, dumpable: bool) -> None:
    """Confine the calling process (see the module docstring); irreversible."""
    set_limits(limits)
    _drop_capabilities(lib)
    if uid is not None:
        _drop_privileges(uid, uid)
    _clear_capability_sets(lib)
    if lib.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS failed")
    lib.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if not dumpable and lib.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "PR_SET_DUMPABLE failed")
    _check_no_capabilities()

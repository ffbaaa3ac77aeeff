"""Where automl keeps its data, and how it writes there: only into folders its user alone can write, never
through a symbolic link, new files 0600 and folders 0700."""

from __future__ import annotations

import errno
import os
import pwd
import secrets
import stat
from pathlib import Path

from .errors import UserError

EXPERIMENTS = "experiments"
SOCKET_FILE = "daemon.sock"
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class TrialFolderExists(FileExistsError):
    """A trial's folder is already there: something ran under that trial's id before, so it is not used again."""


def home() -> Path:
    """The data directory: $AUTOML_HOME, default ~/.local/share/automl."""
    return Path(os.environ.get("AUTOML_HOME") or Path.home() / ".local" / "share" / "automl").expanduser()


def socket_path(data_dir: Path) -> Path:
    """Where the daemon of a data directory listens."""
    return data_dir / SOCKET_FILE


def trial_dir(data_dir: Path, experiment_id: str, trial_id: int) -> Path:
    """Where one trial's params, metrics and logs live inside a data directory."""
    return data_dir / EXPERIMENTS / experiment_id / "trials" / str(trial_id)


def secure_home(data_dir: Path | None = None) -> Path:
    """The data directory, made safe before anything is written to it: created 0700 if missing, else checked
    to belong to this user and be writable by no one else (and so its `experiments/` folder). UserError if not."""
    data_dir = home() if data_dir is None else data_dir
    if _make_folder(data_dir, parents=True):
        return data_dir
    _check_private(data_dir, os.stat(data_dir))  # a data directory may be reached through a link of the user's
    try:
        _check_private(data_dir / EXPERIMENTS, os.lstat(data_dir / EXPERIMENTS))
    except FileNotFoundError:
        pass  # made, like every folder below, by private_folders when it is first needed
    return data_dir


def private_folders(folder: Path) -> Path:
    """`folder` and its missing parents, created 0700 without following links; the nearest one that exists must
    be a real folder of ours that no one else can write."""
    try:
        if _make_folder(folder):
            return folder
    except FileNotFoundError:
        private_folders(folder.parent)
        if _make_folder(folder):
            return folder
    _check_private(folder, os.lstat(folder))
    return folder


def new_trial_folder(folder: Path) -> Path:
    """A trial's folder, freshly made 0700 (its parents too); TrialFolderExists if anything is already there."""
    private_folders(folder.parent)
    try:
        os.mkdir(folder, 0o700)
    except FileExistsError:
        raise TrialFolderExists(
            errno.EEXIST,
            f"its folder {folder} already exists (a trial ran under this id "
            "before, perhaps the store lost its last writes); it is never reused",
        ) from None
    return folder


def create_file(path: Path, data: bytes = b"") -> None:
    """Write a new file 0600; fails if anything, a link included, is already at `path`."""
    fd = os.open(path, _NEW_FILE, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def open_new(path: Path) -> int:
    """A new 0600 file opened for appending, as a descriptor; fails if anything, a link included, is at `path`."""
    return os.open(path, _NEW_FILE | os.O_APPEND, 0o600)


def open_append(path: Path) -> int:
    """A descriptor appending to a regular file of ours at `path`, created 0600 if missing; a link, another
    kind of file or one of another user's is a UserError."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o600)
    except OSError as e:
        raise UserError(f"cannot write {path}: {_why(path, e)}") from None
    try:
        _check_own_file(path, os.fstat(fd))
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def check_own_file(path: Path) -> bool:
    """Whether a regular file of ours is at `path` (False: nothing is); UserError for a link or anything else."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return False
    _check_own_file(path, info)
    return True


def replace_file(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace `path` with `data` through a random-named temporary file created exclusively beside it, so a
    link planted at a predictable name is never followed and readers see the old or the new file whole."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, _NEW_FILE, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomically(path: Path, text: str) -> None:
    """Replace a file the user asked for (`export -o`) as `replace_file` does, the user's umask applying to it
    as to any file they write; UserError if that fails."""
    try:
        replace_file(path, text.encode("utf-8"), 0o666)
    except OSError as e:
        raise UserError(f"cannot write {path}: {e.strerror or e}") from None


def set_aside(folder: Path) -> Path | None:
    """Rename a folder that must not be used again out of the way (its content kept); where it went, if it was."""
    aside = folder.with_name(f"{folder.name}.set-aside-{secrets.token_hex(4)}")
    try:
        os.rename(folder, aside)
    except FileNotFoundError:
        return None
    return aside


def last_line(path: Path, max_chars: int = 300) -> str:
    """The last non-empty line of a log file (usually what went wrong), shortened; "" if none or unreadable."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 8192))
            lines = [line.strip() for line in f.read().decode(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1][-max_chars:] if lines else ""


def _make_folder(folder: Path, parents: bool = False) -> bool:
    """Create `folder` 0700 (and, if `parents`, its missing parents as the user's own); False if it exists."""
    try:
        os.mkdir(folder, 0o700)
    except FileExistsError:
        return False
    except FileNotFoundError:
        if not parents:
            raise
        folder.parent.mkdir(parents=True, exist_ok=True)
        return _make_folder(folder)
    return True


def _check_private(folder: Path, info: os.stat_result) -> None:
    """Refuse a folder another user owns or can write, or something that is not a folder."""
    if stat.S_ISLNK(info.st_mode):
        raise UserError(f"{folder} is a symbolic link; automl follows no links inside its data directory: remove it")
    if not stat.S_ISDIR(info.st_mode):
        raise UserError(f"{folder} is not a folder; move it away or set AUTOML_HOME to a folder of your own")
    uid = os.geteuid()
    if info.st_uid != uid:
        raise UserError(
            f"{folder} belongs to {_user(info.st_uid)}, not to you ({_user(uid)}): another user could "
            "change what automl writes there; set AUTOML_HOME to a folder of your own"
        )
    mode = stat.S_IMODE(info.st_mode)
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UserError(
            f"{folder} is writable by other users (mode {mode:04o}), so they could make automl write "
            f"elsewhere; make it yours alone: chmod 700 {folder}"
        )


def _check_own_file(path: Path, info: os.stat_result) -> None:
    if stat.S_ISLNK(info.st_mode):
        raise UserError(f"{path} is a symbolic link; automl follows no links inside its data directory: remove it")
    if not stat.S_ISREG(info.st_mode):
        raise UserError(f"{path} is not a regular file; move it away")
    if info.st_uid != os.geteuid():
        raise UserError(f"{path} belongs to {_user(info.st_uid)}, not to you ({_user(os.geteuid())}); move it away")


def _why(path: Path, error: OSError) -> str:
    """What an open without following links failed on, in words (ELOOP is how a link shows)."""
    if error.errno == errno.ELOOP:
        return "it is a symbolic link; automl follows no links inside its data directory: remove it"
    return error.strerror or str(error)


def _user(uid: int) -> str:
    try:
        return f"user {pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"

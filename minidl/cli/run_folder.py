"""Where ``minidl train`` writes: ``runs/<dataset>`` by default, a new numbered folder rather than over a run.

A folder *holds a run* when it has one of :data:`RUN_FILES`. ``run.json`` (written
before the first epoch) keeps the options of the run, which ``--resume`` reads back.
"""

from __future__ import annotations

import json
import os
import tempfile

#: The files that mark a folder as holding a run of ``minidl train``.
RUN_FILES = ("model.npz", "checkpoint.npz", "run.json", "history.json")
#: The options a run is defined by: ``--resume`` takes them from ``run.json``.
RUN_OPTIONS = ("model", "dataset", "data_dir", "epochs", "batch_size", "lr", "momentum", "seed")


def holds_run(path: str) -> str | None:
    """The first of :data:`RUN_FILES` in ``path``, or None."""
    return next((name for name in RUN_FILES if os.path.exists(os.path.join(path, name))), None)


def choose_out(args) -> tuple[str | None, str | None]:
    """``(folder, None)`` to write the run to, or ``(None, error message)``.

    No ``--out``: ``runs/<dataset>``, or ``runs/<dataset>-2``, ``-3``, ... if that holds a run.
    An ``--out`` that holds a run needs ``--force`` (a resumed run writes into its own folder).
    """
    if args.out is None:
        base = os.path.join("runs", args.dataset)
        out, n = base, 1
        while holds_run(out):
            n += 1
            out = f"{base}-{n}"
        return out, None
    found = holds_run(args.out)
    if found and not args.force and not args.resume:
        return None, (f"--out {args.out!r} holds a previous run ({found}); pass --force to overwrite it, "
                      "or choose another --out (without --out, minidl train picks a new runs/<dataset>-N folder)")
    return args.out, None


def writable_folder(path: str) -> str | None:
    """Create ``path`` if needed and prove it writable; return an error message or None."""
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        return f"cannot write to --out {path!r}: {exc.strerror or exc}"
    return None


def write_run(out: str, args, version: str) -> None:
    """``run.json``: the run's options, what ``--resume`` reads back."""
    with open(os.path.join(out, "run.json"), "w") as f:
        json.dump({"minidl": version, **{k: getattr(args, k) for k in RUN_OPTIONS}}, f, indent=2)


def read_run(checkpoint: str) -> tuple[dict | None, str | None]:
    """The options in ``run.json`` next to ``checkpoint``, or ``(None, error message)``."""
    path = os.path.join(os.path.dirname(os.path.abspath(checkpoint)), "run.json")
    if not os.path.isfile(checkpoint):
        return None, f"--resume {checkpoint!r}: no such file (minidl train writes <out>/checkpoint.npz)"
    try:
        with open(path) as f:
            run = json.load(f)
    except (OSError, ValueError) as exc:
        return None, (f"--resume {checkpoint!r}: cannot read the run's options from {path!r}: "
                      f"{getattr(exc, 'strerror', None) or exc} (resume a checkpoint written by minidl train, "
                      "in its run folder)")
    if not isinstance(run, dict) or any(k not in run for k in RUN_OPTIONS):
        return None, f"--resume {checkpoint!r}: {path!r} is not a run.json written by minidl train"
    return run, None


def merge_resumed(args, run: dict) -> str | None:
    """Fill ``args`` from the resumed run's options; an error message if one given differs.

    ``--epochs`` may differ: it is the total to train up to, as ``Trainer.fit``'s ``epochs``.
    """
    for key in RUN_OPTIONS:
        given = getattr(args, key)
        if given is not None and given != run[key] and key != "epochs":
            flag = "--" + key.replace("_", "-")
            return (f"--resume: {flag} {given} differs from the run's {run[key]} (run.json); a resumed run "
                    f"continues bit for bit with its own options: leave {flag} out")
        if given is None:
            setattr(args, key, run[key])
    return None

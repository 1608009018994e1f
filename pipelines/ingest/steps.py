"""Ingest's steps, by name: every refusal starts with the step that refused the study.

A quarantine reason reads "<step>: <what failed, naming the attribute>", e.g.
"decode: exam orthanc:ab12cd34 view R-CC: PixelData cannot be decoded (transfer syntax
1.2.840.10008.1.2.4.90): ...". Checks raise `InvalidStudy` (or another PermanentError)
naming the attribute; `step` prefixes the step once. An exception no check foresaw is
refused too, as `UnforeseenInput` naming the step, the attributes the step reads and
where it was raised (never its text, which may quote a value): the batch goes on, and
the reason says what to fix.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from pipelines.errors import PermanentError, TransientError, UnforeseenInput, origin

# The steps of one study, in order (pipelines/ingest/prepare.py, exams.py, run.py).
STEPS = ("download", "read", "route", "views", "labels", "burned-in", "decode", "display",
         "burned-in text", "preprocess", "attributes", "header", "de-identify", "commit",
         "prepare")  # the last: outside every step (a bug)


def _named(exc: PermanentError, prefix: str, name: str) -> PermanentError:
    named = type(exc)(f"{prefix}{exc}")
    named.step = name  # type: ignore[attr-defined]
    return named


@contextlib.contextmanager
def step(name: str, attributes: str, context: str = "", *, refuse_unforeseen: bool = True,
         passing: tuple[type[Exception], ...] = ()) -> Iterator[None]:
    """Run a step of one study: its refusals start with `name`.

    Args:
        name: one of STEPS.
        attributes: what the step reads ("PixelData", "ImageLaterality, ViewPosition"),
            named in the reason of an exception no check foresaw.
        context: what the step works on, after the name ("exam orthanc:ab12cd34 view R-CC").
        refuse_unforeseen: turn any other exception into `UnforeseenInput`; False lets
            it pass (a step that writes, whose database or disk errors are no input's).
        passing: exception types that pass unchanged (a database error while the step
            reads pseudonym keys is no input's either).

    Raises:
        PermanentError: the step's own refusal, prefixed "<name>: " (once: a refusal of
            an inner step keeps its name).
        UnforeseenInput: any other exception but a TransientError, which passes unchanged
            (as every exception does when `refuse_unforeseen` is False).
    """
    prefix = f"{name}: {context}: " if context else f"{name}: "
    try:
        yield
    except TransientError:
        raise
    except PermanentError as exc:
        if getattr(exc, "step", None):
            raise
        raise _named(exc, prefix, name) from exc
    except Exception as exc:
        if not refuse_unforeseen or isinstance(exc, passing):
            raise
        unforeseen = UnforeseenInput(f"{prefix}{attributes}: unexpected {type(exc).__name__} "
                                     f"in {origin(exc)}")
        unforeseen.step = name  # type: ignore[attr-defined]
        raise unforeseen from exc

"""The one entry point of a conversion: the size mode, the conversion, its check, the retries.

Why a module of its own: the command line, the add-on (its child process), convert-dir and the
stacked conversions all come here, so every network a user gets was made the same way and checked
against its source; and the size mode is described once (:class:`SizeMode`), so the command line's
flags, the add-on's properties and this dispatch cannot drift apart. It sits above
core.training.convert, core.training.sizing and core.training.budget, which it dispatches to, so
none of them imports it back.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..common.errors import InputError
from ..common.progress import check, report
from ..common.settings import ConversionSettings, check_fields, described
from ..meshes.mesh import Mesh
from ..samples.gaps import needs_own_recipe
from ..samples.shell import trained_thickness
from ..training import budget, sizing
from ..training.convert import ConversionResult, convert_mesh
from .verify import source_side, verify


@dataclass(frozen=True)
class SizeMode:
    """How the network's size is chosen: ``mode`` "fixed" (the settings' layers x hidden),
    "target_error" (core.training.sizing: the smallest network of a ladder reaching
    ``target_error``) or "budget" (core.training.budget: the most accurate network whose stored
    numbers fit ``budget_bytes``). Each field's metadata holds its help text and range, from which
    the command line's flags and the add-on's properties are made."""

    mode: str = described("fixed", "how the network's size is chosen",
                          choices=("fixed", "target_error", "budget"))
    target_error: float = described(
        0.003, "error-driven sizing (paper A.2): the smallest network of a ladder of sizes whose "
               "surface error (mean |f| on the surface as a share of the shape's size, its centre "
               "to its farthest vertex) is at most this; overrides layers and hidden. The paper "
               "reports 0.003 for 93 percent of Thingi10K at 8 x 32", min=1e-5, max=0.5)
    budget_bytes: int = described(
        30_000, "budget mode: the most accurate network whose stored numbers (weights, biases, "
                "scales, transform) fit in this many bytes; chooses the architecture, storage and "
                "training recipe", min=1_000, max=100_000_000)

    def __post_init__(self):
        check_fields(self)

    @classmethod
    def of(cls, target_error: float | None = None, budget_bytes: int | None = None) -> "SizeMode":
        """The mode of the command line's (and convert_checked's) optional arguments."""
        if target_error is not None and budget_bytes is not None:
            raise InputError("a target error and a byte budget choose the network size in two "
                             "different ways: give one of them")
        if target_error is not None:
            return cls("target_error", target_error=target_error)
        if budget_bytes is not None:
            return cls("budget", budget_bytes=budget_bytes)
        return cls()

    def arguments(self) -> dict:
        """``target_error`` and ``budget_bytes`` as :meth:`of` takes them (None when not used)."""
        return {"target_error": self.target_error if self.mode == "target_error" else None,
                "budget_bytes": self.budget_bytes if self.mode == "budget" else None}

    @property
    def decides(self) -> tuple:
        """The ConversionSettings fields this mode chooses itself, ignoring the caller's: what a
        user interface must not offer in this mode. The file records what ran."""
        return {"target_error": sizing.DECIDES, "budget": budget.DECIDES}.get(self.mode, ())

    def convert(self, mesh: Mesh, settings: ConversionSettings, progress=None, cancel=None,
                while_sampling=None):
        """One conversion in this mode (no check). ``while_sampling``: see
        core.training.convert.convert_mesh (the fixed-size mode runs it; the others do not)."""
        if self.mode == "target_error":
            return sizing.convert_to_target_error(mesh, self.target_error, settings,
                                                  progress=progress, cancel=cancel)
        if self.mode == "budget":
            return budget.convert_to_budget(mesh, self.budget_bytes, settings, progress=progress,
                                            cancel=cancel)
        return convert_mesh(mesh, settings, progress=progress, cancel=cancel,
                            while_sampling=while_sampling)


class ConversionFailed(InputError):
    """Every attempt trained a network that failed the check against its source
    (core.conversion.verify)."""


#: Attempts of :func:`convert_checked` (seeds ``seed``, ``seed + 1``, ...) before it gives up.
ATTEMPTS = 3


def convert_checked(mesh: Mesh, settings: ConversionSettings | None = None, *,
                    target_error: float | None = None, budget_bytes: int | None = None,
                    progress=None, cancel=None, attempts: int = ATTEMPTS,
                    trained: ConversionResult | None = None, on_retry=None) -> ConversionResult:
    """Convert ``mesh`` in the chosen size mode and check the result against the source.

    The one entry point of the command line, the add-on and convert-dir's retries. Size modes: a
    fixed architecture (``settings``), the smallest network reaching ``target_error``
    (core.training.sizing) or the most accurate one in ``budget_bytes`` (core.training.budget). The
    network is checked by :func:`core.conversion.verify.verify` (a surface exists, the sign agrees
    with the winding number, the mesh it gives is close); a failed check trains again with the next
    seed, at most ``attempts`` times in all. The file records the check
    (``metadata["verification"]``) and the settings that ran, seed included.

    trained : a network already trained with ``settings`` elsewhere (in a stack,
        core.conversion.batch_train), checked as the first attempt; later attempts convert alone,
        after ``on_retry()``. A shape whose parts nearly touch gets more training alone than the
        stack's recipe (core.samples.gaps.needs_own_recipe): it is converted alone from the start,
        so a stack gives it what converting it alone gives.

    Raises ConversionFailed when every attempt failed (open input fails only without a surface;
    its other findings are warnings), InputError for bad input, Cancelled when ``cancel`` is set.
    """
    size = SizeMode.of(target_error, budget_bytes)
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
        raise InputError(f"attempts must be a positive integer, got {attempts!r}")
    settings = (settings or ConversionSettings()).validate()
    failures = []
    for attempt in range(attempts):
        tried = settings if attempt == 0 else settings.replace(seed=(settings.seed + attempt) % 2 ** 32)
        early = {}              # the check's source side, computed while the samples are drawn
        alone = (attempt == 0 and trained is not None
                 and needs_own_recipe(trained.implicit, tried))
        if attempt == 0 and trained is not None and not alone:
            result = trained
        else:
            if (attempt or alone) and on_retry is not None:
                on_retry()
            result = size.convert(mesh, tried, progress, cancel, while_sampling=lambda: early.update(
                source=source_side(mesh, mesh.normalization(), tried.seed)))
        check(cancel)
        report(progress, stage="checking", fraction=0.0,
               message="checking the result against the source mesh")
        v = verify(result.implicit, mesh, seed=tried.seed,
                   shell_thickness=trained_thickness(result.implicit), source=early.get("source"))
        report(progress, stage="checking", fraction=1.0, message=v.summary())
        if v.passed:
            result.verification = v
            result.warnings = list(result.warnings) + list(v.warnings)
            if alone:
                result.warnings.insert(0, "converted again alone: its separate parts nearly touch, "
                                          "which the stack's single network does not allow for "
                                          "(part_networks, gap_factor)")
            if failures:
                result.warnings.insert(0, f"{len(failures)} earlier attempt(s) failed the check "
                                          f"({failures[0]}); seed {tried.seed} passed")
            result.implicit.metadata["verification"] = {**v.to_dict(), "attempts": attempt + 1}
            return result
        where = " (in the stack)" if attempt == 0 and trained is not None and not alone else ""
        failures.append(f"seed {tried.seed}{where}: {'; '.join(v.problems)}")
    raise ConversionFailed(f"{mesh.name}: the conversion failed its check {attempts} time(s): "
                           + " | ".join(failures))

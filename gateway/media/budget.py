"""The work one media part's walk may do ([media] max_scan_steps): a small file costs no seconds."""

from __future__ import annotations

from gateway.errors import InvalidRequest


class ScanBudget:
    """Steps left for the walk over one part: boxes, chunks, markers, headers, frames, PDF objects.

    Walkers spend as they go and stop at once when the budget runs out, with a 400 naming the part.
    """

    __slots__ = ("left", "limit", "param")

    def __init__(self, steps: int, *, param: str) -> None:
        self.limit = steps
        self.left = steps
        self.param = param

    def spend(self, steps: int = 1) -> None:
        """Take `steps` from the budget; InvalidRequest once it is overdrawn."""
        self.left -= steps
        if self.left < 0:
            raise self.exhausted()

    def exhausted(self) -> InvalidRequest:
        """The error for a walk that needs more than the budget."""
        return InvalidRequest(
            f"`{self.param}` has more structure than the gateway walks to check one media part "
            f"(over {self.limit:,} boxes, chunks, markers, headers or objects; "
            "[media] max_scan_steps)",
            param=self.param,
        )

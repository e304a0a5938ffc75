"""The one error type for bad input: it names the field and the reason."""

MAX_ECHO = 80  # characters of a rejected value shown back in a reason; a 1 MB input is not echoed whole


def shown(value: object, limit: int = MAX_ECHO) -> str:
    """`repr(value)`, cut to `limit` characters with the count of the rest: what a reason may echo of an input."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text) - limit} more characters)"


class InvalidInput(ValueError):
    """Raised when an input is rejected; nothing has been changed."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason

"""The one error type for bad input: it names the field and the reason."""


class InvalidInput(ValueError):
    """Raised when an input is rejected; nothing has been changed."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason

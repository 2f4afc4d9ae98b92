"""The one error type a user sees for bad input: ``FILE:LINE:COL: message``."""

from __future__ import annotations


class SpecError(Exception):
    """Bad input located in a file; the CLI prints it as one line and exits 2."""

    def __init__(self, file: str, line: int, col: int, message: str) -> None:
        self.file, self.line, self.col, self.message = str(file), line, col, message
        super().__init__(f"{self.file}:{line}:{col}: {message}")

    def __reduce__(self) -> tuple:
        # Curation runs in a spawned worker; its errors cross back to the CLI by pickle.
        return SpecError, (self.file, self.line, self.col, self.message)

"""The transcript: what the reply to one command mail says, in Majordomo's layout.

Every line read is echoed as `>>>> line`; results follow it. A `squawk` is an error that
also asks for the help text at the end (Majordomo's `$needs_help`).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Transcript:
    lines: list[str] = field(default_factory=list)
    needs_help: bool = False
    commands: int = 0  # lines that counted as commands (end and `-` included)

    def echo(self, line: str) -> None:
        self.lines.append(f">>>> {line}")

    def say(self, text: str) -> None:
        """Add text (one or more lines; one trailing newline is dropped)."""
        if text.endswith("\n"):
            text = text[:-1]
        self.lines.extend(text.split("\n"))

    def squawk(self, text: str) -> None:
        self.say(text)
        self.needs_help = True

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"

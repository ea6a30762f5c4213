"""A benchmark's findings as a section of BENCHMARKS.md (also what each benchmark prints)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Section:
    title: str
    command: str  # reproduces this section alone
    text: list[str] = field(default_factory=list)  # markdown: what was measured, then tables
    targets: list[tuple[str, str, bool]] = field(default_factory=list)  # (target, measured, met)

    def table(self, header: list[str], rows: list[list[object]]) -> None:
        self.text += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        self.text += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
        self.text.append("")

    def target(self, target: str, measured: str, met: bool) -> None:
        self.targets.append((target, measured, met))

    def markdown(self) -> str:
        lines = [f"## {self.title}", "", *self.text]
        if self.targets:
            lines += ["", "| target | measured | |", "|---|---|---|"]
            lines += [f"| {t} | {m} | {'met' if ok else '**missed**'} |" for t, m, ok in self.targets]
        lines += ["", f"Reproduce: `{self.command}`", ""]
        return "\n".join(lines)


def ms(value: float) -> str:
    return f"{value:.1f} ms" if value < 100 else f"{value:.0f} ms"

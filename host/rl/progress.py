"""What a training run shows while it runs: on a terminal one live bar,
redrawn in place a few times a second; in a log (a pipe or a file) a plain
line every 1000 steps or 20 seconds, which reads well in CI output and
`tail -f`. No dependency: a carriage return redraws the bar."""
from __future__ import annotations

import shutil
import sys
import time

LINE_EVERY_STEPS = 1000
LINE_EVERY_S = 20.0
BAR_EVERY_S = 0.2      # a faster redraw costs terminal time and shows nothing more
BAR_WIDTH = 24


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    """``mode``: "bar" (a terminal), "lines" (a log) or None (silent).
    :meth:`say` prints a message without tearing the bar."""

    def __init__(self, total: int, start: int, log=print, mode: str | None = "lines", stream=None):
        self.total, self.start, self.log, self.mode = total, start, log, mode
        self.stream = stream or sys.stdout
        self.t0 = self.last = time.monotonic()
        self.drawn = False

    @staticmethod
    def mode_for(log, enabled: bool) -> str | None:
        """A bar when the run prints to a terminal itself, lines otherwise."""
        if not enabled:
            return None
        return "bar" if log is print and sys.stdout.isatty() else "lines"

    def _text(self, step: int, episode: int, evals: list) -> tuple[str, float, str]:
        rate = (step - self.start) / max(time.monotonic() - self.t0, 1e-9)
        last = f"{evals[-1][1]:.1f} @ {evals[-1][0]}" if evals else "-"
        return f"{rate:.3g} steps/s", rate, f"episode {episode}  eval return {last}"

    def update(self, step: int, episode: int, evals: list) -> None:
        now = time.monotonic()
        if self.mode == "lines":
            if step % LINE_EVERY_STEPS == 0 or step == self.total or now - self.last > LINE_EVERY_S:
                self.last = now
                rate, _, rest = self._text(step, episode, evals)
                self.log(f"step {step}/{self.total}  {rate}  {rest}")
        elif self.mode == "bar" and (now - self.last >= BAR_EVERY_S or step == self.total):
            self.last = now
            rate, per_s, rest = self._text(step, episode, evals)
            done = min(step / self.total, 1.0)
            fill = int(done * BAR_WIDTH)
            eta = _clock((self.total - step) / per_s) if per_s > 0 else "?"
            line = (f"[{'#' * fill}{'.' * (BAR_WIDTH - fill)}] {step}/{self.total} {done:4.0%}  {rate}  "
                    f"eta {eta}  {rest}")
            width = shutil.get_terminal_size((100, 20)).columns - 1
            self.stream.write("\r" + line[:width] + "\033[K")
            self.stream.flush()
            self.drawn = True

    def say(self, text: str) -> None:
        if self.drawn:       # clear the bar's line; the next update draws it again below the message
            self.stream.write("\r\033[K")
            self.drawn = False
        self.log(text)

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()
            self.drawn = False

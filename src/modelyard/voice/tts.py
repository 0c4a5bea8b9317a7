"""The speech stage: the answer spoken by Debian's flite (``apt-get install flite``) as WAV bytes."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from functools import cache

from modelyard.errors import SpecError

__all__ = ["Speaker", "flite_voices"]

FIELD = "stages.speech.voice"


def _flite() -> str:
    found = shutil.which("flite")
    if found is None:
        raise SpecError(
            "Invalid value for `stages.speech.engine`: flite is not installed (not found on PATH); "
            "install the Debian package flite (apt-get install flite)",
            field="stages.speech.engine",
        )
    return found


@cache
def flite_voices() -> tuple[str, ...]:
    """The installed flite's voices (awb_time speaks only clock times)."""
    out = subprocess.run([_flite(), "-lv"], capture_output=True, text=True, check=True, timeout=30).stdout
    return tuple(v for v in out.split(":", 1)[-1].split() if v != "awb_time")


class Speaker:
    """Text → a WAV file's bytes in ``voice`` at ``rate`` times its speed."""

    def __init__(self, voice: str, rate: float = 1.0) -> None:
        voices = flite_voices()
        if voice not in voices:
            raise SpecError(
                f"Invalid value for `{FIELD}`: expected one of the installed flite voices {', '.join(voices)}, "
                f"received {voice!r}",
                field=FIELD,
            )
        self.exe, self.voice, self.rate = _flite(), voice, rate

    def wav(self, text: str) -> bytes:
        fd, name = tempfile.mkstemp(prefix="modelyard-speech-", suffix=".wav")
        os.close(fd)
        try:
            command = [self.exe, "-voice", self.voice, "--setf", f"duration_stretch={1.0 / self.rate:.4f}"]
            # The text goes in as an argument (no shell); flite reads "-" prefixed text as an option, so a space first.
            done = subprocess.run([*command, "-t", " " + text, "-o", name], capture_output=True, timeout=60)
            if done.returncode != 0:
                raise RuntimeError(f"flite exited with {done.returncode}")
            with open(name, "rb") as f:
                return f.read()
        finally:
            os.unlink(name)

"""When a simulated levetiracetam level was drawn, and what its laboratory request says about it.

The simulator draws the true time since the last dose (``SimulatorConfig.level_sampling_hours``)
and the level itself; this module adds the record around it, as routine monitoring writes it: the
clock time of the draw (``effectiveDateTime``) and, on the request form (``Observation.note``),
either the time of the last dose as the family recalls it, or only "trough", or nothing. The
individual PK estimate (:mod:`fhir_mapping.pk_estimate`) reads these, so it is validated against the
child's true clearance with realistic timing noise.

Its random numbers come from a stream of their own per child and visit, so adding the record does
not move any other draw of the cohort (the same children, seizures and levels as before).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from fhir_mapping.pharmacokinetics import HOURS_PER_DAY

# A stream id no other draw of the simulator uses (numpy SeedSequence entropy [seed, id, visit]).
LEVEL_STREAM: Final = 0x1E7E1
_CLINIC_MIDDAY_H: Final = 11.0
_TROUGH_WINDOW_H: Final = 3.0  # only a level drawn within 3 h before the next dose is called a trough


@dataclass(frozen=True)
class LevelRecording:
    """How levels are recorded (assumptions: no source gives these shares for paediatric clinics)."""

    dose_time_share: float = 0.45  # the request names the time of the last dose
    trough_flag_share: float = 0.30  # the request says "trough" only; the rest say nothing
    dose_time_recall_sd_h: float = 0.75  # a recalled dose time is off by about 45 min (SD)
    morning_dose_clock_h: tuple[float, float] = (8.0, 10.0)  # each child's usual morning dose (BID: evening 12 h later)


DEFAULT_RECORDING = LevelRecording()


@dataclass(frozen=True)
class LevelTiming:
    """The truth and the record of one level's timing."""

    hours_after_dose: float  # true time since the last dose
    drawn_at: str  # "HH:MM", the draw's clock time on the visit day
    note: str | None  # the request form's words, or None

    def observation_fields(self, day_iso: str) -> dict[str, Any]:
        """The Observation elements that carry the timing (effectiveDateTime with the clock time, note)."""
        fields: dict[str, Any] = {"effectiveDateTime": f"{day_iso}T{self.drawn_at}:00Z"}
        if self.note:
            fields["note"] = [{"text": self.note}]
        return fields


def level_timing(child_seed: int, visit_counter: int, hours_after_dose: float, doses_per_day: int = 2,
                 recording: LevelRecording = DEFAULT_RECORDING) -> LevelTiming:
    """The record of a level drawn ``hours_after_dose`` after the last dose at a child's visit."""
    child_rng = np.random.default_rng([child_seed, LEVEL_STREAM])
    low, high = recording.morning_dose_clock_h
    morning = low + (high - low) * float(child_rng.random())
    tau = HOURS_PER_DAY / doses_per_day
    rng = np.random.default_rng([child_seed, LEVEL_STREAM, visit_counter])
    u, z = float(rng.random()), float(rng.standard_normal())
    # The dose before the draw: of the child's dosing clock times, the one that puts the draw nearest
    # the middle of a clinic day (a level drawn 10 h after the evening dose is an early-morning draw).
    dose_clocks = [(morning + i * tau) % HOURS_PER_DAY for i in range(doses_per_day)]
    last_dose = min(dose_clocks, key=lambda c: abs((c + hours_after_dose) % HOURS_PER_DAY - _CLINIC_MIDDAY_H))
    drawn = (last_dose + hours_after_dose) % HOURS_PER_DAY
    note: str | None = None
    if u < recording.dose_time_share:
        recalled = (last_dose + recording.dose_time_recall_sd_h * z) % HOURS_PER_DAY
        note = f"Time of last dose: {_clock(recalled, round_to_min=5)}"
    elif u < recording.dose_time_share + recording.trough_flag_share and hours_after_dose >= tau - _TROUGH_WINDOW_H:
        note = "Trough (before the morning dose)"
    return LevelTiming(round(hours_after_dose, 3), _clock(drawn), note)


def _clock(hours: float, round_to_min: int = 1) -> str:
    minutes = int(round(hours * 60 / round_to_min) * round_to_min) % (24 * 60)
    return f"{minutes // 60:02d}:{minutes % 60:02d}"

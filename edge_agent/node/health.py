"""Board health for the status heartbeat: CPU, memory and SoC temperature."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import psutil

THERMAL_ZONE = Path("/sys/class/thermal/thermal_zone0/temp")
# Sensor names seen on Raspberry Pi (cpu_thermal), Jetson (cpu-thermal, CPU-therm) and x86 (coretemp).
SENSOR_NAMES = ("cpu_thermal", "cpu-thermal", "CPU-therm", "soc_thermal", "coretemp", "k10temp")


@dataclass(frozen=True)
class Health:
    cpu: float | None
    memory: float | None
    temperature: float | None


def read_health() -> Health:
    return Health(cpu=psutil.cpu_percent(interval=None), memory=psutil.virtual_memory().percent,
                  temperature=read_temperature())


def read_temperature() -> float | None:
    """Degrees Celsius of the SoC, or None where the board exposes no sensor."""
    reader = getattr(psutil, "sensors_temperatures", None)
    if reader is not None:
        try:
            sensors = reader()
        except OSError:
            sensors = {}
        for name in SENSOR_NAMES:
            if sensors.get(name):
                return round(float(sensors[name][0].current), 1)
    try:
        return round(int(THERMAL_ZONE.read_text().strip()) / 1000.0, 1)
    except (OSError, ValueError):
        return None

"""The devices table: one row per device heard, updated cell by cell."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from edge_agent.tui.state import DeviceState
from edge_agent.tui.widgets import cells

COLUMNS = (
    ("device", "device"), ("model", "model"), ("seen", "online"), ("state", "state"), ("queue", "queue"),
    ("history", "history"), ("alpha", "α s"), ("tps", "tok/s"), ("cpu", "CPU %"),
    ("memory", "mem %"), ("temperature", "temp °C"),
)
WIDTHS = {"model": 20, "seen": 16, "state": 21, "history": cells.HISTORY_WIDTH}
"""Columns whose content changes length get a fixed width, so the table does not jitter."""


def row_cells(device: DeviceState, now: float) -> tuple[Text | str, ...]:
    s = device.status
    online = s.online
    return (
        Text(s.device, style="bold" if online else "dim"),
        Text(s.model or "–", style="" if online else "dim"),
        cells.presence(device.presence(now), device.age(now)),
        cells.activity(online, s.busy, s.current),
        cells.queue(s.queue) if online else Text("–", style="dim", justify="right"),
        cells.sparkline(device.history),
        cells.number(s.alpha, 2),
        cells.number(s.tokens_per_s, 1),
        cells.number(s.cpu, 0),
        cells.number(s.memory, 0),
        cells.number(s.temperature, 1),
    )


def _signature(cell: Text | str) -> tuple[str, str, str]:
    if isinstance(cell, Text):
        return cell.plain, str(cell.style), repr(cell.spans)
    return cell, "", ""


class DevicesTable(DataTable[Text | str]):
    """Devices in id order; a refresh only touches the cells that changed."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self._shown: dict[str, tuple[Text | str, ...]] = {}

    def on_mount(self) -> None:
        for key, label in COLUMNS:
            self.add_column(label, key=key, width=WIDTHS.get(key))

    def show(self, devices: list[DeviceState], now: float) -> None:
        added = False
        for device in devices:
            name = device.status.device
            values = row_cells(device, now)
            before = self._shown.get(name)
            if before is None:
                self.add_row(*values, key=name)
                added = True
            else:
                for (column, _), old, new in zip(COLUMNS, before, values, strict=True):
                    if _signature(old) != _signature(new):
                        self.update_cell(name, column, new, update_width=column not in WIDTHS)
            self._shown[name] = values
        if added:
            self.sort("device", key=lambda cell: cell.plain if isinstance(cell, Text) else cell)

    def queue_of(self, device: str) -> int | None:
        """The queue size the table shows for a device (None: not shown)."""
        cell = self.get_cell(device, "queue")
        text = cell.plain if isinstance(cell, Text) else str(cell)
        return int(text) if text.isdigit() else None

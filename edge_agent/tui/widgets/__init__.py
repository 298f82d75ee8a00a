"""The TUI's widgets; each renders one slice of MeshState."""

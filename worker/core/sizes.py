"""Size limits shared by the scorer and the settings (no imports: settings stay light)."""

DEFAULT_MAX_EVENT_BYTES = 1_048_576
"""Events larger than this are rejected as ``too_large`` without being parsed."""

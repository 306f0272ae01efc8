"""insights-kit: offline ActionTrail Insights for management events."""

__version__ = "0.1.0"

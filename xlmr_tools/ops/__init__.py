"""The operations: convert, verify, diff, inspect, each returning a report object."""

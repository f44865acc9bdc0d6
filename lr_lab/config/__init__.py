"""The configuration: schema (dataclasses), files, parsing and checks; it imports no torch."""

"""The study: many problems, each an ordinary run, and how often each method was right."""

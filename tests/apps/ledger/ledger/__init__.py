"""A second application for the project's proof, unlike `app/`: one plain WSGI service (no web app, no
scheduler), its own module names, a migration tool with a command of its own, another health path."""

VERSION = "1.0.0"

"""Run slashbots without Stream: a local Stream stand-in and the means to serve it."""

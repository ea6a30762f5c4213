"""The built-in plugins. Each is an ordinary slashbots plugin, loaded like any other."""

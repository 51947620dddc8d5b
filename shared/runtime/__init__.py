"""Local runtimes: drive the real function app without the Functions host."""

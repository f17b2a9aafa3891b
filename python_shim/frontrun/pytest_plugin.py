"""pytest plugin (entry point `frontrun`, or `-p frontrun.pytest_plugin`)."""

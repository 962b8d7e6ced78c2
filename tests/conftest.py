"""The project's own tests use the installed tinyrig plugin (entry point `pytest11`) like
any lab repository; `pytester` runs inner suites for tests of the plugin itself."""

pytest_plugins = ["pytester"]

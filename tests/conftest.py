pytest_plugins = ["greendill.testing.pytest_plugin"]

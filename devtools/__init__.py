"""Development and CI tooling: embedded services, the dev runner, the test runner."""

"""The Docker image, run for real against the fake Bot API (marked `docker`)."""

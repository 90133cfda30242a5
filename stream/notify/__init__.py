"""The response stage's I/O: the notify file on disk and the deliverer that sends what `correlator.notify` decides."""

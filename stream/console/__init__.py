"""The web console and the cluster-wide read model behind it (see `stream.console.install`)."""

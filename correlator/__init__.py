"""The correlation domain, pure and synchronous: data in, data out, time passed in. Never imports Faust."""

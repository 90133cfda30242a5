"""The correlation domain, pure and synchronous: data in, data out, time passed in. Never imports Faust."""

from . import compiled as _compiled

_compiled.guard()  # before anything imports the engine: a stale or unwanted mypyc build is never loaded

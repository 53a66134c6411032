"""trtpack's tests; a package so that `tests.support` imports the same way under Bazel and from a checkout."""

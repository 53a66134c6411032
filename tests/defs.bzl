"""trtpack_py_test: one pytest file as one Bazel test."""

def trtpack_py_test(name, src = None, deps = [], data = [], size = "medium", tags = [], **kwargs):
    src = src or name + ".py"
    native.py_test(
        name = name,
        srcs = ["//tests:pytest_main.py", src],
        main = "//tests:pytest_main.py",
        args = ["$(location %s)" % src],
        deps = ["//py:trtpack"] + deps,
        data = data,
        size = size,
        tags = tags,
        python_version = "PY3",
        **kwargs
    )

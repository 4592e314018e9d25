"""Build configuration for the compiled fan-out; everything else is in pyproject.toml.

The extension is optional: where it cannot be built (no compiler, no OpenSSL headers) the
install still succeeds and the server uses the pure-Python path (see sfu/fastpath.py).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "sfu._fanout",
            sources=["sfu/_fanout.c", "sfu/_aes.c"],
            depends=["sfu/_aes.h"],
            libraries=["crypto"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
            optional=True,
        )
    ]
)

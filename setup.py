"""Build configuration for the compiled fan-out; everything else is in pyproject.toml.

The extension is optional: where it cannot be built (no compiler, no OpenSSL headers) the
install still succeeds and the server uses the pure-Python path (see sfu/protocol/fastpath.py).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "sfu.protocol._fanout",
            sources=[
                "sfu/protocol/_fanout.c",
                "sfu/protocol/_fanout_sender.c",
                "sfu/protocol/_fanout_srtp.c",
                "sfu/protocol/_fanout_transport.c",
                "sfu/protocol/_fanout_player.c",
                "sfu/protocol/_fanout_rewrite.c",
                "sfu/protocol/_fanout_svc.c",
                "sfu/protocol/_fanout_send.c",
                "sfu/protocol/_aes.c",
            ],
            depends=["sfu/protocol/_fanout.h", "sfu/protocol/_aes.h"],
            libraries=["crypto"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
            optional=True,
        )
    ]
)
